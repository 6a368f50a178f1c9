package consensus

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// noteReasons makes the scenarios print each note's reason. (Off, the
// output is render's, which the Go tests of the core compare with.)
var noteReasons = true

// TestDataDriven runs the core's scenarios, the files of testdata/core: each
// file is a script of records fed to one core at consecutive offsets, with
// the core's answer to each as expected text. testdata/README.md lists the
// commands. Regenerate the expected text after a deliberate change with
//
//	go test ./consensus -run TestDataDriven -rewrite
//
// and review the diff.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/core", func(t *testing.T, path string) {
		s := newScenario(t)
		datadriven.RunTest(t, path, s.run)
	})
}

// scenario is the state of one script: a core, the log it consumed, and
// the blocks it cut with the configuration in force after each.
type scenario struct {
	core    *Core
	log     [][]byte
	blocks  []*cb.Block     // blocks[k] is block k+1
	configs []ChannelConfig // in force after blocks[k]
	genesis ChannelConfig
}

func newScenario(t *testing.T) *scenario {
	s := &scenario{}
	s.reset(t, defaultConfig(), nil)
	return s
}

func (s *scenario) reset(t *testing.T, cfg ChannelConfig, opts []CoreOption) {
	c, err := NewCore("testchannel", CoreState{LastBlock: genesisBlock(), Config: cfg}, opts...)
	require.NoError(t, err)
	*s = scenario{core: c, genesis: cfg}
}

func (s *scenario) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "reset":
		maxCount, preferred, seq := uint32(3), uint32(20), uint64(0)
		d.MaybeScanArgs(t, "max", &maxCount)
		d.MaybeScanArgs(t, "preferred", &preferred)
		d.MaybeScanArgs(t, "seq", &seq)
		var opts []CoreOption
		if d.HasArg("validate-all") {
			opts = append(opts, ValidateEveryEnvelope())
		}
		s.reset(t, newFakeConfig(seq, maxCount, preferred), opts)
		return ""
	case "normal", "config":
		class := ab.KafkaMessageRegular_NORMAL
		if d.Cmd == "config" {
			class = ab.KafkaMessageRegular_CONFIG
		}
		if len(d.CmdArgs) == 0 || len(d.CmdArgs[0].Vals) > 0 {
			d.Fatalf(t, "%s needs a payload first", d.Cmd)
		}
		seq := s.core.Config().Sequence()
		var orig int64
		d.MaybeScanArgs(t, "seq", &seq)
		d.MaybeScanArgs(t, "orig", &orig)
		return s.step(t, mustMarshal(regularMsg(mustMarshal(envOf(d.CmdArgs[0].Key)), seq, class, orig)))
	case "ttc":
		if len(d.CmdArgs) != 1 {
			d.Fatalf(t, "ttc needs a block number")
		}
		n, err := strconv.ParseUint(d.CmdArgs[0].Key, 10, 64)
		if err != nil {
			d.Fatalf(t, "ttc: %v", err)
		}
		return s.step(t, ttc(n))
	case "connect":
		return s.skip(t, connect())
	case "garbage":
		return s.skip(t, garbage())
	case "foreign":
		if len(d.CmdArgs) != 1 {
			d.Fatalf(t, "foreign needs a kind")
		}
		v, ok := foreignRecords()[d.CmdArgs[0].Key]
		if !ok {
			d.Fatalf(t, "foreign: unknown kind %q", d.CmdArgs[0].Key)
		}
		return s.skip(t, v)
	case "fire":
		return s.check(t, s.core.TimerFired())
	case "restart":
		return s.restart(t, d)
	case "state":
		st := stateOf(s.core)
		l := s.core.Config().BatchLimits()
		return fmt.Sprintf("seq=%d max=%d preferred=%d height=%d lastconfig=%d\npersisted=%d orig=%d resub=%d resubmitting=%v\npending=%d timer=%v position=%d",
			st.seq, l.MaxMessageCount, l.PreferredMaxBytes, st.next, st.lastConfig,
			st.persisted, st.origProcessed, st.resubmittedConf, st.resubmitting, st.pending, st.timer, s.core.Position())
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
		return ""
	}
}

// step feeds v to the core at the next offset.
func (s *scenario) step(t *testing.T, v []byte) string {
	s.log = append(s.log, v)
	return s.check(t, s.core.Step(Record{Offset: int64(len(s.log) - 1), Value: v}))
}

