package coretest_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/plainconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

func newLog(t *testing.T, nodes int, cfg consensus.ChannelConfig, opts ...coretest.Option) *coretest.Log {
	t.Helper()
	l, err := coretest.NewLog(nodes, cfg, opts...)
	require.NoError(t, err)
	return l
}

// update returns the config update of the configuration in force to
// maxMessages envelopes per block.
func update(t *testing.T, l *coretest.Log, maxMessages uint32) *cb.Envelope {
	t.Helper()
	next := l.Config().(*plainconfig.Config).Next()
	next.BatchSize.MaxMessageCount = maxMessages
	env, err := plainconfig.UpdateEnvelope(next, nil)
	require.NoError(t, err)
	return env
}

func TestLogOrdersEveryEnvelopeOnce(t *testing.T) {
	l := newLog(t, 3, coretest.OpenConfig(3, time.Second))
	for i := range 10 {
		l.Submit(coretest.Envelope(fmt.Sprintf("t%d", i)))
	}
	require.NoError(t, l.Settle())
	want := "block 1 [t0 t1 t2] persisted=2\nblock 2 [t3 t4 t5] persisted=5\n" +
		"block 3 [t6 t7 t8] persisted=8\nblock 4 [t9] persisted=10"
	for i := range l.Nodes() {
		require.Equal(t, want, l.Summary(i), "node %d", i)
	}
	// The timers of the three nodes expired together: three time-to-cuts,
	// the first cut block 4.
	require.Len(t, l.Records(), 13)
	require.Equal(t, time.Second, l.Now())
	require.NoError(t, l.Check(nil))
}

// Without the nodes' produces, envelopes validated before a config change
// are never ordered: the cores ask for them to be produced again. The Log
// produces them (here when told to).
func TestLogDeliversResubmissions(t *testing.T) {
	l := newLog(t, 2, coretest.OpenConfig(2, time.Second), coretest.WithManualDelivery())
	l.SubmitConfig(update(t, l, 2))
	l.SubmitAt(0, coretest.Envelopes("a", "b")...)
	require.Equal(t, 2, l.Queued(0))
	require.Equal(t, 2, l.Queued(1))
	err := l.CheckExactlyOnce(nil)
	require.ErrorContains(t, err, "envelope a submitted 1 times is in 0 blocks")
	require.ErrorContains(t, err, "envelope b submitted 1 times is in 0 blocks")
	require.NoError(t, l.CheckExactlyOnce(func(env *cb.Envelope) bool { return true }))

	require.True(t, l.Deliver()) // node 0's re-submission of a
	require.Equal(t, 1, l.Queued(0))
	l.Flush()
	require.Zero(t, l.Queued(0)+l.Queued(1))
	require.Equal(t, "block 1 config persisted=0\nblock 2 [a b] persisted=4", l.Summary(1))
	require.False(t, l.Deliver())
	require.NoError(t, l.Check(nil))
}

// Timers expire in order of expiry; a cut stops the timers of every node.
func TestLogTimers(t *testing.T) {
	var fired []string
	var l *coretest.Log
	l = newLog(t, 2, coretest.OpenConfig(10, time.Second), coretest.WithReadyHook(func(node int, rec *consensus.Record, r *consensus.Ready) {
		if rec == nil {
			fired = append(fired, fmt.Sprintf("node %d at %v: %s", node, l.Now(), coretest.FormatReady(r)))
		}
	}))
	l.Submit(coretest.Envelope("a"))
	l.Advance(500 * time.Millisecond)
	require.NoError(t, l.Restart(1)) // consumes a again: its timer starts now
	l.Advance(400 * time.Millisecond)
	require.Empty(t, fired)
	l.Advance(100 * time.Millisecond) // node 0's timer expires, its time-to-cut cuts
	require.Equal(t, []string{"node 0 at 1s: produce ttc 1"}, fired)
	l.Advance(time.Hour) // node 1's timer was stopped by the cut
	require.Len(t, fired, 1)
	require.Equal(t, "block 1 [a] persisted=1", l.Summary(1))
	require.NoError(t, l.Check(nil))
}

