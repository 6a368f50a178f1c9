package fabricconfig

import (
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
		sh, err := protoutil.NewSignatureHeader(s)
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
// signed by signer, in envelope's format, which protoutil.NewSignedEnvelope
// does not write (its channel header has a client's tx_id and nanoseconds).
func signedEnvelope(t cb.HeaderType, channelID string, data []byte, signer Signer) (*cb.Envelope, error) {
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signer", channelconfig.ErrMalformed)
	}
	sh, err := protoutil.NewSignatureHeader(signer)
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
// marshalled signature header sh and data, as Fabric's orderer and
// configuration tools write one: a channel header without tx_id, stamped
// with the current time in whole seconds.
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
