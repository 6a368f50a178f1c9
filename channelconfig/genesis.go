package channelconfig

import (
	"fmt"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// GenesisBlock returns block 0 of the channel configured by cfg, which must
// pass NewBundle and have sequence 0: no previous hash, one unsigned CONFIG
// envelope (channel header of type CONFIG naming the channel, empty
// signature header, no timestamp, so that every node builds the same bytes)
// whose data is a ConfigEnvelope holding cfg without signatures, and
// LAST_CONFIG metadata pointing at block 0.
func GenesisBlock(cfg *ccpb.ChannelConfig) (*cb.Block, error) {
	if _, err := NewBundle(cfg); err != nil {
		return nil, err
	}
	if cfg.GetSequence() != 0 {
		return nil, fmt.Errorf("%w: genesis configuration of channel %s has sequence %d", ErrBadSequence, cfg.GetChannelId(), cfg.GetSequence())
	}
	cfgBytes, err := protoutil.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	payload := &cb.Payload{
		Header: &cb.Header{
			ChannelHeader: protoutil.MarshalOrPanic(&cb.ChannelHeader{
				Type:      int32(cb.HeaderType_CONFIG),
				ChannelId: cfg.GetChannelId(),
			}),
			SignatureHeader: protoutil.MarshalOrPanic(&cb.SignatureHeader{}),
		},
		Data: protoutil.MarshalOrPanic(&ccpb.ConfigEnvelope{Config: cfgBytes}),
	}
	env := &cb.Envelope{Payload: protoutil.MarshalOrPanic(payload)}
	block := protoutil.NewBlock(0, nil, [][]byte{protoutil.MarshalOrPanic(env)})
	protoutil.SetMetadata(block, cb.BlockMetadataIndex_LAST_CONFIG, &cb.Metadata{
		Value: protoutil.MarshalOrPanic(&cb.LastConfig{Index: 0}),
	})
	return block, nil
}

// FromGenesisBlock returns the Bundle of a channel's genesis block: block 0
// with one CONFIG envelope whose data is a ConfigEnvelope of a
// configuration with sequence 0. Signatures are not checked.
func FromGenesisBlock(b *cb.Block, opts ...Option) (*Bundle, error) {
	if b.GetHeader().GetNumber() != 0 {
		return nil, fmt.Errorf("%w: block %d is not a genesis block", ErrMalformed, b.GetHeader().GetNumber())
	}
	bundle, err := FromConfigBlock(b, opts...)
	if err != nil {
		return nil, err
	}
	if bundle.Sequence() != 0 {
		return nil, fmt.Errorf("%w: genesis block of channel %s holds configuration sequence %d", ErrBadSequence, bundle.ChannelID(), bundle.Sequence())
	}
	return bundle, nil
}

// FromConfigBlock returns the Bundle of a configuration block: a block
// whose only envelope is a CONFIG envelope, such as the genesis block or
// the block a configuration update was written to. A node restarting
// restores its configuration from the block its last block's LAST_CONFIG
// metadata points at. Signatures are not checked: the block was validated
// when it was ordered.
func FromConfigBlock(b *cb.Block, opts ...Option) (*Bundle, error) {
	if b == nil || b.GetHeader() == nil {
		return nil, fmt.Errorf("%w: block without a header", ErrMalformed)
	}
	n := b.GetHeader().GetNumber()
	if len(b.GetData().GetData()) != 1 {
		return nil, fmt.Errorf("%w: config block %d holds %d envelopes, want 1", ErrMalformed, n, len(b.GetData().GetData()))
	}
	if err := protoutil.CheckDataHash(b); err != nil {
		return nil, fmt.Errorf("%w: config block %d: %w", ErrMalformed, n, err)
	}
	env, err := protoutil.UnmarshalEnvelope(b.GetData().GetData()[0])
	if err != nil {
		return nil, fmt.Errorf("%w: config block %d: %w", ErrMalformed, n, err)
	}
	cfg, err := ConfigFromEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("config block %d: %w", n, err)
	}
	h, _ := protoutil.EnvelopeHeaders(env) // decoded by ConfigFromEnvelope
	if h.ChannelHeader.GetChannelId() != cfg.GetChannelId() {
		return nil, fmt.Errorf("%w: config block %d: envelope for channel %q holds configuration of %q",
			ErrWrongChannel, n, h.ChannelHeader.GetChannelId(), cfg.GetChannelId())
	}
	bundle, err := NewBundle(cfg, opts...)
	if err != nil {
		return nil, fmt.Errorf("config block %d: %w", n, err)
	}
	return bundle, nil
}

// ConfigFromEnvelope returns the channel configuration carried by a CONFIG
// envelope (payload data = ConfigEnvelope). It checks neither signatures
// nor the configuration itself. Errors wrap ErrMalformed.
func ConfigFromEnvelope(env *cb.Envelope) (*ccpb.ChannelConfig, error) {
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if t := cb.HeaderType(h.ChannelHeader.GetType()); t != cb.HeaderType_CONFIG {
		return nil, fmt.Errorf("%w: header type %s, want CONFIG", ErrMalformed, t)
	}
	_, cfg, err := decodeConfigEnvelope(h.Payload.GetData())
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// NewConfigEnvelope returns a CONFIG envelope that proposes newCfg: its
// ConfigEnvelope carries one ConfigSignature per admin (each over a fresh
// signature header followed by the marshalled configuration), and
// submitter signs the envelope (protoutil.NewSignedEnvelope). The caller
// sets newCfg's sequence (the current sequence plus one).
func NewConfigEnvelope(newCfg *ccpb.ChannelConfig, submitter msp.SigningIdentity, admins ...msp.SigningIdentity) (*cb.Envelope, error) {
	if newCfg == nil || submitter == nil {
		return nil, fmt.Errorf("%w: nil configuration or submitter", ErrMalformed)
	}
	cfgBytes, err := protoutil.Marshal(newCfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	ce := &ccpb.ConfigEnvelope{Config: cfgBytes}
	for i, a := range admins {
		sh, err := protoutil.NewSignatureHeader(a)
		if err != nil {
			return nil, fmt.Errorf("config signature %d: %w", i, err)
		}
		sig, err := a.Sign(append(append([]byte(nil), sh...), cfgBytes...))
		if err != nil {
			return nil, fmt.Errorf("config signature %d: %w", i, err)
		}
		ce.Signatures = append(ce.Signatures, &ccpb.ConfigSignature{SignatureHeader: sh, Signature: sig})
	}
	data, err := protoutil.Marshal(ce)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return protoutil.NewSignedEnvelope(cb.HeaderType_CONFIG, newCfg.GetChannelId(), data, submitter)
}
