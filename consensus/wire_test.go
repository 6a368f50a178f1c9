package consensus

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

func TestEncodeRegularMatchesProto(t *testing.T) {
	big := make([]byte, 300)
	for i := range big {
		big[i] = byte(i)
	}
	withUnknown := &cb.Envelope{Payload: []byte("p")}
	withUnknown.ProtoReflect().SetUnknown([]byte{0x18, 0x07}) // field 3 varint 7
	cases := []struct {
		name  string
		env   *cb.Envelope
		seq   uint64
		class ab.KafkaMessageRegular_Class
	}{
		{"plain", &cb.Envelope{Payload: []byte("payload"), Signature: []byte("sig")}, 0, ab.KafkaMessageRegular_NORMAL},
		{"config seq", &cb.Envelope{Payload: big, Signature: big[:72]}, 1 << 40, ab.KafkaMessageRegular_CONFIG},
		{"no signature", &cb.Envelope{Payload: big}, 3, ab.KafkaMessageRegular_NORMAL},
		{"empty envelope", &cb.Envelope{}, 0, ab.KafkaMessageRegular_UNKNOWN},
		{"unknown fields kept", withUnknown, 1, ab.KafkaMessageRegular_NORMAL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			envBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.env)
			require.NoError(t, err)
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{
				Regular: &ab.KafkaMessageRegular{Payload: envBytes, ConfigSeq: tc.seq, Class: tc.class},
			}})
			require.NoError(t, err)
			got := encodeRegular(tc.env, tc.seq, tc.class)
			require.Equal(t, want, got)
			require.Equal(t, len(got), cap(got), "one exact allocation")
		})
	}
}

func TestConnectMessageDecodes(t *testing.T) {
	m := new(ab.KafkaMessage)
	require.NoError(t, proto.Unmarshal(connectMessage, m))
	require.NotNil(t, m.GetConnect())
}

func BenchmarkEncodeRegular(b *testing.B) {
	env := &cb.Envelope{Payload: make([]byte, 1000), Signature: make([]byte, 72)}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = encodeRegular(env, 1, ab.KafkaMessageRegular_NORMAL)
		}
	})
	b.Run("proto-twice", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			eb, _ := proto.Marshal(env)
			_, _ = proto.Marshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{
				Regular: &ab.KafkaMessageRegular{Payload: eb, ConfigSeq: 1, Class: ab.KafkaMessageRegular_NORMAL},
			}})
		}
	})
}
