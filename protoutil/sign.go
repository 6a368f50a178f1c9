package protoutil

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Signer is an identity that signs: msp.SigningIdentity satisfies it.
type Signer interface {
	// Serialize returns the marshalled msp.SerializedIdentity of the
	// signer, the creator of what it signs.
	Serialize() ([]byte, error)
	// Sign signs msg.
	Sign(msg []byte) ([]byte, error)
}

// NonceSize is the size of the nonces of signature headers, as Fabric's.
const NonceSize = 24

// NewNonce returns NonceSize random bytes.
func NewNonce() ([]byte, error) {
	b := make([]byte, NonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return b, nil
}

// NewSignatureHeader returns signer's marshalled signature header: its
// serialized identity as creator and a fresh nonce.
func NewSignatureHeader(signer Signer) ([]byte, error) {
	creator, err := signer.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serializing the signer: %w", err)
	}
	nonce, err := NewNonce()
	if err != nil {
		return nil, err
	}
	return Marshal(&cb.SignatureHeader{Creator: creator, Nonce: nonce})
}

// TxID returns Fabric's transaction ID of a signature header: the hex
// SHA-256 of its nonce followed by its creator.
func TxID(nonce, creator []byte) string {
	h := sha256.New()
	h.Write(nonce)
	h.Write(creator)
	return hex.EncodeToString(h.Sum(nil))
}

// NewSignedEnvelope returns an envelope of type typ for channelID holding
// data, signed by signer, as a Fabric client builds one: a channel header
// (type, channel, the current time, the tx ID of the signature header), a
// signature header (signer's identity, a fresh 24-byte nonce), and the
// signature of the marshalled payload.
func NewSignedEnvelope(typ cb.HeaderType, channelID string, data []byte, signer Signer) (*cb.Envelope, error) {
	return NewSignedEnvelopeWithTLSBinding(typ, channelID, data, signer, nil)
}

// NewSignedEnvelopeWithTLSBinding is NewSignedEnvelope with tlsCertHash in
// the channel header's tls_cert_hash: the SHA-256 of the DER of the TLS
// client certificate of the connection the envelope is sent on, which an
// orderer that requires client certificates may check (Fabric's
// CreateSignedEnvelopeWithTLSBinding).
func NewSignedEnvelopeWithTLSBinding(typ cb.HeaderType, channelID string, data []byte, signer Signer, tlsCertHash []byte) (*cb.Envelope, error) {
	if signer == nil {
		return nil, fmt.Errorf("protoutil: nil signer")
	}
	sh, err := NewSignatureHeader(signer)
	if err != nil {
		return nil, err
	}
	shDec := new(cb.SignatureHeader)
	if err := proto.Unmarshal(sh, shDec); err != nil {
		return nil, err
	}
	payload, err := Marshal(&cb.Payload{
		Header: &cb.Header{
			ChannelHeader: MarshalOrPanic(&cb.ChannelHeader{
				Type:        int32(typ),
				ChannelId:   channelID,
				Timestamp:   timestamppb.Now(),
				TxId:        TxID(shDec.Nonce, shDec.Creator),
				TlsCertHash: tlsCertHash,
			}),
			SignatureHeader: sh,
		},
		Data: data,
	})
	if err != nil {
		return nil, err
	}
	sig, err := signer.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("signing the envelope: %w", err)
	}
	return &cb.Envelope{Payload: payload, Signature: sig}, nil
}

// UnmarshalBlock decodes a marshalled common.Block.
func UnmarshalBlock(b []byte) (*cb.Block, error) {
	blk := new(cb.Block)
	if err := proto.Unmarshal(b, blk); err != nil {
		return nil, fmt.Errorf("decoding block: %w", err)
	}
	return blk, nil
}