// Competing time-to-cuts: every node's timer fires, each node produces a
// time-to-cut, the first in the log cuts and the others are stale, whatever
// order they arrive in.
func TestLogCompetingTimeToCuts(t *testing.T) {
	for seed := range uint64(10) {
		notes := map[consensus.NoteKind]int{}
		l := newLog(t, 4, coretest.OpenConfig(10, time.Second), coretest.WithRandomInterleaving(seed),
			coretest.WithReadyHook(func(_ int, _ *consensus.Record, r *consensus.Ready) {
				for _, n := range r.Notes {
					notes[n.Kind]++
				}
			}))
		l.Submit(coretest.Envelopes("a", "b")...)
		require.NoError(t, l.Settle())
		require.Len(t, l.Records(), 2+4, "seed %d: one time-to-cut per node", seed)
		require.Equal(t, 4*3, notes[consensus.NoteStaleTimeToCut], "seed %d: every node finds 3 stale", seed)
		require.NoError(t, l.Check(nil), "seed %d", seed)
	}
}

// A node restarted at any record of a log writes the blocks the others
// write, byte for byte.
func TestLogRestartAtEveryRecord(t *testing.T) {
	// The records of a small history: envelopes, a config update, stale
	// envelopes and their re-submissions, time-to-cuts, strangers.
	src := newLog(t, 1, coretest.OpenConfig(3, time.Second))
	src.Submit(coretest.Envelopes("a", "b", "c", "d")...)
	src.SubmitConfig(update(t, src, 2))
	src.SubmitAt(0, coretest.Envelopes("e", "f", "g")...)
	src.Append(coretest.StrangerRecords()...)
	src.Submit(coretest.Envelopes("h", "i", "j")...)
	require.NoError(t, src.Settle())
	log := src.Records()

	for k := range len(log) + 1 {
		l := newLog(t, 2, coretest.OpenConfig(3, time.Second), coretest.WithManualDelivery())
		for off, v := range log {
			if off == k {
				require.NoError(t, l.Restart(1))
			}
			l.Append(v)
		}
		if k == len(log) {
			require.NoError(t, l.Restart(1))
		}
		require.Equal(t, src.Summary(0), l.Summary(1), "restart at record %d", k)
		require.NoError(t, l.CheckIdentical(), "restart at record %d", k)
		require.NoError(t, l.CheckRestarts(), "restart at record %d", k)
	}
}

// A node that is down while the others order catches up when it starts,
// and nodes restarted while re-submissions are in flight lose nothing.
func TestLogStopStart(t *testing.T) {
	l := newLog(t, 3, coretest.OpenConfig(2, time.Second), coretest.WithManualDelivery())
	l.Submit(coretest.Envelopes("a", "b", "c")...)
	l.Stop(2)
	require.False(t, l.Running(2))
	l.SubmitConfig(update(t, l, 3))
	l.SubmitAt(0, coretest.Envelopes("d", "e")...) // stale: re-submitted by 0 and 1
	require.NoError(t, l.Restart(0))
	l.Stop(1) // its re-submissions are in flight: they still arrive
	require.NoError(t, l.Settle())
	require.NoError(t, l.CheckExactlyOnce(nil))
	require.Equal(t, uint64(1), l.Blocks(2)[len(l.Blocks(2))-1].Header.Number, "node 2 stopped after block 1")
	require.NoError(t, l.CheckIdentical(), "stopped nodes may lag")
	require.NoError(t, l.Start(1))
	require.NoError(t, l.Start(2))
	require.NoError(t, l.Start(2), "starting a running node does nothing")
	require.NoError(t, l.Settle())
	require.NoError(t, l.Check(nil))
	require.Equal(t, l.Summary(0), l.Summary(2))
}

// If every node loses its copy of a re-submission (DropQueued) and a
// block is cut past the stale record before the nodes start again, the
// envelope is lost: restarted nodes resume after the persisted offset and
// never consume the stale record again. The protocol (Fabric's too) has
// this window; CheckExactlyOnce finds it.
func TestLogLostResubmission(t *testing.T) {
	l := newLog(t, 2, coretest.OpenConfig(1, time.Second), coretest.WithManualDelivery())
	l.SubmitConfig(update(t, l, 1))
	l.SubmitAt(0, coretest.Envelope("stale")) // offset 1, re-submission queued on both nodes
	l.Submit(coretest.Envelope("next"))       // offset 2: cut alone, persisted=2
	require.Equal(t, 1, l.DropQueued(0))
	require.Equal(t, 1, l.DropQueued(1))
	require.NoError(t, l.Restart(0))
	require.NoError(t, l.Restart(1))
	require.NoError(t, l.Settle())
	require.ErrorContains(t, l.CheckExactlyOnce(nil), "envelope stale submitted 1 times is in 0 blocks")
	require.NoError(t, l.CheckIdentical())
	require.NoError(t, l.CheckRestarts())
}

