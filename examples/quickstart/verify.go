package main

import (
	"errors"
	"fmt"
	"sort"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// sentEnvelopes maps the transaction ID of every envelope the clients
// ordered to whether Kafka acknowledged it. An envelope that was not
// acknowledged may or may not be in the log, so in a block or not.
type sentEnvelopes map[string]bool

// report is what verify found.
type report struct {
	height    uint64 // blocks in every ledger, genesis included
	envelopes int    // transactions in the blocks
	acked     int    // acknowledged envelopes
	unacked   int    // envelopes whose Order failed
	unackedIn int    // of those, how many are in a block nevertheless
	missing   []string
	dups      []string
	unknown   []string
	tips      []tip
}

// tip is the last block of a node's ledger.
type tip struct {
	node   string
	number uint64
	hash   []byte
}

// verify checks that the ledgers (one per node, named by names) are
// identical block by block, headers and data, and that every acknowledged
// envelope of sent is in exactly one block: none missing, none duplicated,
// and no transaction in the blocks that no client sent. It returns a report
// and, when a check fails, an error saying which and where. The report is
// nil when the ledgers cannot be read.
func verify(ledgers []ledger.Reader, names []string, sent sentEnvelopes) (*report, error) {
	if len(ledgers) == 0 || len(ledgers) != len(names) {
		return nil, fmt.Errorf("verify: %d ledgers and %d names", len(ledgers), len(names))
	}
	rep := &report{}
	for i, r := range ledgers {
		if r == nil {
			return nil, fmt.Errorf("%s: ledger is closed", names[i])
		}
		t := tip{node: names[i]}
		if h := r.Height(); h > 0 {
			b, err := r.Block(h - 1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", names[i], err)
			}
			t.number, t.hash = b.GetHeader().GetNumber(), protoutil.HeaderHash(b.GetHeader())
		}
		rep.tips = append(rep.tips, t)
	}
	rep.height = ledgers[0].Height()
	var errs []error
	if err := compareLedgers(ledgers, names); err != nil {
		errs = append(errs, err)
	}
	if err := rep.account(ledgers[0], names[0], sent); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// compareLedgers checks that the ledgers have the same height and, with
// consensustest.CompareLedgers, the same blocks: the same header (number,
// previous hash, data hash), the same envelopes and the same LAST_CONFIG and
// ORDERER metadata. Signatures differ by design: every node signs its own
// blocks.
func compareLedgers(ledgers []ledger.Reader, names []string) error {
	ref, refName := ledgers[0], names[0]
	for i, r := range ledgers[1:] {
		name := names[i+1]
		if r.Height() != ref.Height() {
			return fmt.Errorf("ledgers differ: %s has %d blocks, %s has %d", refName, ref.Height(), name, r.Height())
		}
		if err := consensustest.CompareLedgers(ref, r); err != nil {
			return fmt.Errorf("ledgers of %s and %s: %w", refName, name, err)
		}
	}
	return nil
}

// account counts the transactions in r's blocks against sent.
func (rep *report) account(r ledger.Reader, name string, sent sentEnvelopes) error {
	count := make(map[string]int, len(sent))
	for n := range r.Height() {
		b, err := r.Block(n)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		err = eachTransaction(b, func(id string) {
			count[id]++
			rep.envelopes++
		})
		if err != nil {
			return fmt.Errorf("%s block %d: %w", name, n, err)
		}
	}
	for id, acked := range sent {
		c := count[id]
		switch {
		case c > 1:
			rep.dups = append(rep.dups, id)
		case acked && c == 0:
			rep.missing = append(rep.missing, id)
		}
		if acked {
			rep.acked++
		} else {
			rep.unacked++
			if c > 0 {
				rep.unackedIn++
			}
		}
	}
	for id := range count {
		if _, ok := sent[id]; !ok {
			rep.unknown = append(rep.unknown, id)
		}
	}
	sort.Strings(rep.missing)
	sort.Strings(rep.dups)
	sort.Strings(rep.unknown)

	var errs []error
	if len(rep.missing) > 0 {
		errs = append(errs, fmt.Errorf("%d acknowledged envelopes missing from the blocks, e.g. tx %s", len(rep.missing), rep.missing[0]))
	}
	if len(rep.dups) > 0 {
		errs = append(errs, fmt.Errorf("%d envelopes in more than one place, e.g. tx %s", len(rep.dups), rep.dups[0]))
	}
	if len(rep.unknown) > 0 {
		errs = append(errs, fmt.Errorf("%d transactions in the blocks that no client sent, e.g. tx %s", len(rep.unknown), rep.unknown[0]))
	}
	return errors.Join(errs...)
}

// eachTransaction calls f with the transaction ID of every
// ENDORSER_TRANSACTION envelope of b, in order; config envelopes are
// skipped.
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
		if cb.HeaderType(h.ChannelHeader.GetType()) == cb.HeaderType_ENDORSER_TRANSACTION {
			f(h.ChannelHeader.GetTxId())
		}
	}
	return nil
}
