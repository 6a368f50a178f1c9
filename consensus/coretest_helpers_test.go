package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// raceEnabled reports whether the test binary runs with the race detector,
// which makes the randomised tests several times slower.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// fakeConfig is a deterministic ChannelConfig for the core's tests.
//
// Normal envelopes: a payload starting with "bad" is never valid; a payload
// "exp<k>-..." is valid below sequence k only (valid when submitted, invalid
// once the channel reaches sequence k).
//
// Config envelopes carry the new limits in their payload:
// "cfg:<target>:<maxCount>:<preferred>[:anything]". target is the sequence
// the update establishes and must be the current one plus one; "*" stands
// for "the next one", an update that stays valid however late it arrives.
type fakeConfig struct {
	seq     uint64
	limits  blockcutter.Limits
	timeout time.Duration
}

var _ ChannelConfig = (*fakeConfig)(nil)

func newFakeConfig(seq uint64, maxCount, preferred uint32) *fakeConfig {
	return &fakeConfig{
		seq:     seq,
		limits:  blockcutter.Limits{MaxMessageCount: maxCount, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: preferred},
		timeout: time.Second,
	}
}

func (c *fakeConfig) Sequence() uint64                { return c.seq }
func (c *fakeConfig) BatchLimits() blockcutter.Limits { return c.limits }
func (c *fakeConfig) BatchTimeout() time.Duration     { return c.timeout }

func (c *fakeConfig) ValidateNormal(env *cb.Envelope) error {
	p := string(env.GetPayload())
	if strings.HasPrefix(p, "bad") {
		return errors.New("fake: bad envelope")
	}
	if rest, ok := strings.CutPrefix(p, "exp"); ok {
		k, _, _ := strings.Cut(rest, "-")
		n, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return fmt.Errorf("fake: malformed expiring envelope %q", p)
		}
		if c.seq >= n {
			return fmt.Errorf("fake: envelope expired at sequence %d", n)
		}
	}
	return nil
}

func (c *fakeConfig) ValidateConfig(env *cb.Envelope) (ChannelConfig, error) {
	f := strings.Split(string(env.GetPayload()), ":")
	if len(f) < 4 || f[0] != "cfg" {
		return nil, fmt.Errorf("fake: malformed config update %q", env.GetPayload())
	}
	if f[1] != "*" {
		target, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("fake: malformed target %q", f[1])
		}
		if target != c.seq+1 {
			return nil, fmt.Errorf("fake: update to sequence %d at sequence %d", target, c.seq)
		}
	}
	maxCount, err1 := strconv.ParseUint(f[2], 10, 32)
	preferred, err2 := strconv.ParseUint(f[3], 10, 32)
	if err1 != nil || err2 != nil || maxCount == 0 || preferred == 0 {
		return nil, fmt.Errorf("fake: malformed limits in %q", env.GetPayload())
	}
	return newFakeConfig(c.seq+1, uint32(maxCount), uint32(preferred)), nil
}

// defaultConfig: 3 envelopes or 20 bytes per batch.
func defaultConfig() *fakeConfig { return newFakeConfig(0, 3, 20) }

// envOf returns the envelope of payload p. Its size (payload + signature)
// is len(p)+1, except: "mid..." carries a 10-byte signature (two of them
// overflow the default 20 preferred bytes) and "big..." a 30-byte one
// (larger than the default preferred bytes on its own).
func envOf(p string) *cb.Envelope {
	sig := "s"
	switch {
	case strings.HasPrefix(p, "mid"):
		sig = strings.Repeat("m", 10)
	case strings.HasPrefix(p, "big"):
		sig = strings.Repeat("b", 30)
	}
	return &cb.Envelope{Payload: []byte(p), Signature: []byte(sig)}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := protoutil.Marshal(m)
	require.NoError(t, err)
	return b
}

func regularMsg(payload []byte, seq uint64, class ab.KafkaMessageRegular_Class, orig int64) *ab.KafkaMessage {
	return &ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
		Payload: payload, ConfigSeq: seq, Class: class, OriginalOffset: orig,
	}}}
}

func mustMarshal(m proto.Message) []byte { return protoutil.MarshalOrPanic(m) }