// skip feeds v, a record every core skips, and checks that it changed
// nothing.
func (s *scenario) skip(t *testing.T, v []byte) string {
	before := stateOf(s.core)
	out := s.step(t, v)
	require.Equal(t, before, stateOf(s.core), "a skipped record changes nothing")
	return out
}

// check checks r against the core (as runScript does), keeps its blocks
// and renders it.
func (s *scenario) check(t *testing.T, r *Ready) string {
	t.Helper()
	c := s.core
	require.Equal(t, c.Pending(), r.Pending, "Ready.Pending")
	require.Equal(t, c.Resubmitting(), r.Resubmitting, "Ready.Resubmitting")
	require.Equal(t, c.Config().BatchTimeout(), r.BatchTimeout, "Ready.BatchTimeout")
	if r.Config != nil {
		require.Same(t, c.Config(), r.Config, "Ready.Config is the configuration in force")
	}
	cfg := s.configAfter(len(s.blocks) - 1)
	for _, b := range r.Blocks {
		if b.IsConfig {
			cfg = c.Config()
		}
		s.blocks = append(s.blocks, proto.Clone(b.Block).(*cb.Block))
		s.configs = append(s.configs, cfg)
	}
	return renderReady(t, r, noteReasons)
}

func (s *scenario) configAfter(k int) ChannelConfig {
	if k < 0 {
		return s.genesis
	}
	return s.configs[k]
}

// restart replaces the core with one started from block from (by default
// the last block cut) and the configuration in force after it, which
// consumes the log again from the offset after the one that block
// persisted: it must cut exactly the blocks cut after that one.
func (s *scenario) restart(t *testing.T, d *datadriven.TestData) string {
	from := len(s.blocks)
	d.MaybeScanArgs(t, "from", &from)
	if from < 0 || from > len(s.blocks) {
		d.Fatalf(t, "restart: no block %d (the last block is %d)", from, len(s.blocks))
	}
	last := genesisBlock()
	if from > 0 {
		last = s.blocks[from-1]
	}
	c, err := NewCore("testchannel", CoreState{LastBlock: last, Config: s.configAfter(from - 1)})
	require.NoError(t, err)
	lines := []string{fmt.Sprintf("restarted after block %d, consuming from offset %d", from, c.NextOffset())}
	next := from
	for off := c.NextOffset(); off < int64(len(s.log)); off++ {
		r := c.Step(Record{Offset: off, Value: s.log[off]})
		for _, b := range r.Blocks {
			if next >= len(s.blocks) {
				t.Fatalf("the restarted core cut block %d at offset %d, which the core that ran on did not", b.Block.Header.Number, off)
			}
			require.Equal(t, marshal(t, s.blocks[next]), marshal(t, b.Block), "block %d cut again at offset %d", next+1, off)
			next++
		}
		if out := renderReady(t, r, noteReasons); out != "" {
			lines = append(lines, out)
		}
	}
	require.Equal(t, len(s.blocks), next, "the restarted core cuts every block cut after block %d", from)
	s.core = c
	return strings.Join(lines, "\n")
}

// foreignRecords are records no node of the channel writes, by kind, for
// the foreign command.
func foreignRecords() map[string][]byte {
	env := mustMarshal(envOf("a"))
	return map[string][]byte{
		"empty":                  nil,
		"unknown-field":          withUnknownField(normal("a", 0)),
		"no-envelope":            mustMarshal(regularMsg([]byte{0xff, 0x01}, 0, ab.KafkaMessageRegular_NORMAL, 0)),
		"empty-envelope":         mustMarshal(regularMsg(nil, 0, ab.KafkaMessageRegular_NORMAL, 0)),
		"envelope-unknown-field": mustMarshal(regularMsg(withUnknownField(env), 0, ab.KafkaMessageRegular_NORMAL, 0)),
		"class-unknown":          mustMarshal(regularMsg(env, 0, ab.KafkaMessageRegular_UNKNOWN, 0)),
		"class-7":                mustMarshal(regularMsg(env, 0, ab.KafkaMessageRegular_Class(7), 0)),
		"negative-orig":          mustMarshal(regularMsg(env, 0, ab.KafkaMessageRegular_NORMAL, -5)),
		"future-orig":            mustMarshal(regularMsg(env, 0, ab.KafkaMessageRegular_NORMAL, 1<<40)),
		"ttc-unknown-field":      withUnknownField(ttc(1)),
	}
}
