package fabricconfig

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// ValidateNormal checks a normal (non-configuration) envelope submitted to
// the channel as Fabric's Broadcast filters do (but for the size, which is
// the ordering node's check: consensus.ErrTooLarge), in this order: its
// payload and headers decode (else
// ErrMalformed); its channel header names this channel (else
// ErrWrongChannel); its header type is not CONFIG, CONFIG_UPDATE or
// ORDERER_TRANSACTION (else ErrMalformed); its creator deserializes and is
// valid (else ErrForbidden, also wrapping the msp error); its signature over
// the payload verifies (else ErrBadSignature); its creator's signature
// satisfies /Channel/Writers (else ErrForbidden).
func (b *Bundle) ValidateNormal(env *cb.Envelope) error {
	return b.checkFilters(env, nil, -1)
}

// ValidateNormalHeaders is ValidateNormal of env whose headers h the
// caller decoded with protoutil.EnvelopeHeaders (to route env, say), so
// that they are not decoded again; a nil h is decoded here. h must be
// what protoutil.EnvelopeHeaders returned for env: the signature is
// verified over env's payload, the creator and channel read from h.
func (b *Bundle) ValidateNormalHeaders(env *cb.Envelope, h *protoutil.Headers) error {
	return b.checkFilters(env, h, -1)
}

// ValidateDeliver checks a Deliver request: a DELIVER_SEEK_INFO envelope for
// this channel (else ErrMalformed or ErrWrongChannel) whose creator is
// valid (else ErrForbidden), whose signature verifies (else
// ErrBadSignature) and satisfies /Channel/Readers (else ErrForbidden).
func (b *Bundle) ValidateDeliver(env *cb.Envelope) error {
	h, creator, err := b.checkEnvelope(env, nil)
	if err != nil {
		return err
	}
	if t := cb.HeaderType(h.ChannelHeader.GetType()); t != cb.HeaderType_DELIVER_SEEK_INFO {
		return fmt.Errorf("%w: channel %s: header type %s, want DELIVER_SEEK_INFO", channelconfig.ErrMalformed, b.channelID, t)
	}
	return b.evaluate(ChannelReaders, creator)
}

// ValidateConfig checks a CONFIG envelope, as ordered on the channel, and
// returns the Bundle of the configuration it carries. This is how a peer
// re-validates a config block and how an orderer re-validates a CONFIG
// message it consumes:
//
//   - env passes the checks of ValidateNormal but for its header type,
//     which must be CONFIG: size, decoding, channel, a valid creator whose
//     signature verifies and satisfies /Channel/Writers (the filters
//     Fabric's orderer applies to the CONFIG envelope it signs);
//   - its data is a ConfigEnvelope (else ErrMalformed) whose config has
//     sequence Sequence()+1 (else ErrBadSequence);
//   - its last_update is a CONFIG_UPDATE that this configuration accepts
//     (see ProposeConfigUpdate: versions, mod_policies, signatures) and
//     whose result is exactly the config's channel group (else
//     ErrBadUpdate and ErrMalformed);
//   - the new configuration passes NewBundle and Fabric's checks of a
//     successor (no organisation changes its MSP ID, the Application
//     group is kept).
//
// The new Bundle keeps b's options.
func (b *Bundle) ValidateConfig(env *cb.Envelope) (*Bundle, error) {
	if err := b.checkFilters(env, nil, cb.HeaderType_CONFIG); err != nil {
		return nil, err
	}
	_, ce, err := decodeConfigEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", b.channelID, err)
	}
	cfg := ce.GetConfig()
	if cfg == nil {
		return nil, fmt.Errorf("%w: channel %s: config envelope has nil config", channelconfig.ErrMalformed, b.channelID)
	}
	if cfg.GetSequence() != b.Sequence()+1 {
		return nil, fabricErrorf([]error{channelconfig.ErrBadSequence},
			"config currently at sequence %d, cannot validate config at sequence %d", b.Sequence(), cfg.GetSequence())
	}
	cue, err := configUpdateEnvelope(ce.GetLastUpdate())
	if err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "last_update: %s", err)
	}
	group, err := b.authorizeUpdate(cue)
	if err != nil {
		return nil, err
	}
	if !proto.Equal(group, cfg.GetChannelGroup()) {
		return nil, updateErrorf(channelconfig.ErrMalformed, nil, "ConfigEnvelope LastUpdate did not produce the supplied config result")
	}
	return b.successor(cfg)
}