// normal is the record value of a first submission of payload p validated
// at config sequence seq.
func normal(p string, seq uint64) []byte {
	return mustMarshal(regularMsg(mustMarshal(envOf(p)), seq, ab.KafkaMessageRegular_NORMAL, 0))
}

// resubmitted is the record value of a re-submission of normal envelope p,
// first ordered at offset orig, re-validated at sequence seq.
func resubmitted(p string, seq uint64, orig int64) []byte {
	return mustMarshal(regularMsg(mustMarshal(envOf(p)), seq, ab.KafkaMessageRegular_NORMAL, orig))
}

// config is the record value of a first submission of config update p.
func config(p string, seq uint64) []byte {
	return mustMarshal(regularMsg(mustMarshal(envOf(p)), seq, ab.KafkaMessageRegular_CONFIG, 0))
}

// configResubmitted is the record value of a re-submitted config update.
func configResubmitted(p string, seq uint64, orig int64) []byte {
	return mustMarshal(regularMsg(mustMarshal(envOf(p)), seq, ab.KafkaMessageRegular_CONFIG, orig))
}

func ttc(n uint64) []byte {
	return mustMarshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_TimeToCut{TimeToCut: &ab.KafkaMessageTimeToCut{BlockNumber: n}}})
}

func connect() []byte {
	return mustMarshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_Connect{Connect: &ab.KafkaMessageConnect{}}})
}

// garbage is a record value that is not a KafkaMessage (an invalid wire
// type).
func garbage() []byte { return []byte{0xff, 0xff, 0xff, 0x07, 'x'} }

