package fabricconfig

import (
	"crypto/rand"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Signer signs envelopes and config updates: protoutil's Signer, which
// msp.SigningIdentity satisfies.
type Signer = protoutil.Signer

// nonceSize is the size of the nonces Fabric's tools put in signature
// headers.
const nonceSize = 24

// NewConfigEnvelope wraps ce into a CONFIG envelope for channelID signed by
// signer, as Fabric's orderer makes one: a channel header of type CONFIG
// naming the channel, stamped with the current time in whole seconds, with
// an empty tx_id; a signature header with signer's identity and a fresh
// 24-byte nonce; signer's signature over the payload.
func NewConfigEnvelope(channelID string, ce *cb.ConfigEnvelope, signer Signer) (*cb.Envelope, error) {
	data, err := protoutil.Marshal(ce)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", channelconfig.ErrMalformed, err)
	}
	return signedEnvelope(cb.HeaderType_CONFIG, channelID, data, signer)
}

// NewConfigUpdateEnvelope returns the CONFIG_UPDATE envelope of update, as
// Fabric's tools make one (peer channel signconfigtx, peer channel
// update): each signer adds a ConfigSignature over its signature header
// followed by the marshalled update, and the first signer signs the
// envelope. With no signers the envelope and the update are unsigned (as
// configtxgen writes a channel creation transaction).
func NewConfigUpdateEnvelope(update *cb.ConfigUpdate, signers ...Signer) (*cb.Envelope, error) {
	raw, err := protoutil.Marshal(update)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", channelconfig.ErrMalformed, err)
	}
	cue := &cb.ConfigUpdateEnvelope{ConfigUpdate: raw}
	for i, s := range signers {
		sh, err := signatureHeader(s)
		if err != nil {
			return nil, fmt.Errorf("config signature %d: %w", i, err)
		}
		sig, err := s.Sign(append(append([]byte(nil), sh...), raw...))
		if err != nil {
			return nil, fmt.Errorf("config signature %d: %w", i, err)
		}
		cue.Signatures = append(cue.Signatures, &cb.ConfigSignature{SignatureHeader: sh, Signature: sig})
	}
	data := protoutil.MarshalOrPanic(cue)
	if len(signers) == 0 {
		return envelope(cb.HeaderType_CONFIG_UPDATE, update.GetChannelId(), nil, data), nil
	}
	return signedEnvelope(cb.HeaderType_CONFIG_UPDATE, update.GetChannelId(), data, signers[0])
}

// signedEnvelope returns an envelope of type t for channelID holding data,
// signed by signer.
func signedEnvelope(t cb.HeaderType, channelID string, data []byte, signer Signer) (*cb.Envelope, error) {
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signer", channelconfig.ErrMalformed)
	}
	sh, err := signatureHeader(signer)
	if err != nil {
		return nil, err
	}
	env := envelope(t, channelID, sh, data)
	if env.Signature, err = signer.Sign(env.Payload); err != nil {
		return nil, fmt.Errorf("signing envelope: %w", err)
	}
	return env, nil
}

// envelope returns an unsigned envelope of type t for channelID with the
// marshalled signature header sh and data.
func envelope(t cb.HeaderType, channelID string, sh, data []byte) *cb.Envelope {
	ch := &cb.ChannelHeader{
		Type:      int32(t),
		ChannelId: channelID,
		Timestamp: &timestamppb.Timestamp{Seconds: time.Now().Unix()},
	}
	payload := &cb.Payload{
		Header: &cb.Header{ChannelHeader: protoutil.MarshalOrPanic(ch), SignatureHeader: sh},
		Data:   data,
	}
	return &cb.Envelope{Payload: protoutil.MarshalOrPanic(payload)}
}

// signatureHeader returns a marshalled signature header of s with a fresh
// nonce.
func signatureHeader(s Signer) ([]byte, error) {
	creator, err := s.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serializing signer: %w", err)
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return protoutil.Marshal(&cb.SignatureHeader{Creator: creator, Nonce: nonce})
}
