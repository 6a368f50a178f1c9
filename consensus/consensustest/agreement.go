package consensustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Errors of CheckAgreement, which wraps one or both.
var (
	// ErrLedgersDiffer means that two ledgers of the same channel differ:
	// in height, or in a block's header, data or metadata.
	ErrLedgersDiffer = errors.New("ledgers differ")
	// ErrNotExactlyOnce means that an acknowledged transaction is in no
	// block, that a transaction is in more than one place, or that a
	// transaction nobody sent is in a block.
	ErrNotExactlyOnce = errors.New("transactions not ordered exactly once")
)

// NodeLedger is one node's ledger of a channel, named for reports.
type NodeLedger struct {
	Node   string
	Ledger ledger.Reader
}

// Agreement is what CheckAgreement found.
type Agreement struct {
	// Height is the height of the first ledger, genesis block included.
	Height uint64
	// Transactions is the number of transactions in its blocks.
	Transactions int
	// Acknowledged and NotAcknowledged count the transactions sent, by
	// outcome; NotAcknowledgedOrdered is how many of the latter are in a
	// block nevertheless.
	Acknowledged, NotAcknowledged, NotAcknowledgedOrdered int
	// Missing lists the acknowledged transactions in no block, Duplicated
	// those in more than one place, and Unknown those in a block that were
	// not sent; sorted.
	Missing, Duplicated, Unknown []string
	// Tips is the last block of every ledger, in the order given.
	Tips []Tip
}

// Tip is the last block of a node's ledger.
type Tip struct {
	Node       string
	Number     uint64
	HeaderHash []byte // nil for an empty ledger
}

// CheckAgreement checks what the nodes wrote for one channel against what
// clients sent: that every ledger has the same height and, block by block,
// the same header, data and LAST_CONFIG and ORDERER metadata as the first
// (CompareLedgers; signatures differ by design), and that every
// transaction acknowledged is in exactly one block, that no transaction is
// in more than one place and that no block holds a transaction that was
// not sent. sent maps the transaction ID of every envelope ordered (TxID)
// to whether Kafka acknowledged it (Order returned nil): one not
// acknowledged may or may not be in a block, but at most once. The
// transactions of the genesis block and of CONFIG envelopes are not
// counted.
//
// It returns the report and an error wrapping ErrLedgersDiffer or
// ErrNotExactlyOnce (or both) that says what differs and where, or only an
// error, with a nil report, when a ledger cannot be read. Ledgers must not
// grow during the check: wait first (WaitInAllLedgers, Cluster.WaitHeight).
func CheckAgreement(ledgers []NodeLedger, sent map[string]bool) (*Agreement, error) {
	if len(ledgers) == 0 {
		return nil, errors.New("consensustest: CheckAgreement: no ledger")
	}
	a := &Agreement{}
	for _, nl := range ledgers {
		if nl.Ledger == nil {
			return nil, fmt.Errorf("consensustest: %s: no ledger (closed?)", nl.Node)
		}
		t := Tip{Node: nl.Node}
		if h := nl.Ledger.Height(); h > 0 {
			b, err := nl.Ledger.Block(h - 1)
			if err != nil {
				return nil, fmt.Errorf("consensustest: %s: %w", nl.Node, err)
			}
			t.Number, t.HeaderHash = b.GetHeader().GetNumber(), protoutil.HeaderHash(b.GetHeader())
		}
		a.Tips = append(a.Tips, t)
	}
	ref := ledgers[0]
	a.Height = ref.Ledger.Height()
	count := make(map[string]int, len(sent))
	for n := uint64(1); n < a.Height; n++ {
		b, err := ref.Ledger.Block(n)
		if err != nil {
			return nil, fmt.Errorf("consensustest: %s: %w", ref.Node, err)
		}
		err = eachTransaction(b, func(id string) {
			count[id]++
			a.Transactions++
		})
		if err != nil {
			return nil, fmt.Errorf("consensustest: %s block %d: %w", ref.Node, n, err)
		}
	}

	var errs []error
	for _, nl := range ledgers[1:] {
		if nl.Ledger.Height() != a.Height {
			errs = append(errs, fmt.Errorf("%w: %s has %d blocks, %s has %d", ErrLedgersDiffer, ref.Node, a.Height, nl.Node, nl.Ledger.Height()))
			continue
		}
		if err := CompareLedgers(ref.Ledger, nl.Ledger); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s and %s: %w", ErrLedgersDiffer, ref.Node, nl.Node, err))
		}
	}

	for id, acked := range sent {
		c := count[id]
		switch {
		case c > 1:
			a.Duplicated = append(a.Duplicated, id)
		case acked && c == 0:
			a.Missing = append(a.Missing, id)
		}
		if acked {
			a.Acknowledged++
		} else {
			a.NotAcknowledged++
			if c > 0 {
				a.NotAcknowledgedOrdered++
			}
		}
	}
	for id := range count {
		if _, ok := sent[id]; !ok {
			a.Unknown = append(a.Unknown, id)
		}
	}
	slices.Sort(a.Missing)
	slices.Sort(a.Duplicated)
	slices.Sort(a.Unknown)
	if len(a.Missing) > 0 {
		errs = append(errs, fmt.Errorf("%w: %d acknowledged envelopes missing from the blocks of %s, e.g. tx %s", ErrNotExactlyOnce, len(a.Missing), ref.Node, a.Missing[0]))
	}
	if len(a.Duplicated) > 0 {
		errs = append(errs, fmt.Errorf("%w: %d envelopes in more than one place in %s, e.g. tx %s", ErrNotExactlyOnce, len(a.Duplicated), ref.Node, a.Duplicated[0]))
	}
	if len(a.Unknown) > 0 {
		errs = append(errs, fmt.Errorf("%w: %d transactions in the blocks of %s that no client sent, e.g. tx %s", ErrNotExactlyOnce, len(a.Unknown), ref.Node, a.Unknown[0]))
	}
	return a, errors.Join(errs...)
}

