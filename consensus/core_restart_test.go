package consensus

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// TestCoreRestartWritesSameBlocks: a node restarted from any block of its
// ledger (with the configuration in force after it), consuming the same
// log from the block's LastOffsetPersisted+1, writes exactly the blocks the
// node that never stopped wrote after it.
func TestCoreRestartWritesSameBlocks(t *testing.T) {
	seeds, records := uint64(200), 300
	if testing.Short() || raceEnabled() {
		seeds = 30
	}
	// Two halves in parallel: each seed is independent.
	for half := range uint64(2) {
		t.Run(fmt.Sprintf("seeds%d", half), func(t *testing.T) {
			t.Parallel()
			for seed := 1 + half; seed <= seeds; seed += 2 {
				s := newSim(t, seed, 1, true)
				s.run(records)
				checkRestarts(t, seed, s)
			}
		})
	}
}

// checkRestarts restarts a core from every block s's core wrote (the
// genesis block included) over s's log.
func checkRestarts(t *testing.T, seed uint64, s *sim) {
	final := stateOf(s.cores[0])
	last := genesisBlock()
	lastConfig := ChannelConfig(defaultConfig())
	for k := 0; k <= len(s.blocks); k++ {
		if k > 0 {
			last = new(cb.Block)
			require.NoError(t, proto.Unmarshal(s.blocks[k-1], last))
			lastConfig = s.configs[k-1]
		}
		c, err := NewCore("testchannel", CoreState{LastBlock: last, Config: lastConfig})
		require.NoError(t, err)
		want := s.blocks[k:]
		got := 0
		// Plain comparisons here: this loop runs millions of times.
		for off := c.NextOffset(); off < int64(len(s.log)); off++ {
			r := c.Step(Record{Offset: off, Value: s.log[off]})
			for _, b := range r.Blocks {
				if got >= len(want) {
					t.Fatalf("seed %d, restart from block %d: extra block %d at offset %d", seed, k, b.Block.Header.Number, off)
				}
				if !sameBlock(b.Block, want[got]) {
					require.Equal(t, mustUnmarshalBlock(want[got]).String(), b.Block.String(),
						"seed %d, restart from block %d: block %d differs (offset %d)", seed, k, k+got+1, off)
					require.Equal(t, want[got], marshal(t, b.Block),
						"seed %d, restart from block %d: block %d differs (offset %d)", seed, k, k+got+1, off)
				}
				got++
			}
		}
		require.Equal(t, len(want), got, "seed %d, restart from block %d: missing blocks", seed, k)
		st := stateOf(c)
		// The timer is the node's, not the log's: a restarted node has not
		// seen the fires of the one that never stopped.
		st.timer = final.timer
		require.Equal(t, final, st, "seed %d, restart from block %d: final state differs", seed, k)
	}
}

// sameBlock reports whether b marshals (deterministically) to want.
func sameBlock(b *cb.Block, want []byte) bool {
	return bytes.Equal(protoutil.MarshalOrPanic(b), want)
}

func mustUnmarshalBlock(b []byte) *cb.Block {
	blk := new(cb.Block)
	if err := proto.Unmarshal(b, blk); err != nil {
		panic(err)
	}
	return blk
}