// TestLogConfigOvertakesResubmission: an envelope validated before a
// config update is re-submitted by every node with its offset as the
// original one; another config update lands while those copies are in
// flight, so each copy that arrives is stale again. Under Fabric 1.4's
// rule each would be re-submitted again under its own offset, and the
// envelope ordered once per copy. The core re-submits the first copy only
// and drops the others as duplicates, also on a node restarted from a
// block cut in between: the block records the original offsets re-submitted
// again (KafkaMetadata.resubmitted_again).
func TestLogConfigOvertakesResubmission(t *testing.T) {
	l := newLog(t, 3, coretest.OpenConfig(10, time.Second), coretest.WithManualDelivery())
	l.SubmitConfig(update(t, l, 10))      // offset 0: sequence 1
	l.SubmitAt(0, coretest.Envelope("x")) // offset 1: stale; every node queues x, original offset 1
	l.SubmitConfig(update(t, l, 10))      // offset 2: sequence 2, the copies in flight
	require.True(t, l.DeliverFrom(0))     // offset 3: node 0's copy, stale again; every node queues x, original offset 3
	l.Submit(coretest.Envelope("y"))      // offset 4: y pending, batch timers start
	require.Equal(t, 2, l.DropQueued(2))  // node 2 loses its copies of x
	l.Advance(time.Second)                // every node queues a time-to-cut for block 3
	require.True(t, l.DeliverFrom(2))     // offset 5: it cuts block 3 [y]
	md, err := consensus.KafkaMetadataOf(l.Blocks(0)[3])
	require.NoError(t, err)
	require.Equal(t, []int64{1}, md.ResubmittedAgain, "block 3 records that original offset 1 was re-submitted again")
	// Node 1 starts again from block 3: its copy of x with original offset
	// 1 is a duplicate to it too, so it re-submits nothing.
	require.NoError(t, l.Restart(1))
	require.True(t, l.DeliverFrom(1))     // offset 6: node 1's first copy of x, original offset 1
	for i, want := range []int{2, 2, 0} { // node 0 and 1: x with original offset 3, a time-to-cut
		require.Equal(t, want, l.Queued(i), "node %d: a duplicate re-submits nothing", i)
	}
	require.NoError(t, l.Settle())
	require.Equal(t, "block 1 config persisted=0\nblock 2 config persisted=2\nblock 3 [y] persisted=5\nblock 4 [x] persisted=11", l.Summary(0))
	require.NoError(t, l.Check(nil))
}

// Records from a stranger shift the offsets, not what is ordered.
func TestLogStrangers(t *testing.T) {
	run := func(strangers bool) string {
		l := newLog(t, 3, coretest.OpenConfig(2, time.Second))
		for i := range 9 {
			if strangers {
				l.Append(coretest.StrangerRecords()[i%len(coretest.StrangerRecords())])
			}
			l.Submit(coretest.Envelope(fmt.Sprintf("t%d", i)))
		}
		require.NoError(t, l.Settle())
		require.NoError(t, l.Check(nil))
		var out []string
		for _, b := range l.Blocks(0)[1:] {
			out = append(out, strings.Split(coretest.FormatBlock(b), " persisted")[0])
		}
		return strings.Join(out, "\n")
	}
	require.Equal(t, run(false), run(true))
}