// CheckAgreement checks channel's ledgers of every node whose ledger is
// open (running nodes, and stopped nodes with memory ledgers) against
// sent, with the package's CheckAgreement.
func (c *Cluster) CheckAgreement(channel string, sent map[string]bool) (*Agreement, error) {
	var ls []NodeLedger
	for _, n := range c.nodes {
		if l := n.Ledger(channel); l != nil {
			ls = append(ls, NodeLedger{Node: n.String(), Ledger: l})
		}
	}
	return CheckAgreement(ls, sent)
}

// eachTransaction calls f with the transaction ID of every envelope of b
// but CONFIG ones, in order.
func eachTransaction(b *cb.Block, f func(id string)) error {
	for i, raw := range b.GetData().GetData() {
		env, err := protoutil.UnmarshalEnvelope(raw)
		if err != nil {
			return fmt.Errorf("envelope %d: %w", i, err)
		}
		h, err := protoutil.EnvelopeHeaders(env)
		if err != nil {
			return fmt.Errorf("envelope %d: %w", i, err)
		}
		if cb.HeaderType(h.ChannelHeader.GetType()) != cb.HeaderType_CONFIG {
			f(h.ChannelHeader.GetTxId())
		}
	}
	return nil
}

// WaitInAllLedgers waits until the ledger of channel on every running node
// holds every transaction of txIDs (TxID), in any block. It fails early
// when a running node's chain halts, and when ctx ends it says which node
// lacks how many of them. A node stopped meanwhile is not waited for; one
// restarted is again.
func (c *Cluster) WaitInAllLedgers(ctx context.Context, channel string, txIDs ...string) error {
	want := make(map[string]bool, len(txIDs))
	for _, id := range txIDs {
		want[id] = true
	}
	type progress struct {
		next  uint64 // next block to read
		found map[string]bool
	}
	seen := make([]progress, len(c.nodes))
	for i := range seen {
		seen[i].found = make(map[string]bool, len(want))
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		done := true
		var lacking []string
		for i, n := range c.nodes {
			ch, l := n.Chain(channel), n.Ledger(channel)
			if !n.Running() || ch == nil || l == nil {
				if ch == nil {
					return fmt.Errorf("consensustest: %s does not serve channel %q", n, channel)
				}
				continue
			}
			if err := ch.Err(); err != nil {
				return fmt.Errorf("consensustest: %s: %w", n, err)
			}
			p := &seen[i]
			for h := l.Height(); p.next < h && len(p.found) < len(want); p.next++ {
				b, err := l.Block(p.next)
				if err != nil {
					return fmt.Errorf("consensustest: %s: %w", n, err)
				}
				if err := eachTransaction(b, func(id string) {
					if want[id] {
						p.found[id] = true
					}
				}); err != nil {
					return fmt.Errorf("consensustest: %s block %d: %w", n, p.next, err)
				}
			}
			if len(p.found) < len(want) {
				done = false
				lacking = append(lacking, fmt.Sprintf("%s lacks %d", n, len(want)-len(p.found)))
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensustest: waiting for %d transactions in every ledger of %s (%v): %w", len(want), channel, lacking, ctx.Err())
		case <-t.C:
		}
	}
}
