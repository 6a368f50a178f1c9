package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Channel limits. Blocks are cut at -max-message-count envelopes, at
// preferredMaxBytes, or after -batch-timeout.
const (
	absoluteMaxBytes  = 1 << 20
	preferredMaxBytes = 512 << 10
)

// retry makes the nodes retry their Kafka set-up often: the brokers are
// local, or the user is watching.
var retry = consensus.RetryPolicy{
	ShortInterval: 100 * time.Millisecond,
	ShortTotal:    10 * time.Second,
	LongInterval:  time.Second,
	LongTotal:     20 * time.Second,
}

// network is the Kafka, the organisations and the orderer nodes of one run:
// a consensustest.Cluster, whose nodes the clients reach through node.
type network struct {
	channel   string
	kafkaDesc string
	cluster   *consensustest.Cluster
	nodes     []*node
	dataDir   string // where the ledgers are
	tempDir   bool   // dataDir is removed at the end

	kafka *consensustest.Kafka // nil with -brokers
}

// startNetwork starts (or connects to) Kafka, generates the orderer and
// client organisations, and starts cfg.nodes orderer nodes on a fresh
// channel, each with its own identity, consenter and file ledger. It
// returns once every node accepts envelopes.
func startNetwork(ctx context.Context, cfg config, logger *slog.Logger) (_ *network, err error) {
	net := &network{channel: "quickstart-" + randomHex(4)}
	defer func() {
		if err != nil {
			net.close()
		}
	}()

	brokers := cfg.brokers
	consenterOpts := []consensus.Option{consensus.WithRetry(retry)}
	if len(brokers) == 0 {
		net.kafka, err = consensustest.StartKafka(consensustest.WithLogger(logger.With("component", "kafka")))
		if err != nil {
			return nil, err
		}
		brokers = net.kafka.Addrs()
		net.kafkaDesc = fmt.Sprintf("embedded, %d brokers on %s", len(brokers), strings.Join(brokers, ","))
	} else {
		net.kafkaDesc = strings.Join(brokers, ",")
		// The seeds may be fewer than the brokers: ask for the default
		// replication whatever their number.
		consenterOpts = append(consenterOpts, consensus.WithTopicSettings(consensus.DefaultTopicSettings()))
	}

	if cfg.dataDir == "" {
		if net.dataDir, err = os.MkdirTemp("", "kafkaconsensus-quickstart-*"); err != nil {
			return nil, err
		}
		net.tempDir = true
	} else {
		net.dataDir = filepath.Join(cfg.dataDir, net.channel)
	}

	// The orderer organisation issues one identity per node; the nodes sign
	// the blocks they write with it. The application organisation issues
	// the client identity that signs the envelopes; the channel's Writers
	// policy admits it.
	ordererOrg, err := msptest.NewCA("OrdererMSP")
	if err != nil {
		return nil, err
	}
	appOrg, err := msptest.NewCA("Org1MSP")
	if err != nil {
		return nil, err
	}
	net.cluster, err = consensustest.NewCluster(brokers,
		consensustest.WithNodes(cfg.nodes),
		consensustest.WithNodeNames("orderer"),
		consensustest.WithChannels(net.channel),
		consensustest.WithOrg(appOrg),
		consensustest.WithOrdererOrg(ordererOrg),
		consensustest.WithBatchSize(uint32(cfg.maxMessageCount), absoluteMaxBytes),
		consensustest.WithPreferredMaxBytes(preferredMaxBytes),
		consensustest.WithBatchTimeout(cfg.batchTimeout),
		consensustest.WithFileLedgers(net.dataDir),
		consensustest.WithNodeLogger(logger),
		consensustest.WithConsenterOpts(consenterOpts...),
	)
	if err != nil {
		return nil, err
	}
	for i := range cfg.nodes {
		n := net.cluster.Node(i)
		net.nodes = append(net.nodes, &node{Node: n, channel: net.channel, logger: logger.With("node", n.String())})
	}
	if err := net.cluster.Start(ctx); err != nil {
		return nil, err
	}
	for _, n := range net.nodes {
		if err := n.waitReady(ctx); err != nil {
			return nil, err
		}
	}
	return net, nil
}

// close stops the nodes and Kafka and removes a temporary data directory.
func (net *network) close() {
	if net.cluster != nil {
		net.cluster.Close()
	}
	if net.kafka != nil {
		net.kafka.Close()
	}
	if net.tempDir {
		os.RemoveAll(net.dataDir)
	}
}

// ledgers returns the nodes' ledgers of the channel, nil while closed.
func (net *network) ledgers() []consensustest.NodeLedger {
	ls := make([]consensustest.NodeLedger, len(net.nodes))
	for i, n := range net.nodes {
		ls[i] = consensustest.NodeLedger{Node: n.String(), Ledger: n.ledgerReader()}
	}
	return ls
}

// downtime is how long a restarted node stays down.
const downtime = 250 * time.Millisecond

// errNodeDown reports a node that is being restarted; clients then turn to
// another node.
var errNodeDown = errors.New("node is restarting")

// node is one orderer node of the cluster, as its clients use it: Order
// waits for a restart in progress to finish and a restart waits for the
// Orders in progress, so that a client's envelope is either ordered or
// never handed to a halting chain.
type node struct {
	*consensustest.Node
	channel string
	logger  *slog.Logger

	// down is set while the node restarts. gate is held shared by every
	// Order in progress and exclusively by a restart, which so waits for
	// them to finish before halting the chain.
	down atomic.Bool
	gate sync.RWMutex
}

// waitReady waits until the node's chain accepts envelopes.
func (n *node) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, retry.ShortTotal+retry.LongTotal)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		return fmt.Errorf("%s: waiting for the chain to be ready: %w", n, err)
	}
	return nil
}

// restart halts the node once the Orders in progress on it are done and
// closes its ledger, then reopens the ledger, starts a new consenter and
// chain on it, and waits until the chain is ready. Clients meanwhile use
// other nodes. It returns the height the node resumed at.
func (n *node) restart(ctx context.Context) (uint64, error) {
	n.down.Store(true)
	n.gate.Lock()
	defer func() {
		n.gate.Unlock()
		n.down.Store(false)
	}()
	n.Stop()
	// Stay down a moment, as a real restart would, so that the other nodes
	// move on and this one has blocks to catch up on.
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(downtime):
	}
	if err := n.Restart(); err != nil {
		return 0, err
	}
	h := n.height()
	return h, n.waitReady(ctx)
}

// order validates env against the node's channel configuration and orders
// it, returning how long Order took. It returns errNodeDown while the node
// restarts.
func (n *node) order(ctx context.Context, env *cb.Envelope) (time.Duration, error) {
	if n.down.Load() {
		return 0, errNodeDown
	}
	n.gate.RLock()
	defer n.gate.RUnlock()
	ch := n.Chain(n.channel)
	if ch == nil || !n.Running() {
		return 0, errNodeDown
	}
	seq, err := ch.ProcessNormal(env)
	if err != nil {
		return 0, fmt.Errorf("%s rejected the envelope: %w", n, err)
	}
	start := time.Now()
	err = ch.Order(ctx, env, seq)
	return time.Since(start), err
}

// ledgerReader returns the node's ledger, or nil while it restarts.
func (n *node) ledgerReader() ledger.Reader { return n.Ledger(n.channel) }

// height returns the height of the node's ledger, 0 while it restarts.
func (n *node) height() uint64 {
	if r := n.ledgerReader(); r != nil {
		return r.Height()
	}
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