// With a parser, a restarted node reads its configuration back from its
// last config block, as a node process does.
func TestLogConfigParser(t *testing.T) {
	rules := coretest.OpenRules()
	genesis, err := plainconfig.GenesisBlock(coretest.OpenConfig(3, time.Second).Settings())
	require.NoError(t, err)
	l := newLog(t, 2, nil, coretest.WithGenesis(genesis), coretest.WithConfigParser(plainconfig.Parser(rules)))
	l.SubmitConfig(update(t, l, 2))
	require.NoError(t, l.Restart(1))
	require.Equal(t, uint32(2), l.Core(1).Config().BatchLimits().MaxMessageCount)
	require.NotSame(t, l.Core(0).Config(), l.Core(1).Config(), "read back from the block")
	l.Submit(coretest.Envelopes("a", "b", "c")...)
	require.NoError(t, l.Settle())
	require.Equal(t, "block 1 config persisted=0\nblock 2 [a b] persisted=2\nblock 3 [c] persisted=4", l.Summary(1))
	require.NoError(t, l.Check(nil))

	// A parser that cannot read the genesis block.
	_, err = coretest.NewLog(1, nil, coretest.WithConfigParser(plainconfig.Parser(rules)))
	require.ErrorIs(t, err, plainconfig.ErrMalformed)
}

func TestNewLogErrors(t *testing.T) {
	cfg := coretest.OpenConfig(1, time.Second)
	_, err := coretest.NewLog(0, cfg)
	require.ErrorContains(t, err, "at least one")
	_, err = coretest.NewLog(1, nil)
	require.ErrorContains(t, err, "no configuration")
	_, err = coretest.NewLog(1, cfg, coretest.WithDuplicateProduces(1.5))
	require.ErrorContains(t, err, "between 0 and 1")
	_, err = coretest.NewLog(1, cfg, coretest.WithGenesis(&cb.Block{}))
	require.Error(t, err)
}

// The checks find what they are for.
func TestChecksFindFaults(t *testing.T) {
	build := func() *coretest.Log {
		l := newLog(t, 2, coretest.OpenConfig(2, time.Second), coretest.WithChannel("faults"))
		l.Submit(coretest.Envelopes("a", "b", "c", "d", "e")...)
		require.NoError(t, l.Settle())
		require.NoError(t, l.Check(nil))
		return l
	}

	// A block that differs on one node.
	for name, tamper := range map[string]func(*cb.Block){
		"header":   func(b *cb.Block) { b.Header.Number += 10 },
		"data":     func(b *cb.Block) { b.Data.Data[0] = []byte("x") },
		"metadata": func(b *cb.Block) { b.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER] = []byte{1} },
	} {
		l := build()
		b := proto.Clone(l.Blocks(1)[2]).(*cb.Block)
		tamper(b)
		l.Blocks(1)[2] = b
		err := l.CheckIdentical()
		require.ErrorContains(t, err, "node 1's block 2 differs from node 0's: "+name, name)
	}

	// A height that differs among running nodes.
	l := build()
	l.Stop(1)
	l.Submit(coretest.Envelopes("f", "g")...)
	require.NoError(t, l.CheckIdentical(), "a stopped node may lag")
	require.NoError(t, l.Start(1))
	require.NoError(t, l.CheckIdentical())

	// An envelope twice in the log (a duplicated first submission, which
	// only a misbehaving producer writes).
	l = build()
	l.Append(coretest.Normal(coretest.Envelope("a"), 0))
	require.NoError(t, l.Settle())
	require.ErrorContains(t, l.CheckExactlyOnce(nil), "envelope a submitted 1 times is in blocks [1 4]")

	// A ledger block that a restarted core does not cut again.
	l = build()
	b := proto.Clone(l.Blocks(0)[2]).(*cb.Block)
	b.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER] = []byte{}
	l.Blocks(0)[2] = b
	err := l.CheckRestarts()
	require.ErrorContains(t, err, "restart from block 1: block 2 cut at offset 3 differs: metadata slot ORDERER")
	require.True(t, errors.Is(l.Check(nil), err) || strings.Contains(l.Check(nil).Error(), err.Error()))
}

var randomSeeds = flag.Int("seeds", 0, "runs of TestLogRandomised, one seed each (default 250; 8 with -short or -race)")

// TestLogRandomised: many nodes, random submissions (some validated before
// a config change, some that stop being valid), config updates, timer
// expiries, deliveries in random order with duplicates, restarts,
// stopped nodes and strangers' records: the invariants hold.
func TestLogRandomised(t *testing.T) {
	seeds := uint64(250)
	if testing.Short() || raceEnabled {
		seeds = 8
	}
	if *randomSeeds > 0 {
		seeds = uint64(*randomSeeds)
	}
	for seed := range seeds {
		randomRun(t, seed, 5, 400)
	}
}