// TestCoreRestartFromBlockWithZeroMetadata: a block whose KafkaMetadata is
// all zeros (cut at offset 0, or at offset 1 recording offset-1, with no
// re-submission seen yet) marshals to an empty ORDERER slot, exactly like
// the genesis block's. KafkaMetadataOf then returns nil and NewCore
// restarts at OffsetBeforeOldest: the record at offset 0 is consumed again
// and its envelope ordered a second time in the next block (the restarted
// node forks from the others).
//
// Fix: KafkaMetadataOf returns nil only for block 0 (the genesis block);
// for a later block an empty ORDERER value is the zero KafkaMetadata, e.g.
// `if len(m.GetValue()) == 0 && b.GetHeader().GetNumber() == 0 { return nil, nil }`
// (proto.Unmarshal of empty bytes gives the zero message for the others).
func TestCoreRestartFromBlockWithZeroMetadata(t *testing.T) {
	tests := []struct {
		name string
		log  [][]byte
	}{
		{"oversized envelope at offset 0", [][]byte{normal("big1", 0), normal("a", 0), ttc(2)}},
		{"config at offset 0", [][]byte{config("cfg:1:3:20", 0), normal("a", 1), ttc(2)}},
		{"overflow at offset 1", [][]byte{normal("mid1", 0), normal("mid2", 0), ttc(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCore(t, defaultConfig())
			var blocks []*cb.Block
			var cfgs []ChannelConfig
			cfg := c.Config()
			for off, v := range tt.log {
				r := c.Step(Record{Offset: int64(off), Value: v})
				for _, b := range r.Blocks {
					if b.IsConfig {
						cfg = c.Config()
					}
					blocks = append(blocks, proto.Clone(b.Block).(*cb.Block))
					cfgs = append(cfgs, cfg)
				}
			}
			require.Len(t, blocks, 2)
			md, err := KafkaMetadataOf(blocks[0])
			require.NoError(t, err)
			require.NotNil(t, md, "block 1 has kafka metadata (all zeros)")

			rc, err := NewCore("testchannel", CoreState{LastBlock: blocks[0], Config: cfgs[0]})
			require.NoError(t, err)
			require.Equal(t, int64(0), rc.LastOffsetPersisted())
			require.Equal(t, int64(1), rc.NextOffset())
			var got [][]string
			for off := rc.NextOffset(); off < int64(len(tt.log)); off++ {
				r := rc.Step(Record{Offset: off, Value: tt.log[off]})
				for _, b := range r.Blocks {
					got = append(got, payloads(t, b.Block))
				}
			}
			require.Equal(t, [][]string{payloads(t, blocks[1])}, got)
		})
	}
}

// TestCoreRestartGateAfterOvertakenConfig: a stale config B is re-submitted
// (the gate closes); a later re-submitted normal message (original offset 2
// > 1) gets into the log before B's re-submission (the copy of the node
// that produced it first was lost) and is cut into block 2. From then on
// B's re-submission, when it arrives, is a duplicate (1 <=
// LastOriginalOffsetProcessed) and is dropped without opening the gate: the
// running core keeps Resubmitting() true forever, while a core restarted
// from block 2 computes it from the metadata (LastResubmittedConfigOffset 1
// <= LastOriginalOffsetProcessed 2) and is open. The two nodes disagree,
// and the running one never accepts an envelope again.
//
// Fix: derive the gate from the offsets, as NewCore does, instead of a
// separate flag: Resubmitting() = lastResubmittedConfigOffset >
// lastOriginalOffsetProcessed (drop the resubmitting field). Once a later
// original offset has been processed, the re-submitted config can only be
// dropped as a duplicate, so nothing the gate waits for is in flight. With
// that, also mark a re-submitted config that fails re-validation as
// processed whatever its ConfigSeq (see TestCoreConfigResubmissionGateStuck).
func TestCoreRestartGateAfterOvertakenConfig(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	runScript(t, c, 0, []scriptStep{
		{rec: config("cfg:1:3:20:A", 0), want: "block 1 config [cfg:1:3:20:A] persisted=0 orig=0 resub=0 lastconfig=1"},
		{rec: config("cfg:*:2:20:B", 0), want: "produce config cfg:*:2:20:B seq=1 orig=1\nnote resubmitted@1"},
		{rec: normal("t2", 0), want: "produce normal t2 seq=1 orig=2\nnote resubmitted@2"},
		{rec: resubmitted("t2", 1, 2), want: "timer start"},
	})
	r := c.Step(Record{Offset: 4, Value: ttc(2)})
	require.Equal(t, "block 2 [t2] persisted=4 orig=2 resub=1 lastconfig=1\ntimer stop", render(t, r))
	rc, err := NewCore("testchannel", CoreState{LastBlock: proto.Clone(r.Blocks[0].Block).(*cb.Block), Config: c.Config()})
	require.NoError(t, err)
	require.Equal(t, c.Resubmitting(), rc.Resubmitting(), "restarted and running cores disagree on the gate")

	for _, core := range []*Core{c, rc} {
		r := core.Step(Record{Offset: 5, Value: configResubmitted("cfg:*:2:20:B", 1, 1)})
		require.Equal(t, "note duplicate@5", render(t, r))
		require.False(t, core.Resubmitting(), "B's re-submission was consumed: nothing is in flight")
	}
}