// checkFilters applies the checks of Fabric's Broadcast filters to env: its
// size, headers, channel, header type (want; -1 for any type of a normal
// message), creator and signature, and /Channel/Writers.
func (b *Bundle) checkFilters(env *cb.Envelope, h *protoutil.Headers, want cb.HeaderType) error {
	h, creator, err := b.checkEnvelope(env, h)
	if err != nil {
		return err
	}
	t := cb.HeaderType(h.ChannelHeader.GetType())
	switch {
	case want < 0 && (t == cb.HeaderType_CONFIG || t == cb.HeaderType_CONFIG_UPDATE || t == cb.HeaderType_ORDERER_TRANSACTION):
		return fmt.Errorf("%w: channel %s: %s envelope submitted as a normal message", channelconfig.ErrMalformed, b.channelID, t)
	case want >= 0 && t != want:
		return fmt.Errorf("%w: channel %s: header type %s, want %s", channelconfig.ErrMalformed, b.channelID, t, want)
	}
	return b.evaluate(ChannelWriters, creator)
}

// checkEnvelope runs the checks shared by every kind of envelope: headers
// (decoded unless h gives them), channel, creator validity and signature.
// It returns the headers and the creator's checked signature, which
// policies are then evaluated with.
func (b *Bundle) checkEnvelope(env *cb.Envelope, h *protoutil.Headers) (*protoutil.Headers, *msp.CheckedSignatures, error) {
	if env == nil {
		return nil, nil, fmt.Errorf("%w: channel %s: nil envelope", channelconfig.ErrMalformed, b.channelID)
	}
	if h == nil {
		var err error
		if h, err = protoutil.EnvelopeHeaders(env); err != nil {
			return nil, nil, fmt.Errorf("%w: channel %s: %w", channelconfig.ErrMalformed, b.channelID, err)
		}
	}
	if got := h.ChannelHeader.GetChannelId(); got != b.channelID {
		return nil, nil, fmt.Errorf("%w: envelope for channel %q sent to channel %s", channelconfig.ErrWrongChannel, got, b.channelID)
	}
	creator := b.mgr.CheckSignatures([]msp.SignedData{{
		Data: env.GetPayload(), Identity: h.SignatureHeader.GetCreator(), Signature: env.GetSignature(),
	}})
	if err := creator.Err(0); err != nil {
		if errors.Is(err, msp.ErrBadSignature) {
			return nil, nil, fmt.Errorf("channel %s: envelope signature: %w", b.channelID, err)
		}
		return nil, nil, fmt.Errorf("%w: channel %s: creator: %w", channelconfig.ErrForbidden, b.channelID, err)
	}
	return h, creator, nil
}

// VerifyBlockSignatures checks a block of this channel as a Fabric peer
// does before accepting it from an orderer: its header and data decode and
// its data hash matches (else ErrMalformed), its SIGNATURES metadata
// decodes (else ErrMalformed) and its signatures, each by the
// signature_header's creator over the metadata value, the signature_header
// and the ASN.1 DER header (protoutil.HeaderBytes), satisfy
// /Channel/Orderer/BlockValidation (else ErrForbidden, wrapping
// msp.ErrPolicyNotSatisfied). Signatures that name their signer by a BFT
// identifier instead of a signature header are ignored.
func (b *Bundle) VerifyBlockSignatures(block *cb.Block) error {
	if block.GetHeader() == nil {
		return fmt.Errorf("%w: channel %s: block without a header", channelconfig.ErrMalformed, b.channelID)
	}
	n := block.GetHeader().GetNumber()
	if err := protoutil.CheckDataHash(block); err != nil {
		return fmt.Errorf("%w: channel %s: %w", channelconfig.ErrMalformed, b.channelID, err)
	}
	md, err := protoutil.Metadata(block, cb.BlockMetadataIndex_SIGNATURES)
	if err != nil {
		return fmt.Errorf("%w: channel %s: %w", channelconfig.ErrMalformed, b.channelID, err)
	}
	header := protoutil.HeaderBytes(block.GetHeader())
	signed := make([]msp.SignedData, 0, len(md.GetSignatures()))
	for i, s := range md.GetSignatures() {
		if len(s.GetSignatureHeader()) == 0 && len(s.GetIdentifierHeader()) > 0 {
			continue
		}
		sh := new(cb.SignatureHeader)
		if err := proto.Unmarshal(s.GetSignatureHeader(), sh); err != nil {
			return fmt.Errorf("%w: channel %s: block %d: signature %d: decoding signature header: %w", channelconfig.ErrMalformed, b.channelID, n, i, err)
		}
		data := make([]byte, 0, len(md.GetValue())+len(s.GetSignatureHeader())+len(header))
		data = append(append(append(data, md.GetValue()...), s.GetSignatureHeader()...), header...)
		signed = append(signed, msp.SignedData{Data: data, Identity: sh.GetCreator(), Signature: s.GetSignature()})
	}
	if err := b.evaluate(BlockValidation, b.mgr.CheckSignatures(signed)); err != nil {
		return fmt.Errorf("block %d: %w", n, err)
	}
	return nil
}