// withUnknownField appends field 99 (varint 1) to a marshalled message.
func withUnknownField(b []byte) []byte {
	b = bytes.Clone(b)
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

func genesisBlock() *cb.Block {
	return protoutil.NewBlock(0, nil, [][]byte{[]byte("genesis")})
}

func newTestCore(t testing.TB, cfg ChannelConfig) *Core {
	t.Helper()
	c, err := NewCore("testchannel", CoreState{LastBlock: genesisBlock(), Config: cfg})
	require.NoError(t, err)
	return c
}

// payloads returns the payloads of the envelopes of b.
func payloads(t testing.TB, b *cb.Block) []string {
	t.Helper()
	var out []string
	for _, d := range b.GetData().GetData() {
		env, err := protoutil.UnmarshalEnvelope(d)
		require.NoError(t, err)
		out = append(out, string(env.Payload))
	}
	return out
}

// render describes a Ready in the compact form the scripts expect, one
// line per item: blocks, produced messages, timer action, notes. It checks
// on the way that each block's metadata slots hold what Ready says.
func render(t testing.TB, r *Ready) string {
	t.Helper()
	return renderReady(t, r, false)
}

// renderReady is render, with each note's reason when withReasons is set.
func renderReady(t testing.TB, r *Ready, withReasons bool) string {
	t.Helper()
	var lines []string
	configs := 0
	for _, b := range r.Blocks {
		if b.IsConfig {
			configs++
		}
	}
	require.Equal(t, configs > 0, r.Config != nil, "Ready.Config is set exactly when a config block was cut")
	for _, b := range r.Blocks {
		md, err := KafkaMetadataOf(b.Block)
		require.NoError(t, err)
		if md == nil {
			// All-zero metadata marshals to an empty slot (see
			// TestCoreRestartFromBlockWithZeroMetadata).
			md = &ab.KafkaMetadata{}
		}
		require.True(t, proto.Equal(md, b.Metadata), "ORDERER slot differs from Ready.Metadata")
		lc, err := protoutil.LastConfigIndex(b.Block)
		require.NoError(t, err)
		require.NoError(t, protoutil.CheckDataHash(b.Block))
		kind := ""
		if b.IsConfig {
			kind = " config"
		}
		again := ""
		if len(md.ResubmittedAgain) > 0 {
			again = fmt.Sprintf(" again=%v", md.ResubmittedAgain)
		}
		lines = append(lines, fmt.Sprintf("block %d%s [%s] persisted=%d orig=%d resub=%d%s lastconfig=%d",
			b.Block.Header.Number, kind, strings.Join(payloads(t, b.Block), " "),
			md.LastOffsetPersisted, md.LastOriginalOffsetProcessed, md.LastResubmittedConfigOffset, again, lc))
	}
	for _, m := range r.Produce {
		lines = append(lines, "produce "+renderMsg(t, m))
	}
	for _, rs := range r.ConfigResubmissions {
		lines = append(lines, fmt.Sprintf("resubmit config seq=%d orig=%d", rs.ConfigSeq, rs.OriginalOffset))
	}
	switch r.Timer {
	case TimerStart:
		lines = append(lines, "timer start")
	case TimerStop:
		lines = append(lines, "timer stop")
	}
	for _, n := range r.Notes {
		line := fmt.Sprintf("note %v@%d", n.Kind, n.Offset)
		if withReasons && n.Err != nil {
			// The protobuf module writes a non-breaking space after
			// "proto:" in some builds, so that nobody depends on its
			// messages: print a plain one.
			line += ": " + strings.ReplaceAll(n.Err.Error(), "\u00a0", " ")
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func renderMsg(t testing.TB, m *ab.KafkaMessage) string {
	t.Helper()
	switch x := m.Type.(type) {
	case *ab.KafkaMessage_TimeToCut:
		return fmt.Sprintf("ttc %d", x.TimeToCut.BlockNumber)
	case *ab.KafkaMessage_Regular:
		env, err := protoutil.UnmarshalEnvelope(x.Regular.Payload)
		require.NoError(t, err)
		class := "normal"
		if x.Regular.Class == ab.KafkaMessageRegular_CONFIG {
			class = "config"
		}
		return fmt.Sprintf("%s %s seq=%d orig=%d", class, env.Payload, x.Regular.ConfigSeq, x.Regular.OriginalOffset)
	}
	return fmt.Sprintf("%v", m)
}

// scriptStep is one step of a core script: a record (consumed at the next
// offset) or, when fire is set, a timer expiry; want is the rendered Ready.
type scriptStep struct {
	rec  []byte
	fire bool
	want string
}

// runScript feeds steps to c, the records at consecutive offsets from
// start, checks each Ready and returns the next offset.
func runScript(t *testing.T, c *Core, start int64, steps []scriptStep) int64 {
	t.Helper()
	off := start
	for i, s := range steps {
		var r *Ready
		if s.fire {
			r = c.TimerFired()
		} else {
			r = c.Step(Record{Offset: off, Value: s.rec})
			off++
		}
		require.Equal(t, s.want, render(t, r), "step %d (offset %d)", i, off-1)
		require.Equal(t, c.Pending(), r.Pending, "step %d: Ready.Pending", i)
		require.Equal(t, c.Resubmitting(), r.Resubmitting, "step %d: Ready.Resubmitting", i)
		require.Equal(t, c.Config().BatchTimeout(), r.BatchTimeout, "step %d: Ready.BatchTimeout", i)
		if r.Config != nil {
			require.Same(t, c.Config(), r.Config, "step %d: Ready.Config is the configuration in force", i)
		}
	}
	return off
}

// coreState is the part of a core's state that shapes its future output.
type coreState struct {
	seq                                       uint64
	next, lastConfig                          uint64
	prevHash                                  []byte
	persisted, origProcessed, resubmittedConf int64
	resubmitting, timer                       bool
	pending                                   int
	pendingBytes                              uint64
}

func stateOf(c *Core) coreState {
	return coreState{
		seq: c.config.Sequence(), next: c.nextNumber, lastConfig: c.lastConfigBlock,
		prevHash: bytes.Clone(c.prevHash), persisted: c.lastOffsetPersisted,
		origProcessed: c.lastOriginalOffsetProcessed, resubmittedConf: c.lastResubmittedConfigOffset,
		resubmitting: c.Resubmitting(), timer: c.timerRunning,
		pending: c.cutter.Pending(), pendingBytes: c.cutter.PendingBytes(),
	}
}

// blockBytes marshals the blocks of r deterministically.
func blockBytes(t testing.TB, r *Ready) [][]byte {
	t.Helper()
	out := make([][]byte, len(r.Blocks))
	for i, b := range r.Blocks {
		out[i] = marshal(t, b.Block)
	}
	return out
}
