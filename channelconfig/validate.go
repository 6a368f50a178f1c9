package channelconfig

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// ValidateNormal checks a normal (non-configuration) envelope submitted to
// the channel, in this order: its payload and headers decode (else
// ErrMalformed); its channel header names this channel (else
// ErrWrongChannel); its header type is not CONFIG (else ErrMalformed); its
// creator deserializes and is valid (else ErrForbidden, also wrapping the
// msp error); its signature over the payload verifies (else
// ErrBadSignature); its creator's signature satisfies the Writers policy
// (else ErrForbidden).
//
// The creator is deserialized, validated and its signature verified once;
// the policy is evaluated with that result.
func (b *Bundle) ValidateNormal(env *cb.Envelope) error {
	return b.ValidateNormalHeaders(env, nil)
}

// ValidateNormalHeaders is ValidateNormal of env whose headers h the
// caller decoded with protoutil.EnvelopeHeaders (to route env, say), so
// that they are not decoded again; a nil h is decoded here. h must be
// what protoutil.EnvelopeHeaders returned for env: the signature is
// verified over env's payload, the creator and channel read from h.
func (b *Bundle) ValidateNormalHeaders(env *cb.Envelope, h *protoutil.Headers) error {
	h, creator, err := b.checkEnvelope(env, h)
	if err != nil {
		return err
	}
	if cb.HeaderType(h.ChannelHeader.GetType()) == cb.HeaderType_CONFIG {
		return fmt.Errorf("%w: channel %s: CONFIG envelope submitted as a normal message", ErrMalformed, b.ChannelID())
	}
	return b.evaluatePolicy(WritersPolicy, creator)
}

// ValidateDeliver checks a Deliver request: a DELIVER_SEEK_INFO envelope for
// this channel (else ErrMalformed or ErrWrongChannel) whose creator is
// valid (else ErrForbidden), whose signature verifies (else
// ErrBadSignature) and satisfies the Readers policy (else ErrForbidden).
func (b *Bundle) ValidateDeliver(env *cb.Envelope) error {
	h, creator, err := b.checkEnvelope(env, nil)
	if err != nil {
		return err
	}
	if t := cb.HeaderType(h.ChannelHeader.GetType()); t != cb.HeaderType_DELIVER_SEEK_INFO {
		return fmt.Errorf("%w: channel %s: header type %s, want DELIVER_SEEK_INFO", ErrMalformed, b.ChannelID(), t)
	}
	return b.evaluatePolicy(ReadersPolicy, creator)
}

// ValidateConfig checks a configuration update and returns the Bundle of
// the new configuration. env must pass the decoding and channel checks of
// ValidateNormal, have header type CONFIG (else ErrMalformed),
// be signed by a valid creator (else ErrForbidden or ErrBadSignature), and
// carry a ConfigEnvelope (else ErrMalformed) whose configuration is for this
// channel (else ErrWrongChannel), has sequence Sequence()+1 (else
// ErrBadSequence), and whose ConfigSignatures, each over its
// signature_header followed by the config bytes, satisfy the current Admins
// policy (else ErrForbidden). The new configuration must pass NewBundle
// (else ErrMalformed); the new Bundle keeps b's options.
func (b *Bundle) ValidateConfig(env *cb.Envelope) (*Bundle, error) {
	h, _, err := b.checkEnvelope(env, nil)
	if err != nil {
		return nil, err
	}
	if t := cb.HeaderType(h.ChannelHeader.GetType()); t != cb.HeaderType_CONFIG {
		return nil, fmt.Errorf("%w: channel %s: header type %s, want CONFIG", ErrMalformed, b.ChannelID(), t)
	}
	ce, cfg, err := decodeConfigEnvelope(h.Payload.GetData())
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", b.ChannelID(), err)
	}
	if cfg.GetChannelId() != b.ChannelID() {
		return nil, fmt.Errorf("%w: channel %s: configuration for channel %q", ErrWrongChannel, b.ChannelID(), cfg.GetChannelId())
	}
	if cfg.GetSequence() != b.Sequence()+1 {
		return nil, fmt.Errorf("%w: channel %s: configuration sequence %d, want %d", ErrBadSequence, b.ChannelID(), cfg.GetSequence(), b.Sequence()+1)
	}
	signed := make([]msp.SignedData, 0, len(ce.GetSignatures()))
	for i, cs := range ce.GetSignatures() {
		sh := new(cb.SignatureHeader)
		if err := proto.Unmarshal(cs.GetSignatureHeader(), sh); err != nil {
			return nil, fmt.Errorf("%w: channel %s: config signature %d: %w", ErrMalformed, b.ChannelID(), i, err)
		}
		data := make([]byte, 0, len(cs.GetSignatureHeader())+len(ce.GetConfig()))
		data = append(append(data, cs.GetSignatureHeader()...), ce.GetConfig()...)
		signed = append(signed, msp.SignedData{Data: data, Identity: sh.GetCreator(), Signature: cs.GetSignature()})
	}
	if err := b.EvaluatePolicy(AdminsPolicy, signed); err != nil {
		return nil, fmt.Errorf("configuration update to sequence %d: %w", cfg.GetSequence(), err)
	}
	nb, err := NewBundle(cfg, b.opts...)
	if err == nil {
		err = nb.checkUsable()
	}
	if err != nil {
		return nil, fmt.Errorf("configuration update to sequence %d: %w", cfg.GetSequence(), err)
	}
	return nb, nil
}

