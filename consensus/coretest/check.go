package coretest

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// maxReported bounds the problems one check lists.
const maxReported = 10

// Check runs every invariant check (CheckIdentical, CheckExactlyOnce with
// mayDrop, CheckRestarts) and returns their errors joined, or nil. Call it
// after Settle.
func (l *Log) Check(mayDrop func(env *cb.Envelope) bool) error {
	return errors.Join(l.CheckIdentical(), l.CheckExactlyOnce(mayDrop), l.CheckRestarts())
}

// CheckIdentical checks that the nodes agree: every block that two nodes
// both have is the same, byte for byte (header, data, and the metadata the
// core writes: ORDERER, LAST_CONFIG, and the SIGNATURES value, which the
// Log does not sign), and the running nodes, which have all consumed the
// whole log, have the same height.
func (l *Log) CheckIdentical() error {
	ref := l.longest()
	refBlocks := l.nodes[ref].blocks
	var errs []error
	height := -1
	for i, n := range l.nodes {
		if n.running {
			if height >= 0 && len(n.blocks) != height {
				errs = append(errs, fmt.Errorf("running nodes disagree on the height: node %d has %d blocks, another %d", i, len(n.blocks), height))
			}
			height = len(n.blocks)
		}
		if i == ref {
			continue
		}
		for k, b := range n.blocks {
			if diff := blockDiff(b, refBlocks[k]); diff != "" {
				errs = append(errs, fmt.Errorf("node %d's block %d differs from node %d's: %s", i, k, ref, diff))
				break // the next ones differ too
			}
		}
	}
	return joinCapped("coretest: nodes disagree", errs)
}

// CheckExactlyOnce checks that every envelope submitted with Submit,
// SubmitAt, SubmitConfig or SubmitConfigAt is in exactly one block of the
// longest ledger (as many as it was submitted times), unless mayDrop
// (which may be nil) reports that it may be missing: for example an
// envelope the configuration stopped accepting before it was ordered.
// Genesis aside, an envelope is never allowed in more blocks than it was
// submitted times. Call it after Settle: an envelope still pending in a
// batch is reported missing.
func (l *Log) CheckExactlyOnce(mayDrop func(env *cb.Envelope) bool) error {
	ledger := l.nodes[l.longest()].blocks
	where := map[string][]uint64{}
	for _, b := range ledger[1:] {
		for _, d := range b.GetData().GetData() {
			where[string(d)] = append(where[string(d)], b.Header.Number)
		}
	}
	want := map[string]int{}
	for _, s := range l.submitted {
		want[s.key]++
	}
	var errs []error
	for _, s := range l.submitted {
		n, ok := want[s.key]
		if !ok {
			continue // reported already
		}
		delete(want, s.key)
		got := where[s.key]
		switch {
		case len(got) > n:
			errs = append(errs, fmt.Errorf("envelope %s submitted %d times is in blocks %v", showPayload(s.env.GetPayload()), n, got))
		case len(got) < n && (mayDrop == nil || !mayDrop(s.env)):
			errs = append(errs, fmt.Errorf("envelope %s submitted %d times is in %d blocks %v", showPayload(s.env.GetPayload()), n, len(got), got))
		}
	}
	return joinCapped("coretest: not exactly once", errs)
}

// CheckRestarts checks restart equivalence on the longest ledger: a core
// started again from any of its blocks (the genesis block included), with
// the configuration in force after it, and fed the log from the offset
// after the one that block persisted, cuts exactly the blocks that follow
// it in the ledger, byte for byte, and no other.
func (l *Log) CheckRestarts() error {
	ref := l.longest()
	blocks := l.nodes[ref].blocks
	var errs []error
	for k := range blocks {
		if err := l.checkRestartFrom(ref, k); err != nil {
			errs = append(errs, err)
		}
	}
	return joinCapped("coretest: restart equivalence", errs)
}

func (l *Log) checkRestartFrom(i, k int) error {
	blocks := l.nodes[i].blocks
	cfg, err := l.configAfter(i, k)
	if err != nil {
		return err
	}
	core, err := consensus.NewCore(l.channel, consensus.CoreState{LastBlock: blocks[k], Config: cfg}, l.coreOpts...)
	if err != nil {
		return fmt.Errorf("restart from block %d: %w", k, err)
	}
	next := k + 1
	for off := core.NextOffset(); off < int64(len(l.records)); off++ {
		r := core.Step(consensus.Record{Offset: off, Value: l.records[off]})
		for _, b := range r.Blocks {
			if next >= len(blocks) {
				return fmt.Errorf("restart from block %d: an extra block %d at offset %d", k, b.Block.Header.Number, off)
			}
			if diff := blockDiff(b.Block, blocks[next]); diff != "" {
				return fmt.Errorf("restart from block %d: block %d cut at offset %d differs: %s", k, next, off, diff)
			}
			next++
		}
	}
	if next != len(blocks) {
		return fmt.Errorf("restart from block %d: blocks %d to %d are not cut again", k, next, len(blocks)-1)
	}
	return nil
}

// longest is the node with the most blocks, the lowest-numbered one of
// those.
func (l *Log) longest() int {
	best := 0
	for i, n := range l.nodes {
		if len(n.blocks) > len(l.nodes[best].blocks) {
			best = i
		}
	}
	return best
}

// blockDiff says how a differs from b, or returns "" when they are the
// same bytes.
func blockDiff(a, b *cb.Block) string {
	if bytes.Equal(protoutil.MarshalOrPanic(a), protoutil.MarshalOrPanic(b)) {
		return ""
	}
	switch {
	case !proto.Equal(a.GetHeader(), b.GetHeader()):
		return fmt.Sprintf("header (%s, want %s)", FormatBlock(a), FormatBlock(b))
	case !proto.Equal(a.GetData(), b.GetData()):
		return fmt.Sprintf("data (%s, want %s)", FormatBlock(a), FormatBlock(b))
	}
	am, bm := a.GetMetadata().GetMetadata(), b.GetMetadata().GetMetadata()
	for slot := range max(len(am), len(bm)) {
		var x, y []byte
		if slot < len(am) {
			x = am[slot]
		}
		if slot < len(bm) {
			y = bm[slot]
		}
		if !bytes.Equal(x, y) {
			return fmt.Sprintf("metadata slot %s", cb.BlockMetadataIndex(slot))
		}
	}
	return "encoding"
}

func joinCapped(what string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) > maxReported {
		more := len(errs) - maxReported
		errs = append(errs[:maxReported], fmt.Errorf("and %d more", more))
	}
	return fmt.Errorf("%s: %w", what, errors.Join(errs...))
}
