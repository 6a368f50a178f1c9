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

// The core's scenarios (time-to-cuts, batches and their metadata, the
// timer, config messages, re-validation, re-submitted configs, foreign
// records) are scripts in testdata/core, run by TestDataDriven. The tests
// here are properties over many generated logs, and restarts.
//
// Default limits: 3 envelopes or 20 bytes per batch; "a" weighs 2 bytes,
// "mid..." about 14 (two overflow a batch), "big..." more than 20 (alone
// in its block).

// TestCoreConfigResubmissionGate: the gate closes while a re-submitted
// config is in flight, and a core restarted from any block derives it
// alike and writes the same blocks.
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
