package protoutil

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// slowHeaders is EnvelopeHeaders' general path: proto.Unmarshal of each
// part.
func slowHeaders(payload []byte) (*cb.Payload, *cb.SignatureHeader, error) {
	p := new(cb.Payload)
	if err := proto.Unmarshal(payload, p); err != nil {
		return nil, nil, err
	}
	sh := new(cb.SignatureHeader)
	if err := proto.Unmarshal(p.GetHeader().GetSignatureHeader(), sh); err != nil {
		return nil, nil, err
	}
	return p, sh, nil
}

// checkFastPayload asserts that whenever fastPayload accepts b, the
// general decoder accepts it too and decodes the same messages.
func checkFastPayload(t *testing.T, b []byte) bool {
	p, sh, ok := fastPayload(b)
	if !ok {
		return false
	}
	wantP, wantSH, err := slowHeaders(b)
	require.NoError(t, err, "fast path accepted what proto.Unmarshal refuses: %x", b)
	require.NotNil(t, wantP.GetHeader())
	require.True(t, proto.Equal(wantP, p), "payload %v, want %v", p, wantP)
	require.True(t, proto.Equal(wantSH, sh), "signature header %v, want %v", sh, wantSH)
	return true
}

func marshalPayload(t testing.TB, ch, sh, data []byte) []byte {
	return MarshalOrPanic(&cb.Payload{Header: &cb.Header{ChannelHeader: ch, SignatureHeader: sh}, Data: data})
}

func TestFastPayloadAcceptsWhatClientsWrite(t *testing.T) {
	ch := MarshalOrPanic(&cb.ChannelHeader{Type: int32(cb.HeaderType_ENDORSER_TRANSACTION), ChannelId: "ch", TxId: "tx"})
	sh := MarshalOrPanic(&cb.SignatureHeader{Creator: []byte("creator"), Nonce: []byte("nonce")})
	for _, b := range [][]byte{
		marshalPayload(t, ch, sh, []byte("data")),
		marshalPayload(t, ch, sh, nil),
		marshalPayload(t, nil, nil, nil),
		marshalPayload(t, ch, MarshalOrPanic(&cb.SignatureHeader{Nonce: []byte("n")}), make([]byte, 3000)),
	} {
		require.True(t, checkFastPayload(t, b))
		env := &cb.Envelope{Payload: b}
		h, err := EnvelopeHeaders(env)
		require.NoError(t, err)
		if d := h.Payload.GetData(); len(d) > 0 {
			// The data, marshalled last, aliases the end of the payload.
			d[0] ^= 0xff
			require.Equal(t, d[0], b[len(b)-len(d)], "data aliases the payload")
			d[0] ^= 0xff
		}
	}
}

func TestFastPayloadLeavesTheRestToProto(t *testing.T) {
	ch := MarshalOrPanic(&cb.ChannelHeader{ChannelId: "ch"})
	good := marshalPayload(t, ch, nil, []byte("d"))
	cases := map[string][]byte{
		"empty, no header":            {},
		"data only":                   MarshalOrPanic(&cb.Payload{Data: []byte("d")}),
		"unknown field":               append(append([]byte{}, good...), 0x18, 0x01),
		"header twice":                append(append([]byte{}, good...), good[:2+int(good[1])]...),
		"data before":                 append([]byte{0x12, 0x01, 'd'}, good[:2+int(good[1])]...),
		"varint header":               {0x08, 0x01},
		"truncated":                   good[:len(good)-1],
		"signature header is not one": marshalPayload(t, ch, []byte{0x08, 0x01}, nil),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, ok := fastPayload(b)
			require.False(t, ok)
		})
	}
}

func FuzzFastPayload(f *testing.F) {
	ch := MarshalOrPanic(&cb.ChannelHeader{ChannelId: "ch", TxId: "tx"})
	sh := MarshalOrPanic(&cb.SignatureHeader{Creator: []byte("c"), Nonce: []byte("n")})
	f.Add(marshalPayload(f, ch, sh, []byte("data")))
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00, 0x12, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastPayload(t, b)
	})
}

// BenchmarkEnvelopeHeaders measures EnvelopeHeaders of a 1 KiB
// transaction whose creator is a certificate's size.
func BenchmarkEnvelopeHeaders(b *testing.B) {
	ch := MarshalOrPanic(&cb.ChannelHeader{Type: int32(cb.HeaderType_ENDORSER_TRANSACTION), ChannelId: "mychannel", TxId: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
	sh := MarshalOrPanic(&cb.SignatureHeader{Creator: make([]byte, 800), Nonce: make([]byte, 24)})
	env := &cb.Envelope{Payload: marshalPayload(b, ch, sh, make([]byte, 1024)), Signature: make([]byte, 71)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EnvelopeHeaders(env); err != nil {
			b.Fatal(err)
		}
	}
}
