package consensus

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// checkFastRegular asserts that whenever fastRegular accepts v, the general
// decoder accepts it too, agrees on every field, and the envelope bytes the
// fast path keeps are those a deterministic marshal gives.
func checkFastRegular(t *testing.T, v []byte) bool {
	m, env, raw, ok := fastRegular(v)
	if !ok {
		return false
	}
	msg := new(ab.KafkaMessage)
	require.NoError(t, decodeStrict(v, msg), "fast path accepted what the general one refuses: %x", v)
	want := msg.GetRegular()
	require.NotNil(t, want)
	require.True(t, proto.Equal(want, m), "decoded %v, want %v", m, want)
	wantEnv := new(cb.Envelope)
	require.NoError(t, decodeStrict(want.Payload, wantEnv))
	require.True(t, proto.Equal(wantEnv, env))
	require.Equal(t, protoutil.MarshalOrPanic(env), raw, "kept bytes are not canonical")
	return true
}

func TestFastRegularAcceptsWhatOrderersWrite(t *testing.T) {
	envs := []*cb.Envelope{
		{Payload: []byte("p")},
		{Payload: []byte("payload"), Signature: []byte("sig")},
		{Payload: bytes.Repeat([]byte{7}, 300), Signature: bytes.Repeat([]byte{9}, 72)},
	}
	for _, env := range envs {
		for _, seq := range []uint64{0, 1, 1 << 40} {
			for _, class := range []ab.KafkaMessageRegular_Class{ab.KafkaMessageRegular_NORMAL, ab.KafkaMessageRegular_CONFIG} {
				require.True(t, checkFastRegular(t, encodeRegular(env, seq, class)))
			}
		}
	}
	// A re-submission, as the core produces it.
	resub := protoutil.MarshalOrPanic(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
		Payload: protoutil.MarshalOrPanic(envs[1]), ConfigSeq: 2, Class: ab.KafkaMessageRegular_NORMAL, OriginalOffset: 77,
	}}})
	require.True(t, checkFastRegular(t, resub))
}

func TestFastRegularRefusesNonCanonical(t *testing.T) {
	good := encodeRegular(&cb.Envelope{Payload: []byte("p"), Signature: []byte("s")}, 1, ab.KafkaMessageRegular_NORMAL)
	cases := map[string][]byte{
		"empty":                 {},
		"connect":               connectMessage,
		"trailing byte":         append(append([]byte{}, good...), 0),
		"overlong outer length": append([]byte{0x0a, 0x80 | byte(len(good)-2), 0x00}, good[2:]...),
		"unknown field":         append(append([]byte{}, good...), 0x10, 0x01),
		"signature first":       encodeFields(t, []byte{0x12, 0x01, 's', 0x0a, 0x01, 'p'}),
		"explicit zero seq":     append(append([]byte{0x0a, byte(len(good) - 2 + 2)}, good[2:]...), 0x10, 0x00),
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, _, ok := fastRegular(v)
			require.False(t, ok)
		})
	}
}

// encodeFields wraps raw envelope field bytes in KafkaMessage{Regular{payload}}.
func encodeFields(t *testing.T, env []byte) []byte {
	reg := append([]byte{0x0a, byte(len(env))}, env...)
	return append([]byte{0x0a, byte(len(reg))}, reg...)
}

func FuzzFastRegular(f *testing.F) {
	f.Add(encodeRegular(&cb.Envelope{Payload: []byte("p"), Signature: []byte("s")}, 3, ab.KafkaMessageRegular_CONFIG))
	f.Add(connectMessage)
	f.Add([]byte{0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0x06, 0x0a, 0x02, 0x0a, 0x00, 0x20, 0x05})
	f.Fuzz(func(t *testing.T, v []byte) {
		checkFastRegular(t, v)
	})
}

func BenchmarkCoreStep(b *testing.B) {
	env := &cb.Envelope{Payload: make([]byte, 1000), Signature: make([]byte, 72)}
	value := encodeRegular(env, 0, ab.KafkaMessageRegular_NORMAL)
	cfg := newFakeConfig(0, 500, 2<<20)
	c, err := NewCore("bench", CoreState{LastBlock: protoutil.NewBlock(0, nil, nil), Config: cfg})
	require.NoError(b, err)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		off++
		c.Step(Record{Offset: off, Value: value})
	}
}
