package protoutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// fakeSigner "signs" with SHA-256 of the message, so that a test can
// check what was signed.
type fakeSigner struct{ err error }

func (s fakeSigner) Serialize() ([]byte, error) { return []byte("creator"), s.err }
func (s fakeSigner) Sign(msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	return h[:], s.err
}

func TestNewSignedEnvelope(t *testing.T) {
	env, err := NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, "ch", []byte("data"), fakeSigner{})
	require.NoError(t, err)
	want := sha256.Sum256(env.Payload)
	require.Equal(t, want[:], env.Signature, "the signature is over the payload")
	h, err := EnvelopeHeaders(env)
	require.NoError(t, err)
	require.Equal(t, int32(cb.HeaderType_ENDORSER_TRANSACTION), h.ChannelHeader.Type)
	require.Equal(t, "ch", h.ChannelHeader.ChannelId)
	require.NotNil(t, h.ChannelHeader.Timestamp)
	require.Equal(t, []byte("creator"), h.SignatureHeader.Creator)
	require.Len(t, h.SignatureHeader.Nonce, NonceSize)
	id := sha256.Sum256(append(append([]byte(nil), h.SignatureHeader.Nonce...), "creator"...))
	require.Equal(t, hex.EncodeToString(id[:]), h.ChannelHeader.TxId, "Fabric's tx ID")
	require.Equal(t, []byte("data"), h.Payload.Data)

	again, err := NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, "ch", []byte("data"), fakeSigner{})
	require.NoError(t, err)
	require.NotEqual(t, env.Payload, again.Payload, "a fresh nonce each time")

	_, err = NewSignedEnvelope(cb.HeaderType_MESSAGE, "ch", nil, nil)
	require.Error(t, err)
	_, err = NewSignedEnvelope(cb.HeaderType_MESSAGE, "ch", nil, fakeSigner{err: errors.New("hsm down")})
	require.ErrorContains(t, err, "hsm down")
}

func TestUnmarshalBlock(t *testing.T) {
	b := NewBlock(3, []byte("prev"), [][]byte{[]byte("tx")})
	got, err := UnmarshalBlock(MarshalOrPanic(b))
	require.NoError(t, err)
	require.Equal(t, HeaderBytes(b.Header), HeaderBytes(got.Header))
	_, err = UnmarshalBlock([]byte{0xff})
	require.ErrorContains(t, err, "decoding block")
}