// expiringRules: "exp<k>-..." payloads are valid below sequence k only.
var expiringRules = plainconfig.Rules{
	Validate: func(cfg *plainconfig.Config, env *cb.Envelope) error {
		var k uint64
		if _, err := fmt.Sscanf(string(env.Payload), "exp%d-", &k); err == nil && cfg.Sequence() >= k {
			return fmt.Errorf("expired at sequence %d", k)
		}
		return nil
	},
	AuthorizeUpdate: func(*plainconfig.Config, plainconfig.Settings, *cb.Envelope) error { return nil },
}

func randomRun(t *testing.T, seed uint64, nodes, steps int) {
	t.Helper()
	r := newRand(seed)
	settings := plainconfig.Settings{
		Channel:      "random",
		BatchSize:    blockcutter.Limits{MaxMessageCount: 3, AbsoluteMaxBytes: 1 << 10, PreferredMaxBytes: 20},
		BatchTimeout: time.Second,
	}
	opts := []coretest.Option{
		coretest.WithRandomInterleaving(seed), coretest.WithManualDelivery(), coretest.WithDuplicateProduces(0.1),
	}
	var cfg consensus.ChannelConfig
	if seed%2 == 1 { // half the runs read configurations back from blocks
		genesis, err := plainconfig.GenesisBlock(settings)
		require.NoError(t, err)
		opts = append(opts, coretest.WithGenesis(genesis), coretest.WithConfigParser(plainconfig.Parser(expiringRules)))
	} else {
		c, err := plainconfig.New(settings, expiringRules)
		require.NoError(t, err)
		cfg = c
	}
	l := newLog(t, nodes, cfg, opts...)
	tx := 0
	for range steps {
		cur := l.Config().(*plainconfig.Config)
		seq := cur.Sequence()
		// The sequence a client's node validated at: mostly the current one.
		at := seq
		if seq > 0 && r.IntN(4) == 0 {
			at = seq - 1 - uint64(r.IntN(int(min(seq, 2))))
		}
		switch x := r.IntN(100); {
		case x < 35:
			tx++
			p := fmt.Sprintf("t%d", tx)
			switch r.IntN(10) {
			case 0:
				p = fmt.Sprintf("exp%d-t%d", seq+1, tx)
			case 1:
				p = strings.Repeat("m", 12) + p // two overflow 20 preferred bytes
			case 2:
				p = strings.Repeat("b", 25) + p // alone in its block
			}
			l.SubmitAt(at, coretest.Envelope(p))
		case x < 40:
			next := cur.Next()
			next.BatchSize.MaxMessageCount = uint32(1 + r.IntN(5))
			next.BatchTimeout = time.Duration(200+r.IntN(2000)) * time.Millisecond
			tx++
			next.Data = fmt.Appendf(nil, "update %d", tx)
			env, err := plainconfig.UpdateEnvelope(next, nil)
			require.NoError(t, err)
			l.SubmitConfigAt(at, env)
		case x < 65:
			l.Deliver()
		case x < 78:
			l.Advance(time.Duration(r.IntN(1500)) * time.Millisecond)
		case x < 83:
			require.NoError(t, l.Restart(r.IntN(nodes)), "seed %d", seed)
		case x < 86:
			if i := r.IntN(nodes); running(l) > 1 {
				l.Stop(i)
			}
		case x < 90:
			require.NoError(t, l.Start(r.IntN(nodes)), "seed %d", seed)
		case x < 95:
			s := coretest.StrangerRecords()
			l.Append(s[r.IntN(len(s))])
		default:
			l.Flush()
		}
	}
	for i := range nodes {
		require.NoError(t, l.Start(i), "seed %d", seed)
	}
	require.NoError(t, l.Settle(), "seed %d", seed)
	mayDrop := func(env *cb.Envelope) bool {
		return bytes.HasPrefix(env.Payload, []byte("exp")) || bytes.HasPrefix(env.Payload, []byte("{"))
	}
	require.NoError(t, l.Check(mayDrop), "seed %d", seed)
	require.Greater(t, len(l.Blocks(0)), 20, "seed %d: a run that orders something", seed)
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 42)) }

func running(l *coretest.Log) int {
	n := 0
	for i := range l.Nodes() {
		if l.Running(i) {
			n++
		}
	}
	return n
}