// checkUsable refuses, with ErrMalformed, a configuration that would leave
// the channel unusable for ever: one without an application or an orderer
// organisation, or whose Readers, Writers or Admins policy no identity of
// its organisations could satisfy (then nobody could read, write or
// change the configuration again).
func (b *Bundle) checkUsable() error {
	switch {
	case len(b.cfg.GetApplicationOrgs()) == 0:
		return fmt.Errorf("%w: channel %s: no application organisation", ErrMalformed, b.ChannelID())
	case len(b.cfg.GetOrdererOrgs()) == 0:
		return fmt.Errorf("%w: channel %s: no orderer organisation", ErrMalformed, b.ChannelID())
	}
	for _, name := range []string{ReadersPolicy, WritersPolicy, AdminsPolicy} {
		if err := b.couldSatisfy(name); err != nil {
			return fmt.Errorf("%w: channel %s: no identity could satisfy policy %s: %w", ErrMalformed, b.ChannelID(), name, err)
		}
	}
	return nil
}

// couldSatisfy reports whether identities of the configuration's
// organisations could satisfy channel policy name (see
// msp.Manager.CouldSatisfy); an implicit meta policy needs enough
// organisations whose sub-policy could be.
func (b *Bundle) couldSatisfy(name string) error {
	p := b.policies[name]
	if p.sig != nil {
		return b.mgr.CouldSatisfy(p.sig)
	}
	need := threshold(p.meta.GetRule(), len(b.orgs))
	could, errs := b.countOrgs(p.meta, need, b.mgr.CouldSatisfy)
	if could < need {
		return fmt.Errorf("%s %s: %d of %d organisations could, need %d: %w", p.meta.GetRule(), p.meta.GetSubPolicy(), could, len(b.orgs), need, errors.Join(errs...))
	}
	return nil
}

func signedData(env *cb.Envelope, h *protoutil.Headers) msp.SignedData {
	return msp.SignedData{Data: env.GetPayload(), Identity: h.SignatureHeader.GetCreator(), Signature: env.GetSignature()}
}

// checkEnvelope runs the checks shared by every kind of envelope: headers
// (decoded unless h gives them), channel, creator validity and signature.
// (The envelope's size against AbsoluteMaxBytes is the ordering node's
// check, not the configuration's.) It returns the headers and the
// creator's checked signature, which policies are then evaluated with.
func (b *Bundle) checkEnvelope(env *cb.Envelope, h *protoutil.Headers) (*protoutil.Headers, *msp.CheckedSignatures, error) {
	if env == nil {
		return nil, nil, fmt.Errorf("%w: channel %s: nil envelope", ErrMalformed, b.ChannelID())
	}
	if h == nil {
		var err error
		if h, err = protoutil.EnvelopeHeaders(env); err != nil {
			return nil, nil, fmt.Errorf("%w: channel %s: %w", ErrMalformed, b.ChannelID(), err)
		}
	}
	if got := h.ChannelHeader.GetChannelId(); got != b.ChannelID() {
		return nil, nil, fmt.Errorf("%w: envelope for channel %q sent to channel %s", ErrWrongChannel, got, b.ChannelID())
	}
	creator := b.mgr.CheckSignatures([]msp.SignedData{signedData(env, h)})
	if err := creator.Err(0); err != nil {
		if errors.Is(err, msp.ErrBadSignature) {
			return nil, nil, fmt.Errorf("channel %s: envelope signature: %w", b.ChannelID(), err)
		}
		return nil, nil, fmt.Errorf("%w: channel %s: creator: %w", ErrForbidden, b.ChannelID(), err)
	}
	return h, creator, nil
}

func decodeConfigEnvelope(data []byte) (*ccpb.ConfigEnvelope, *ccpb.ChannelConfig, error) {
	ce := new(ccpb.ConfigEnvelope)
	if err := proto.Unmarshal(data, ce); err != nil {
		return nil, nil, fmt.Errorf("%w: decoding ConfigEnvelope: %w", ErrMalformed, err)
	}
	cfg := new(ccpb.ChannelConfig)
	if err := proto.Unmarshal(ce.GetConfig(), cfg); err != nil {
		return nil, nil, fmt.Errorf("%w: decoding ChannelConfig: %w", ErrMalformed, err)
	}
	return ce, cfg, nil
}
