package ingressbench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// nodeSpec is what every ordering node of a run shares.
type nodeSpec struct {
	Brokers []string
	Channel string
	Genesis []byte // the channel's genesis block, marshalled
	Ledger  LedgerKind
	Dir     string // parent of the nodes' ledger directories, with LedgerFile
}

// node is one ordering node: a consenter with the chain of the channel on
// its ledger.
type node struct {
	cons   *consensus.Consenter
	chain  *consensus.Chain
	ledger *countingLedger
}

// startNode starts ordering node name, which signs its blocks with
// signer, and waits until its chain is ready. It is built as the example
// orderer builds its nodes, with the franz-go defaults.
func startNode(ctx context.Context, spec nodeSpec, name string, signer msp.SigningIdentity) (*node, error) {
	genesis, err := protoutil.UnmarshalBlock(spec.Genesis)
	if err != nil {
		return nil, err
	}
	var l ledger.Ledger = ledger.NewMemory()
	if spec.Ledger == LedgerFile {
		if l, err = ledger.OpenFile(filepath.Join(spec.Dir, name)); err != nil {
			return nil, err
		}
	}
	topic := consensus.DefaultTopicSettings()
	if b := int16(len(spec.Brokers)); b < topic.ReplicationFactor {
		topic.ReplicationFactor, topic.MinInsyncReplicas = b, min(topic.MinInsyncReplicas, int(b))
	}
	cons, err := consensus.NewConsenter(
		consensus.WithSeedBrokers(spec.Brokers...),
		consensus.WithClientID(name),
		consensus.WithSigner(signer),
		consensus.WithTopicSettings(topic),
		consensus.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)),
	)
	if err != nil {
		l.Close()
		return nil, err
	}
	n := &node{cons: cons, ledger: &countingLedger{Ledger: l}}
	if n.chain, err = cons.NewChain(spec.Channel, n.ledger, genesis); err != nil {
		n.close()
		return nil, err
	}
	n.chain.Start()
	if err := n.chain.WaitReady(ctx); err != nil {
		n.close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// close stops the node and closes its ledger.
func (n *node) close() {
	n.cons.Close()
	n.ledger.Close()
}

// countingLedger counts the envelopes of the blocks appended to a ledger,
// at no cost to the node: reading them back would be the node's work.
type countingLedger struct {
	ledger.Ledger
	envelopes atomic.Int64
}

var _ ledger.BuiltAppender = (*countingLedger)(nil)

// Append appends b and counts its envelopes.
func (l *countingLedger) Append(b *cb.Block) error {
	return l.count(b, l.Ledger.Append(b))
}

// AppendBuilt forwards to the ledger's AppendBuilt and counts b's
// envelopes.
func (l *countingLedger) AppendBuilt(b *cb.Block) error {
	return l.count(b, ledger.AppendBuilt(l.Ledger, b))
}

func (l *countingLedger) count(b *cb.Block, err error) error {
	if err == nil {
		l.envelopes.Add(int64(len(b.GetData().GetData())))
	}
	return err
}
