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

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
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

// network is the Kafka, the organisations and the orderer nodes of one run.
type network struct {
	channel   string
	kafkaDesc string
	genesis   *cb.Block
	client    msp.SigningIdentity
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
	if len(brokers) == 0 {
		net.kafka, err = consensustest.StartKafka(consensustest.WithLogger(logger.With("component", "kafka")))
		if err != nil {
			return nil, err
		}
		brokers = net.kafka.Addrs()
		net.kafkaDesc = fmt.Sprintf("embedded, %d brokers on %s", len(brokers), strings.Join(brokers, ","))
	} else {
		net.kafkaDesc = strings.Join(brokers, ",")
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
	ordererOrg := testutil.NewCA(nil, "OrdererMSP")
	appOrg := testutil.NewCA(nil, "Org1MSP")
	net.client = appOrg.Issue("client1").SigningIdentity
	chcfg := testutil.ChannelConfig(net.channel, []*testutil.CA{appOrg},
		testutil.WithOrdererOrgs(ordererOrg),
		testutil.WithBatchSize(uint32(cfg.maxMessageCount), absoluteMaxBytes, preferredMaxBytes),
		testutil.WithBatchTimeout(cfg.batchTimeout),
		testutil.WithKafkaBrokers(brokers...))
	if net.genesis, err = channelconfig.GenesisBlock(chcfg); err != nil {
		return nil, err
	}

	for i := range cfg.nodes {
		name := fmt.Sprintf("orderer%d", i)
		n := &node{
			name:    name,
			channel: net.channel,
			genesis: net.genesis,
			dir:     filepath.Join(net.dataDir, name),
			logger:  logger.With("node", name),
			opts: []consensus.Option{
				consensus.WithSeedBrokers(brokers...),
				consensus.WithClientID(name),
				consensus.WithRetry(retry),
				consensus.WithSigner(ordererOrg.Issue(name).SigningIdentity),
				consensus.WithLogger(logger.With("node", name)),
			},
		}
		net.nodes = append(net.nodes, n)
		if err := n.start(); err != nil {
			return nil, err
		}
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
	for _, n := range net.nodes {
		n.stop()
	}
	if net.kafka != nil {
		net.kafka.Close()
	}
	if net.tempDir {
		os.RemoveAll(net.dataDir)
	}
}

// readers returns the nodes' ledgers.
func (net *network) readers() []ledger.Reader {
	rs := make([]ledger.Reader, len(net.nodes))
	for i, n := range net.nodes {
		rs[i] = n.ledgerReader()
	}
	return rs
}

// names returns the nodes' names.
func (net *network) names() []string {
	ns := make([]string, len(net.nodes))
	for i, n := range net.nodes {
		ns[i] = n.name
	}
	return ns
}

// downtime is how long a restarted node stays down.
const downtime = 250 * time.Millisecond

// errNodeDown reports a node that is being restarted; clients then turn to
// another node.
var errNodeDown = errors.New("node is restarting")

// node is one orderer node: a consenter with its own identity and Kafka
// clients, and the chain of the channel on a file ledger.
type node struct {
	name    string
	channel string
	genesis *cb.Block
	dir     string
	logger  *slog.Logger
	opts    []consensus.Option

	// down is set while the node restarts. gate is held shared by every
	// Order in progress and exclusively by a restart, which so waits for
	// them to finish before halting the chain.
	down atomic.Bool
	gate sync.RWMutex

	mu    sync.Mutex // guards the fields below
	cons  *consensus.Consenter
	chain *consensus.Chain
	led   *ledger.File
}

// start opens the node's ledger and starts a consenter and the channel's
// chain on it: on a new ledger the chain begins with the genesis block, on
// an existing one it resumes after the ledger's last block.
func (n *node) start() error {
	led, err := ledger.OpenFile(n.dir, ledger.WithLogger(n.logger))
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	cons, err := consensus.NewConsenter(n.opts...)
	if err != nil {
		led.Close()
		return fmt.Errorf("%s: %w", n.name, err)
	}
	chain, err := cons.NewChain(n.channel, led, n.genesis)
	if err != nil {
		cons.Close()
		led.Close()
		return fmt.Errorf("%s: %w", n.name, err)
	}
	chain.Start()
	n.mu.Lock()
	n.cons, n.chain, n.led = cons, chain, led
	n.mu.Unlock()
	return nil
}

// waitReady waits until the node's chain accepts envelopes.
func (n *node) waitReady(ctx context.Context) error {
	ch := n.currentChain()
	if ch == nil {
		return fmt.Errorf("%s: %w", n.name, errNodeDown)
	}
	ctx, cancel := context.WithTimeout(ctx, retry.ShortTotal+retry.LongTotal)
	defer cancel()
	if err := ch.WaitReady(ctx); err != nil {
		return fmt.Errorf("%s: waiting for the chain to be ready: %w", n.name, err)
	}
	return nil
}

// stop halts the chain and the consenter and closes the ledger.
func (n *node) stop() {
	n.mu.Lock()
	cons, led := n.cons, n.led
	n.cons, n.chain, n.led = nil, nil, nil
	n.mu.Unlock()
	if cons != nil {
		cons.Close() // halts the chain
	}
	if led != nil {
		if err := led.Close(); err != nil {
			n.logger.Warn("closing the ledger", "err", err)
		}
	}
}

// restart halts the node once the Orders in progress on it are done, closes
// its ledger, then reopens the ledger and starts a new consenter and chain
// on it, and waits until the chain is ready. Clients meanwhile use other
// nodes. It returns the height the node resumed at.
func (n *node) restart(ctx context.Context) (uint64, error) {
	n.down.Store(true)
	n.gate.Lock()
	defer func() {
		n.gate.Unlock()
		n.down.Store(false)
	}()
	n.stop()
	// Stay down a moment, as a real restart would, so that the other nodes
	// move on and this one has blocks to catch up on.
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(downtime):
	}
	if err := n.start(); err != nil {
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
	ch := n.currentChain()
	if ch == nil {
		return 0, errNodeDown
	}
	seq, err := ch.ProcessNormal(env)
	if err != nil {
		return 0, fmt.Errorf("%s rejected the envelope: %w", n.name, err)
	}
	start := time.Now()
	err = ch.Order(ctx, env, seq)
	return time.Since(start), err
}

func (n *node) currentChain() *consensus.Chain {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.chain
}

// ledgerReader returns the node's ledger, or nil while it restarts.
func (n *node) ledgerReader() ledger.Reader {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.led == nil {
		return nil
	}
	return n.led
}

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
