package consensus

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// Default limits in these scripts: 3 envelopes or 20 bytes per batch; "a"
// weighs 2 bytes, "mid..." about 14 (two overflow a batch), "big..." more
// than 20 (alone in its block).

func TestCoreTimeToCut(t *testing.T) {
	tests := []struct {
		name  string
		steps []scriptStep
	}{{
		name: "next block with pending cuts it at the ttc offset",
		steps: []scriptStep{
			{rec: normal("a", 0), want: "timer start"},
			{rec: normal("b", 0), want: ""},
			{rec: ttc(1), want: "block 1 [a b] persisted=2 orig=0 resub=0 lastconfig=0\ntimer stop"},
			{rec: normal("c", 0), want: "timer start"},
			{rec: ttc(2), want: "block 2 [c] persisted=4 orig=0 resub=0 lastconfig=0\ntimer stop"},
		},
	}, {
		name: "stale ttc is ignored",
		steps: []scriptStep{
			{rec: normal("a", 0), want: "timer start"},
			{rec: ttc(1), want: "block 1 [a] persisted=1 orig=0 resub=0 lastconfig=0\ntimer stop"},
			{rec: ttc(1), want: "note stale_ttc@2"},
			{rec: normal("b", 0), want: "timer start"},
			{rec: ttc(1), want: "note stale_ttc@4"},
			{rec: ttc(0), want: "note stale_ttc@5"},
			{rec: ttc(2), want: "block 2 [b] persisted=6 orig=0 resub=0 lastconfig=0\ntimer stop"},
		},
	}, {
		name: "stale ttc after a block cut by size",
		steps: []scriptStep{
			{rec: normal("a", 0), want: "timer start"},
			{rec: normal("b", 0), want: ""},
			{rec: normal("c", 0), want: "block 1 [a b c] persisted=2 orig=0 resub=0 lastconfig=0\ntimer stop"},
			{rec: ttc(1), want: "note stale_ttc@3"},
		},
	}, {
		name: "next block with nothing pending",
		steps: []scriptStep{
			{rec: ttc(1), want: "note empty_ttc@0"},
			{rec: normal("a", 0), want: "timer start"},
			{rec: ttc(1), want: "block 1 [a] persisted=2 orig=0 resub=0 lastconfig=0\ntimer stop"},
			{rec: ttc(2), want: "note empty_ttc@3"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runScript(t, newTestCore(t, defaultConfig()), 0, tt.steps)
		})
	}
}

// TestCoreTimeToCutFutureSkipped feeds a time-to-cut for a block beyond
// the next one, which no node of the channel writes: the core skips it,
// changes nothing, and goes on ordering.
func TestCoreTimeToCutFutureSkipped(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	runScript(t, c, 0, []scriptStep{
		{rec: normal("a", 0), want: "timer start"},
	})
	before := stateOf(c)
	r := c.Step(Record{Offset: 1, Value: ttc(2)})
	require.Equal(t, "note future_ttc@1", render(t, r))
	require.ErrorContains(t, r.Notes[0].Err, "time-to-cut for block 2, but the next block is 1")
	after := stateOf(c)
	require.Equal(t, before, after, "a skipped record changes nothing")
	runScript(t, c, 2, []scriptStep{
		{rec: ttc(1), want: "block 1 [a] persisted=2 orig=0 resub=0 lastconfig=0\ntimer stop"},
		{rec: ttc(5000), want: "note future_ttc@3"},
		{rec: normal("b", 0), want: "timer start"},
	})
}

func TestCoreBlockCutterMetadata(t *testing.T) {
	tests := []struct {
		name  string
		steps []scriptStep
	}{{
		name: "message completing MaxMessageCount",
		steps: []scriptStep{
			{rec: normal("a", 0), want: "timer start"},
			{rec: normal("b", 0), want: ""},
			{rec: normal("c", 0), want: "block 1 [a b c] persisted=2 orig=0 resub=0 lastconfig=0\ntimer stop"},
		},
	}, {
		name: "message overflowing PreferredMaxBytes stays pending, block records offset-1",
		steps: []scriptStep{
			{rec: normal("mid1", 0), want: "timer start"},
			{rec: normal("mid2", 0), want: "block 1 [mid1] persisted=0 orig=0 resub=0 lastconfig=0\ntimer start"},
			{rec: ttc(2), want: "block 2 [mid2] persisted=2 orig=0 resub=0 lastconfig=0\ntimer stop"},
		},
	}, {
		name: "oversized message with pending cuts two blocks",
		steps: []scriptStep{
			{rec: normal("a", 0), want: "timer start"},
			{rec: normal("big1", 0), want: "block 1 [a] persisted=0 orig=0 resub=0 lastconfig=0\n" +
				"block 2 [big1] persisted=1 orig=0 resub=0 lastconfig=0\ntimer stop"},
		},
	}, {
		name: "oversized message alone",
		steps: []scriptStep{
			{rec: normal("big1", 0), want: "block 1 [big1] persisted=0 orig=0 resub=0 lastconfig=0"},
			{rec: ttc(2), want: "note empty_ttc@1"},
		},
	}, {
		name: "overflow and count in one message cut two blocks",
		steps: []scriptStep{
			{rec: config("cfg:1:2:20", 0), want: "block 1 config [cfg:1:2:20] persisted=0 orig=0 resub=0 lastconfig=1"},
			{rec: normal("a", 1), want: "timer start"},
			{rec: normal("mid1", 1), want: "block 2 [a mid1] persisted=2 orig=0 resub=0 lastconfig=1\ntimer stop"},
			{rec: normal("mid2", 1), want: "timer start"},
			{rec: config("cfg:2:1:20", 1), want: "block 3 [mid2] persisted=3 orig=0 resub=0 lastconfig=1\n" +
				"block 4 config [cfg:2:1:20] persisted=4 orig=0 resub=0 lastconfig=4\ntimer stop"},
			{rec: normal("a2", 2), want: "block 5 [a2] persisted=5 orig=0 resub=0 lastconfig=4"},
		},
	}, {
		// Offsets 0-3 are Connect records, so that original offsets are
		// older than the re-submissions carrying them.
		name: "last original offset processed",
		steps: []scriptStep{
			{rec: connect()}, {rec: connect()}, {rec: connect()}, {rec: connect()},
			{rec: resubmitted("mid1", 0, 1), want: "timer start"},
			// One batch and mid2 pending: the block holds mid1 only and
			// records the original offset processed before mid2 (1, not 2).
			{rec: resubmitted("mid2", 0, 2), want: "block 1 [mid1] persisted=4 orig=1 resub=0 lastconfig=0\ntimer start"},
			{rec: ttc(2), want: "block 2 [mid2] persisted=6 orig=2 resub=0 lastconfig=0\ntimer stop"},
			{rec: resubmitted("a", 0, 3), want: "timer start"},
			// Two batches: the first records the old original offset, the
			// second the one of big1.
			{rec: resubmitted("big1", 0, 4), want: "block 3 [a] persisted=7 orig=3 resub=0 lastconfig=0\n" +
				"block 4 [big1] persisted=8 orig=4 resub=0 lastconfig=0\ntimer stop"},
			{rec: resubmitted("a2", 0, 5), want: "timer start"},
			{rec: normal("b2", 0), want: ""},
			{rec: resubmitted("c2", 0, 6), want: "block 5 [a2 b2 c2] persisted=11 orig=6 resub=0 lastconfig=0\ntimer stop"},
			// A first submission keeps the last original offset.
			{rec: normal("big2", 0), want: "block 6 [big2] persisted=12 orig=6 resub=0 lastconfig=0"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runScript(t, newTestCore(t, defaultConfig()), 0, tt.steps)
		})
	}
}

func TestCoreTimer(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	runScript(t, c, 0, []scriptStep{
		{fire: true, want: ""}, // no timer runs
		{rec: normal("a", 0), want: "timer start"},
		{rec: normal("b", 0), want: ""},
		{fire: true, want: "produce ttc 1"},
		{fire: true, want: ""}, // fired once, not re-armed
		// Not re-armed until the next normal message while still pending.
		{rec: normal("c", 0), want: "block 1 [a b c] persisted=2 orig=0 resub=0 lastconfig=0"},
		{fire: true, want: ""},
		{rec: ttc(1), want: "note stale_ttc@3"},
		{rec: normal("d", 0), want: "timer start"},
		{fire: true, want: "produce ttc 2"},
		{rec: normal("e", 0), want: "timer start"},
		{rec: ttc(2), want: "block 2 [d e] persisted=6 orig=0 resub=0 lastconfig=0\ntimer stop"},
		{fire: true, want: ""}, // stopped by the cut
		// A cut leaving a new pending batch restarts the timer for it.
		{rec: normal("mid1", 0), want: "timer start"},
		{rec: normal("mid2", 0), want: "block 3 [mid1] persisted=7 orig=0 resub=0 lastconfig=0\ntimer start"},
		{fire: true, want: "produce ttc 4"},
		{rec: normal("mid3", 0), want: "block 4 [mid2] persisted=8 orig=0 resub=0 lastconfig=0\ntimer start"},
		// A config block stops the timer.
		{rec: config("cfg:1:3:20", 0), want: "block 5 [mid3] persisted=9 orig=0 resub=0 lastconfig=0\n" +
			"block 6 config [cfg:1:3:20] persisted=10 orig=0 resub=0 lastconfig=6\ntimer stop"},
		{fire: true, want: ""},
		// A config with nothing pending and no timer leaves it alone.
		{rec: config("cfg:2:3:20", 1), want: "block 7 config [cfg:2:3:20] persisted=11 orig=0 resub=0 lastconfig=7"},
		// A timer that fired and was not re-armed: the cut reports nothing.
		{rec: normal("x", 2), want: "timer start"},
		{fire: true, want: "produce ttc 8"},
		{rec: ttc(8), want: "block 8 [x] persisted=13 orig=0 resub=0 lastconfig=7"},
		// An oversized message alone starts no timer.
		{rec: normal("big1", 2), want: "block 9 [big1] persisted=14 orig=0 resub=0 lastconfig=7"},
		{fire: true, want: ""},
	})
	require.Equal(t, defaultConfig().BatchTimeout(), c.TimerFired().BatchTimeout)
}

func TestCoreConfig(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	runScript(t, c, 0, []scriptStep{
		{rec: normal("a", 0), want: "timer start"},
		{rec: normal("b", 0), want: ""},
		{rec: config("cfg:1:2:100", 0), want: "block 1 [a b] persisted=1 orig=0 resub=0 lastconfig=0\n" +
			"block 2 config [cfg:1:2:100] persisted=2 orig=0 resub=0 lastconfig=2\ntimer stop"},
	})
	require.Equal(t, uint64(1), c.Config().Sequence())
	require.Equal(t, uint32(2), c.Config().BatchLimits().MaxMessageCount)
	require.Equal(t, uint64(3), c.Height())
	require.Equal(t, int64(3), c.NextOffset())

	runScript(t, c, 3, []scriptStep{
		// The new limits apply from the next message: 2 per batch, and mid
		// envelopes no longer overflow 100 bytes.
		{rec: normal("mid1", 1), want: "timer start"},
		{rec: normal("mid2", 1), want: "block 3 [mid1 mid2] persisted=4 orig=0 resub=0 lastconfig=2\ntimer stop"},
		// Invalid updates: wrong target, malformed, bad limits.
		{rec: config("cfg:5:2:100", 1), want: "note invalid@5"},
		{rec: config("cfg:2:x:100", 1), want: "note invalid@6"},
		{rec: config("cfg:2:0:100", 1), want: "note invalid@7"},
		{rec: config("nonsense", 1), want: "note invalid@8"},
		// Validated at a sequence the channel has not reached.
		{rec: config("cfg:2:1:100", 2), want: "note skipped@9"},
		{rec: normal("c", 1), want: "timer start"},
		{rec: ttc(4), want: "block 4 [c] persisted=11 orig=0 resub=0 lastconfig=2\ntimer stop"},
		// A config with nothing pending is cut alone.
		{rec: config("cfg:*:1:100", 1), want: "block 5 config [cfg:*:1:100] persisted=12 orig=0 resub=0 lastconfig=5"},
		{rec: normal("d", 2), want: "block 6 [d] persisted=13 orig=0 resub=0 lastconfig=5"},
	})
	require.Equal(t, uint64(2), c.Config().Sequence())
	require.Equal(t, uint64(7), c.Height())
	require.False(t, c.Resubmitting())
}

func TestCoreRevalidation(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	runScript(t, c, 0, []scriptStep{
		{rec: config("cfg:1:3:20", 0), want: "block 1 config [cfg:1:3:20] persisted=0 orig=0 resub=0 lastconfig=1"},
		// Stale and still valid: re-submitted at the current sequence,
		// nothing ordered now.
		{rec: normal("t1", 0), want: "produce normal t1 seq=1 orig=1\nnote resubmitted@1"},
		// Stale and invalid now: dropped.
		{rec: normal("bad1", 0), want: "note invalid@2"},
		{rec: normal("exp1-x", 0), want: "note invalid@3"},
		// Valid at sequence 1, expiring at 2.
		{rec: normal("exp2-y", 0), want: "produce normal exp2-y seq=1 orig=4\nnote resubmitted@4"},
		// The re-submission of t1 is ordered.
		{rec: resubmitted("t1", 1, 1), want: "timer start"},
		// Another node's re-submission of the same message: duplicate.
		{rec: resubmitted("t1", 1, 1), want: "note duplicate@6"},
		// Ahead of the channel's sequence: skipped.
		{rec: normal("n2", 2), want: "note skipped@7"},
		{rec: resubmitted("n3", 2, 3), want: "note skipped@8"},
		{rec: ttc(2), want: "block 2 [t1] persisted=9 orig=1 resub=0 lastconfig=1\ntimer stop"},
		// A config makes the re-submission of exp2-y stale again; it is now
		// invalid and dropped.
		{rec: config("cfg:2:3:20", 1), want: "block 3 config [cfg:2:3:20] persisted=10 orig=1 resub=0 lastconfig=3"},
		{rec: resubmitted("exp2-y", 1, 4), want: "note invalid@11"},
		// A stale re-submission that is still valid is re-submitted again,
		// with its own offset as the original one.
		{rec: resubmitted("t9", 1, 5), want: "produce normal t9 seq=2 orig=12\nnote resubmitted@12"},
		{rec: resubmitted("t9", 2, 12), want: "timer start"},
		{rec: resubmitted("t9", 2, 12), want: "note duplicate@14"},
		{rec: ttc(4), want: "block 4 [t9] persisted=15 orig=12 resub=0 lastconfig=3\ntimer stop"},
		// Older original offsets are duplicates too.
		{rec: resubmitted("t1", 2, 1), want: "note duplicate@16"},
	})
	require.False(t, c.Resubmitting())
}

func TestCoreConfigResubmissionGate(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	var blocks []*cb.Block
	var configs []ChannelConfig
	cfg := c.Config()
	keep := func(r *Ready) {
		for _, b := range r.Blocks {
			if b.IsConfig {
				cfg = c.Config()
			}
			blocks = append(blocks, proto.Clone(b.Block).(*cb.Block))
			configs = append(configs, cfg)
		}
	}
	steps := []struct {
		rec          []byte
		want         string
		resubmitting bool
	}{
		{config("cfg:1:3:20", 0), "block 1 config [cfg:1:3:20] persisted=0 orig=0 resub=0 lastconfig=1", false},
		// Stale config, still valid: re-submitted, the gate closes.
		{config("cfg:*:2:20", 0), "produce config cfg:*:2:20 seq=1 orig=1\nnote resubmitted@1", true},
		{normal("a", 1), "timer start", true},
		// This block is cut while the gate is closed.
		{ttc(2), "block 2 [a] persisted=3 orig=0 resub=1 lastconfig=1\ntimer stop", true},
		{normal("b", 1), "timer start", true},
		// The re-submitted config arrives: gate opens, pending cut first.
		{configResubmitted("cfg:*:2:20", 1, 1), "block 3 [b] persisted=4 orig=0 resub=1 lastconfig=1\n" +
			"block 4 config [cfg:*:2:20] persisted=5 orig=1 resub=1 lastconfig=4\ntimer stop", false},
		// Another node's copy: a duplicate.
		{configResubmitted("cfg:*:2:20", 1, 1), "note duplicate@6", false},
		{normal("c", 2), "timer start", false},
		{ttc(5), "block 5 [c] persisted=8 orig=1 resub=1 lastconfig=4\ntimer stop", false},
	}
	for i, s := range steps {
		r := c.Step(Record{Offset: int64(i), Value: s.rec})
		require.Equal(t, s.want, render(t, r), "offset %d", i)
		require.Equal(t, s.resubmitting, c.Resubmitting(), "offset %d", i)
		keep(r)
	}

	// Restart from each block: the gate is closed exactly for blocks cut
	// while the re-submitted config was in flight (2 and 3), and the
	// restarted core writes the same blocks.
	for k, b := range blocks {
		rc, err := NewCore("testchannel", CoreState{LastBlock: b, Config: configs[k]})
		require.NoError(t, err)
		wantGate := b.Header.Number == 2 || b.Header.Number == 3
		require.Equal(t, wantGate, rc.Resubmitting(), "restart from block %d", b.Header.Number)
		var got [][]byte
		for off := rc.NextOffset(); off < int64(len(steps)); off++ {
			r := rc.Step(Record{Offset: off, Value: steps[off].rec})
			got = append(got, blockBytes(t, r)...)
			require.Equal(t, steps[off].resubmitting, rc.Resubmitting(), "restart from block %d, offset %d", b.Header.Number, off)
		}
		var want [][]byte
		for _, wb := range blocks[k+1:] {
			want = append(want, marshal(t, wb))
		}
		require.Equal(t, want, got, "restart from block %d", b.Header.Number)
	}
}

// A re-submitted config that was valid when re-submitted and is invalid
// when it arrives (another config got in first) and is invalid again at
// the new sequence: it is consumed and dropped, so nothing is in flight any
// more.
func TestCoreConfigResubmissionInvalidWhenCurrent(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	runScript(t, c, 0, []scriptStep{
		{rec: config("cfg:1:3:20", 0), want: "block 1 config [cfg:1:3:20] persisted=0 orig=0 resub=0 lastconfig=1"},
		{rec: config("cfg:2:2:20:B", 0), want: "produce config cfg:2:2:20:B seq=1 orig=1\nnote resubmitted@1"},
		// The same re-submission, arriving with its sequence still current
		// but invalid (here: a malformed copy with the same original offset).
		{rec: configResubmitted("cfg:9:2:20:B", 1, 1), want: "note invalid@2"},
	})
	require.False(t, c.Resubmitting())
	runScript(t, c, 3, []scriptStep{
		{rec: normal("a", 1), want: "timer start"},
		{rec: ttc(2), want: "block 2 [a] persisted=4 orig=1 resub=1 lastconfig=1\ntimer stop"},
	})
}

// TestCoreConfigResubmissionGateStuck: a config update B arrives stale and
// is re-submitted (the gate closes); before its re-submission arrives,
// another update D (ordered by a node that had not consumed B yet) moves
// the channel to the next sequence; B's re-submission then arrives stale
// again and fails re-validation, so it is dropped. Nothing is in flight
// any more, yet the core keeps Resubmitting() true forever: configMsg only
// opens the gate for a re-submission whose ConfigSeq is current, and the
// dropped one's is not. The blocks cut afterwards record
// LastResubmittedConfigOffset (1) > LastOriginalOffsetProcessed (0), so a
// restarted node waits forever too: the channel accepts no envelope again
// on any node.
//
// Fix in configMsg: when a CONFIG message with OriginalOffset ==
// lastResubmittedConfigOffset is consumed and not re-submitted again
// (applied, or dropped as invalid at whatever sequence), open the gate and
// set lastOriginalOffsetProcessed to its OriginalOffset; i.e. in the
// ValidateConfig error branch, test
// `m.OriginalOffset != 0 && (m.ConfigSeq == c.config.Sequence() || m.OriginalOffset == c.lastResubmittedConfigOffset)`
// and set c.resubmitting = false there when m.OriginalOffset ==
// c.lastResubmittedConfigOffset.
func TestCoreConfigResubmissionGateStuck(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	runScript(t, c, 0, []scriptStep{
		{rec: config("cfg:1:3:20:A", 0), want: "block 1 config [cfg:1:3:20:A] persisted=0 orig=0 resub=0 lastconfig=1"},
		{rec: config("cfg:2:2:20:B", 0), want: "produce config cfg:2:2:20:B seq=1 orig=1\nnote resubmitted@1"},
		{rec: config("cfg:2:3:30:D", 1), want: "block 2 config [cfg:2:3:30:D] persisted=2 orig=0 resub=1 lastconfig=2"},
		// B's re-submission, stale again, now invalid (target 2 at sequence 2).
		{rec: configResubmitted("cfg:2:2:20:B", 1, 1), want: "note invalid@3"},
	})
	require.False(t, c.Resubmitting(), "the only re-submitted config was consumed and dropped: nothing is in flight")
	r := c.Step(Record{Offset: 4, Value: normal("big1", 2)})
	require.Len(t, r.Blocks, 1)
	rc, err := NewCore("testchannel", CoreState{LastBlock: r.Blocks[0].Block, Config: c.Config()})
	require.NoError(t, err)
	require.False(t, rc.Resubmitting(), "a restarted node must not wait for a dropped re-submission")
}

func TestCoreSkipsForeignRecords(t *testing.T) {
	env := mustMarshal(envOf("a"))
	tests := []struct {
		name  string
		value []byte
		note  bool
	}{
		{"connect", connect(), false},
		{"garbage", garbage(), true},
		{"empty kafka message", nil, true},
		{"kafka message with unknown field", withUnknownField(normal("a", 0)), true},
		{"regular without an envelope", mustMarshal(regularMsg([]byte{0xff, 0x01}, 0, ab.KafkaMessageRegular_NORMAL, 0)), true},
		{"regular with an empty envelope", mustMarshal(regularMsg(nil, 0, ab.KafkaMessageRegular_NORMAL, 0)), true},
		{"envelope with unknown field", mustMarshal(regularMsg(withUnknownField(env), 0, ab.KafkaMessageRegular_NORMAL, 0)), true},
		{"class unknown", mustMarshal(regularMsg(env, 0, ab.KafkaMessageRegular_UNKNOWN, 0)), true},
		{"class out of range", mustMarshal(regularMsg(env, 0, ab.KafkaMessageRegular_Class(7), 0)), true},
		{"negative original offset", mustMarshal(regularMsg(env, 0, ab.KafkaMessageRegular_NORMAL, -5)), true},
		{"config sequence ahead", normal("a", 3), true},
		{"ttc with unknown field", withUnknownField(ttc(1)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCore(t, defaultConfig())
			// Some state: one block, one envelope pending, timer running.
			runScript(t, c, 0, []scriptStep{
				{rec: normal("big0", 0), want: "block 1 [big0] persisted=0 orig=0 resub=0 lastconfig=0"},
				{rec: normal("p", 0), want: "timer start"},
			})
			before := stateOf(c)
			r := c.Step(Record{Offset: 2, Value: tt.value})
			want := ""
			if tt.note {
				want = "note skipped@2"
				require.Error(t, r.Notes[0].Err)
			}
			require.Equal(t, want, render(t, r))
			require.Equal(t, before, stateOf(c))
			runScript(t, c, 3, []scriptStep{
				{rec: ttc(2), want: "block 2 [p] persisted=3 orig=0 resub=0 lastconfig=0\ntimer stop"},
			})
		})
	}
}

// Garbage interleaved in a log changes the offsets (so the metadata), not
// the blocks' contents.
func TestCoreGarbageDoesNotChangeBlocks(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		log := genLog(t, seed, 300, false)
		r := rand.New(rand.NewPCG(seed, 99))
		var noisy [][]byte
		for _, v := range log {
			for r.IntN(6) == 0 {
				noisy = append(noisy, [][]byte{garbage(), connect(), withUnknownField(v), nil}[r.IntN(4)])
			}
			noisy = append(noisy, v)
		}
		a, b := contents(t, log), contents(t, noisy)
		require.Equal(t, a, b, "seed %d", seed)
	}
}

// contents runs a core over log and returns what its blocks hold.
func contents(t *testing.T, log [][]byte) []string {
	c := newTestCore(t, defaultConfig())
	var out []string
	for off, v := range log {
		r := c.Step(Record{Offset: int64(off), Value: v})
		for _, b := range r.Blocks {
			out = append(out, fmt.Sprintf("%d %v %q", b.Block.Header.Number, b.IsConfig, b.Block.Data.Data))
		}
	}
	return out
}

// TestCoreManyNodesSameBlocks: three cores fed the same log, built as the
// nodes' producers would build it (their re-submissions and time-to-cuts
// appended later, by one or several nodes), return the same blocks, byte
// for byte, and the same messages to produce.
func TestCoreManyNodesSameBlocks(t *testing.T) {
	seeds := uint64(100)
	if testing.Short() || raceEnabled() {
		seeds = 20
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		sim := newSim(t, seed, 3, true)
		sim.run(400)
		require.NotEmpty(t, sim.blocks, "seed %d", seed)
	}
}

// sim builds a log the way a cluster would: clients' envelopes (some
// validated at an old sequence), config updates, Connects and foreign
// records, timer expiries, and what the nodes produce in return, each
// node's messages in its own order and appended at later positions.
type sim struct {
	t       testing.TB
	seed    uint64
	r       *rand.Rand
	cores   []*Core
	queues  [][][]byte // per producing node, FIFO of values to append
	log     [][]byte
	blocks  [][]byte         // marshalled blocks, block i+1 at index i
	configs []ChannelConfig  // config in force after block i+1
	garbage bool             // add foreign records
	tx      int              // envelopes submitted
	seqs    []ChannelConfig  // configs seen, by sequence
	notes   map[NoteKind]int // notes seen, for coverage
}

func newSim(t testing.TB, seed uint64, cores int, garbage bool) *sim {
	s := &sim{t: t, seed: seed, r: rand.New(rand.NewPCG(seed, 7)), queues: make([][][]byte, 3),
		garbage: garbage, notes: map[NoteKind]int{}}
	for range cores {
		s.cores = append(s.cores, newTestCore(t, defaultConfig()))
	}
	s.seqs = []ChannelConfig{s.cores[0].Config()}
	return s
}

// genLog returns a log built by a one-core simulation of a cluster.
func genLog(t testing.TB, seed uint64, n int, garbage bool) [][]byte {
	s := newSim(t, seed, 1, garbage)
	s.run(n)
	return s.log
}

func (s *sim) run(n int) {
	for len(s.log) < n {
		s.step()
	}
}

func (s *sim) step() {
	r := s.r
	seq := s.cores[0].Config().Sequence()
	// The sequence a submitting node validated against: mostly current.
	clientSeq := seq
	if seq > 0 && r.IntN(5) == 0 {
		clientSeq = seq - 1 - uint64(r.IntN(int(min(seq, 2))))
	}
	switch x := r.IntN(100); {
	case x < 38:
		s.tx++
		p := fmt.Sprintf("t%d", s.tx)
		switch y := r.IntN(20); {
		case y < 3:
			p = "mid" + p
		case y < 5:
			p = "big" + p
		case y < 6:
			p = "bad" + p
		case y < 8:
			p = fmt.Sprintf("exp%d-%s", seq+1, p)
		}
		s.append(normal(p, clientSeq))
	case x < 43:
		s.tx++
		var p string
		lim := fmt.Sprintf("%d:%d", 1+r.IntN(5), 10+r.IntN(60))
		switch r.IntN(5) {
		case 0:
			p = fmt.Sprintf("cfg:*:%s:%d", lim, s.tx) // valid whenever it arrives
		case 1:
			p = fmt.Sprintf("cfg:%d:%s:%d", seq+3, lim, s.tx) // invalid
		case 2:
			p = fmt.Sprintf("cfg:%d:0:10:%d", seq+1, s.tx) // malformed
		default:
			p = fmt.Sprintf("cfg:%d:%s:%d", clientSeq+1, lim, s.tx)
		}
		s.append(config(p, clientSeq))
	case x < 55:
		// Every node's timer fires at the same point here, so that all
		// cores see the same calls; which of them get their time-to-cut
		// into the log is the queues' business.
		s.ready(-1, nil)
	case x < 90:
		s.flush()
	case x < 93:
		s.append(connect())
	case x < 97 && s.garbage:
		s.append([][]byte{garbage(), withUnknownField(normal("u", seq)), nil}[r.IntN(3)])
	default:
		// A late copy of an old record (a producer retry gone wrong).
		if len(s.log) > 0 && r.IntN(2) == 0 {
			s.append(bytes.Clone(s.log[r.IntN(len(s.log))]))
		}
	}
}

// flush appends the oldest queued message of a random node.
func (s *sim) flush() {
	var ready []int
	for i, q := range s.queues {
		if len(q) > 0 {
			ready = append(ready, i)
		}
	}
	if len(ready) == 0 {
		return
	}
	i := ready[s.r.IntN(len(ready))]
	v := s.queues[i][0]
	s.queues[i] = s.queues[i][1:]
	s.append(v)
}

func (s *sim) append(v []byte) {
	off := int64(len(s.log))
	s.log = append(s.log, v)
	s.ready(off, v)
}

// ready steps every core with the record (or fires their timers when off is
// negative), checks they agree and queues what they produce.
func (s *sim) ready(off int64, v []byte) {
	t := s.t
	var first string
	var firstBlocks [][]byte
	var produce []*ab.KafkaMessage
	for i, c := range s.cores {
		seqBefore := c.Config()
		var r *Ready
		if off < 0 {
			r = c.TimerFired()
		} else {
			r = c.Step(Record{Offset: off, Value: v})
		}
		got, blocks := render(t, r), blockBytes(t, r)
		if i == 0 {
			first, firstBlocks = got, blocks
			produce = append(produce, r.Produce...)
			for _, n := range r.Notes {
				s.notes[n.Kind]++
			}
			cfg := seqBefore
			for j, b := range r.Blocks {
				if b.IsConfig {
					cfg = c.Config()
					s.seqs = append(s.seqs, cfg)
				}
				require.Equal(t, uint64(len(s.blocks)+1), b.Block.Header.Number)
				s.blocks = append(s.blocks, blocks[j])
				s.configs = append(s.configs, cfg)
			}
			continue
		}
		require.Equal(t, first, got, "seed %d offset %d: core %d disagrees", s.seed, off, i)
		require.Equal(t, firstBlocks, blocks, "seed %d offset %d: core %d blocks differ", s.seed, off, i)
		require.Equal(t, stateOf(s.cores[0]), stateOf(c), "seed %d offset %d", s.seed, off)
	}
	for _, m := range produce {
		v := marshal(t, m)
		// Every node produces it; whether each copy makes it to the log
		// (and so how many duplicates there are) is random, but one does.
		sent := false
		for n := range s.queues {
			if s.r.IntN(10) < 6 || (!sent && n == len(s.queues)-1) {
				s.queues[n] = append(s.queues[n], v)
				sent = true
			}
		}
	}
}

func TestCoreSimulationCoverage(t *testing.T) {
	// The generated logs exercise every note and both kinds of blocks.
	notes := map[NoteKind]int{}
	configBlocks := 0
	for seed := uint64(1); seed <= 20; seed++ {
		s := newSim(t, seed, 1, true)
		s.run(300)
		for k, n := range s.notes {
			notes[k] += n
		}
		configBlocks += len(s.seqs) - 1
	}
	// (No NoteEmptyTimeToCut: every cut moves the next block number on, so
	// a time-to-cut that a node produced is either stale or finds the batch
	// it was sent for.)
	for _, k := range []NoteKind{NoteSkipped, NoteInvalid, NoteDuplicate, NoteResubmitted, NoteStaleTimeToCut} {
		require.Positive(t, notes[k], "no %v note in the generated logs", k)
	}
	require.Positive(t, configBlocks)
}

func TestCoreNewCoreErrors(t *testing.T) {
	_, err := NewCore("ch", CoreState{Config: defaultConfig()})
	require.Error(t, err)
	_, err = NewCore("ch", CoreState{LastBlock: genesisBlock()})
	require.Error(t, err)

	bad := genesisBlock()
	bad.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER] = []byte{0xff}
	_, err = NewCore("ch", CoreState{LastBlock: bad, Config: defaultConfig()})
	require.Error(t, err)

	bad = genesisBlock()
	bad.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER] = mustMarshal(&cb.Metadata{Value: []byte{0xff}})
	_, err = NewCore("ch", CoreState{LastBlock: bad, Config: defaultConfig()})
	require.Error(t, err)

	c := newTestCore(t, defaultConfig())
	require.Equal(t, OffsetBeforeOldest, c.LastOffsetPersisted())
	require.Equal(t, int64(0), c.NextOffset())
	require.Equal(t, uint64(1), c.Height())
	require.Zero(t, c.Pending())
	require.False(t, c.Resubmitting())
}

// The Ready of a step is reused by the next one; blocks already returned
// are not modified.
func TestCoreReadyReuse(t *testing.T) {
	c := newTestCore(t, defaultConfig())
	r := c.Step(Record{Offset: 0, Value: normal("big1", 0)})
	b1 := r.Blocks[0].Block
	want := marshal(t, b1)
	_ = c.Step(Record{Offset: 1, Value: normal("big2", 0)})
	require.Equal(t, want, marshal(t, b1))
}
