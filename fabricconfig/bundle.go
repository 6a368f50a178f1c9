package fabricconfig

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Bundle is a parsed, validated and immutable Fabric channel configuration:
// its batch limits, Kafka brokers, organisations' MSPs and policies, and the
// element versions config updates are checked against. A Bundle is safe for
// concurrent use; a config update yields a new Bundle (see ValidateConfig).
type Bundle struct {
	channelID string
	cfg       *cb.Config
	elements  configMap
	policies  *policyGroup
	mgr       *msp.Manager

	batchSize        channelconfig.BatchSize
	batchTimeout     time.Duration
	kafkaBrokers     []string
	ordererAddresses []string
	consortium       string
	consensusType    string
	maxChannels      uint64
	capabilities     Capabilities
	orgs             []Organization
	hasApplication   bool

	opts []Option
}

// Option configures NewBundle, FromConfigBlock and FromConfigEnvelope.
type Option func(*options)

type options struct {
	msp []msp.Option
}

// WithClock makes the bundle's MSPs check certificate validity against
// now() instead of time.Now() (see msp.WithClock). Bundles derived by
// ValidateConfig keep the option.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.msp = append(o.msp, msp.WithClock(now)) }
}

// channelIDRE is Fabric's rule for channel IDs: lower-case ASCII letters,
// digits, '.' and '-', starting with a letter.
var channelIDRE = regexp.MustCompile(`^[a-z][a-z0-9.-]*$`)

// maxIDLength is the longest channel ID, and configuration key, Fabric
// accepts.
const maxIDLength = 249

// NewBundle validates cfg, the configuration of channel channelID, and
// returns its Bundle. The checks are Fabric's (common/channelconfig) for
// an application channel served by a Kafka orderer:
//
//   - the channel ID is a valid Fabric channel ID; cfg has a channel group
//     whose groups are Orderer (required) and Application (optional);
//   - every value key is one Fabric knows for its group and decodes;
//     HashingAlgorithm is SHA256, BlockDataHashingStructure's width is
//     math.MaxUint32, OrdererAddresses is set unless the channel's
//     capabilities allow per-organisation endpoints (V1_4_2 and later);
//   - the channel and orderer capabilities are ones this package
//     implements (channel V1_1, V1_3, V1_4_2, V1_4_3, V2_0; orderer V1_1,
//     V1_4_2, V2_0); orderer capabilities are set whenever channel or
//     application capabilities are;
//   - ConsensusType is "kafka" in state NORMAL; BatchSize has three positive
//     limits with PreferredMaxBytes <= AbsoluteMaxBytes; BatchTimeout is a
//     positive Go duration; each Kafka broker is host:port;
//   - organisations have no sub-groups and an MSP of type FABRIC
//     (FabricMSPConfig, crypto SHA2/SHA256) with a non-empty name that
//     msp.New accepts; an MSP ID defined by two organisations is defined
//     identically;
//   - every policy is a SIGNATURE (version 0) or IMPLICIT_META policy, and
//     every element key is a valid configuration ID.
//
// Errors wrap channelconfig.ErrMalformed. The Bundle keeps a copy of cfg.
func NewBundle(channelID string, cfg *cb.Config, opts ...Option) (*Bundle, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: channel %q: "+format, append([]any{channelconfig.ErrMalformed, channelID}, args...)...)
	}
	if cfg == nil || cfg.GetChannelGroup() == nil {
		return nil, fail("config without a channel group")
	}
	if len(channelID) > maxIDLength || !channelIDRE.MatchString(channelID) {
		return nil, fail("bad channel ID: want %s, at most %d characters", channelIDRE, maxIDLength)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	b := &Bundle{channelID: channelID, cfg: proto.Clone(cfg).(*cb.Config), opts: opts}
	var err error
	if b.elements, err = mapConfig(b.cfg.GetChannelGroup()); err != nil {
		return nil, fail("%w", err)
	}
	msps, err := b.parseChannel(b.cfg.GetChannelGroup(), o)
	if err != nil {
		return nil, fail("%w", err)
	}
	if b.mgr, err = msp.NewManager(msps...); err != nil {
		return nil, fail("%w", err)
	}
	if b.policies, err = compilePolicies(b.cfg.GetChannelGroup(), "/"+ChannelGroupKey); err != nil {
		return nil, fail("%w", err)
	}
	return b, nil
}

// FromConfigEnvelope returns the Bundle of the configuration carried by a
// CONFIG envelope (payload data = ConfigEnvelope), for the channel its
// channel header names. Neither signatures nor last_update are checked:
// use ValidateConfig to check a configuration against the previous one.
// Errors wrap channelconfig.ErrMalformed.
func FromConfigEnvelope(env *cb.Envelope, opts ...Option) (*Bundle, error) {
	h, ce, err := decodeConfigEnvelope(env)
	if err != nil {
		return nil, err
	}
	if ce.GetConfig() == nil {
		return nil, fmt.Errorf("%w: ConfigEnvelope without a config", channelconfig.ErrMalformed)
	}
	return NewBundle(h.ChannelHeader.GetChannelId(), ce.GetConfig(), opts...)
}

// FromConfigBlock returns the Bundle of a config block made by Fabric or by
// this package: a block whose only envelope is a CONFIG envelope, such as a
// genesis block or the block a config update was written to. A node
// restarting restores its configuration from the block its last block's
// LAST_CONFIG metadata points at. The data hash is checked; signatures are
// not (the block was validated when it was ordered; see
// VerifyBlockSignatures). Errors wrap channelconfig.ErrMalformed.
func FromConfigBlock(block *cb.Block, opts ...Option) (*Bundle, error) {
	env, err := configBlockEnvelope(block)
	if err != nil {
		return nil, err
	}
	bundle, err := FromConfigEnvelope(env, opts...)
	if err != nil {
		return nil, fmt.Errorf("config block %d: %w", block.GetHeader().GetNumber(), err)
	}
	return bundle, nil
}

// IsFabricConfig reports whether block is a config block in Fabric's
// format: its only envelope is a CONFIG envelope whose ConfigEnvelope holds
// a Config with a channel group. A config block in package channelconfig's
// own format decodes without a channel group (its field 2 is a varint,
// never a message), so a parser can choose between the two formats.
func IsFabricConfig(block *cb.Block) bool {
	env, err := configBlockEnvelope(block)
	if err != nil {
		return false
	}
	_, ce, err := decodeConfigEnvelope(env)
	return err == nil && ce.GetConfig().GetChannelGroup() != nil
}

// configBlockEnvelope returns the only envelope of a config block, after
// checking its data hash.
func configBlockEnvelope(block *cb.Block) (*cb.Envelope, error) {
	if block.GetHeader() == nil {
		return nil, fmt.Errorf("%w: block without a header", channelconfig.ErrMalformed)
	}
	n := block.GetHeader().GetNumber()
	if len(block.GetData().GetData()) != 1 {
		return nil, fmt.Errorf("%w: config block %d holds %d envelopes, want 1", channelconfig.ErrMalformed, n, len(block.GetData().GetData()))
	}
	if err := protoutil.CheckDataHash(block); err != nil {
		return nil, fmt.Errorf("%w: config block %d: %w", channelconfig.ErrMalformed, n, err)
	}
	env, err := protoutil.UnmarshalEnvelope(block.GetData().GetData()[0])
	if err != nil {
		return nil, fmt.Errorf("%w: config block %d: %w", channelconfig.ErrMalformed, n, err)
	}
	return env, nil
}

// decodeConfigEnvelope decodes a CONFIG envelope's headers and
// ConfigEnvelope.
func decodeConfigEnvelope(env *cb.Envelope) (*protoutil.Headers, *cb.ConfigEnvelope, error) {
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", channelconfig.ErrMalformed, err)
	}
	if t := cb.HeaderType(h.ChannelHeader.GetType()); t != cb.HeaderType_CONFIG {
		return nil, nil, fmt.Errorf("%w: header type %s, want CONFIG", channelconfig.ErrMalformed, t)
	}
	ce := new(cb.ConfigEnvelope)
	if err := proto.Unmarshal(h.Payload.GetData(), ce); err != nil {
		return nil, nil, fmt.Errorf("%w: decoding ConfigEnvelope: %w", channelconfig.ErrMalformed, err)
	}
	return h, ce, nil
}

// Config returns a copy of the configuration.
func (b *Bundle) Config() *cb.Config { return proto.Clone(b.cfg).(*cb.Config) }

// ChannelID returns the channel's ID.
func (b *Bundle) ChannelID() string { return b.channelID }

// Sequence returns the configuration's sequence number: one more for each
// config update since the genesis block's configuration (sequence 0 from
// configtxgen and GenesisBlock; a channel that Fabric's orderer created
// through a system channel starts at 1).
func (b *Bundle) Sequence() uint64 { return b.cfg.GetSequence() }

// BatchSize returns the block cutter's limits (the Orderer group's
// BatchSize value).
func (b *Bundle) BatchSize() channelconfig.BatchSize { return b.batchSize }

// BatchLimits returns the block cutter's limits as blockcutter.Limits.
func (b *Bundle) BatchLimits() blockcutter.Limits {
	return blockcutter.Limits{
		MaxMessageCount:   b.batchSize.MaxMessageCount,
		AbsoluteMaxBytes:  b.batchSize.AbsoluteMaxBytes,
		PreferredMaxBytes: b.batchSize.PreferredMaxBytes,
	}
}

// BatchTimeout returns the time after the first envelope of a batch at
// which the batch is cut (the Orderer group's BatchTimeout value).
func (b *Bundle) BatchTimeout() time.Duration { return b.batchTimeout }

// KafkaBrokers returns the Orderer group's KafkaBrokers, host:port each.
// The caller owns the slice.
func (b *Bundle) KafkaBrokers() []string { return slices.Clone(b.kafkaBrokers) }

// OrdererAddresses returns the channel's OrdererAddresses value (the
// endpoints of every ordering node, host:port each); per-organisation
// endpoints are in Organizations. The caller owns the slice.
func (b *Bundle) OrdererAddresses() []string { return slices.Clone(b.ordererAddresses) }

// Consortium returns the name of the consortium the channel was created
// in, if any.
func (b *Bundle) Consortium() string { return b.consortium }

// ConsensusType returns the Orderer group's consensus type: "kafka".
func (b *Bundle) ConsensusType() string { return b.consensusType }

// MaxChannels returns the ChannelRestrictions value's max_count: the
// number of channels a system channel may create, 0 for no limit.
func (b *Bundle) MaxChannels() uint64 { return b.maxChannels }

// Capabilities returns the capabilities the channel requires. The caller
// owns the slices.
func (b *Bundle) Capabilities() Capabilities {
	return Capabilities{
		Channel:     slices.Clone(b.capabilities.Channel),
		Orderer:     slices.Clone(b.capabilities.Orderer),
		Application: slices.Clone(b.capabilities.Application),
	}
}

// Organizations returns the channel's organisations, application
// organisations first, each group's in name order. The caller owns the
// slice.
func (b *Bundle) Organizations() []Organization {
	out := make([]Organization, len(b.orgs))
	for i, o := range b.orgs {
		o.Endpoints = slices.Clone(o.Endpoints)
		o.AnchorPeers = slices.Clone(o.AnchorPeers)
		out[i] = o
	}
	return out
}

// MSPManager returns the MSPs of the channel's organisations.
func (b *Bundle) MSPManager() *msp.Manager { return b.mgr }

// checkSuccessor applies Fabric's checks of a configuration derived from b
// (channelconfig's ValidateNew): the Application group, when b has one, is
// kept, and no organisation changes its MSP ID. Beyond Fabric, it refuses
// a configuration that would leave the channel unusable for ever (see
// checkUsable).
func (b *Bundle) checkSuccessor(nb *Bundle) error {
	if b.hasApplication && !nb.hasApplication {
		return fmt.Errorf("%w: current config has application section, but new config does not", channelconfig.ErrMalformed)
	}
	for _, o := range b.orgs {
		for _, n := range nb.orgs {
			if n.Group == o.Group && n.Name == o.Name && n.MSPID != o.MSPID {
				return fmt.Errorf("%w: %s org %s attempted to change MSP ID from %s to %s",
					channelconfig.ErrMalformed, map[string]string{ApplicationGroupKey: "application", OrdererGroupKey: "orderer"}[o.Group], o.Name, o.MSPID, n.MSPID)
			}
		}
	}
	return nb.checkUsable()
}

// checkUsable refuses, with channelconfig.ErrMalformed, a configuration
// without an application organisation (when it has an Application group)
// or an orderer organisation, or whose /Channel/Readers, /Channel/Writers
// or /Channel/Admins policy no identity of its organisations could
// satisfy: nobody could then read, write or change the configuration
// again. Fabric accepts such updates.
func (b *Bundle) checkUsable() error {
	count := map[string]int{}
	for _, o := range b.orgs {
		count[o.Group]++
	}
	switch {
	case b.hasApplication && count[ApplicationGroupKey] == 0:
		return fmt.Errorf("%w: channel %s: no application organisation", channelconfig.ErrMalformed, b.channelID)
	case count[OrdererGroupKey] == 0:
		return fmt.Errorf("%w: channel %s: no orderer organisation", channelconfig.ErrMalformed, b.channelID)
	}
	for _, path := range []string{ChannelReaders, ChannelWriters, ChannelAdmins} {
		p, ok := b.policies.get(path)
		if !ok {
			return fmt.Errorf("%w: channel %s: no policy %s", channelconfig.ErrMalformed, b.channelID, path)
		}
		if err := p.couldSatisfy(b.mgr); err != nil {
			return fmt.Errorf("%w: channel %s: no identity could satisfy policy %s: %w", channelconfig.ErrMalformed, b.channelID, path, err)
		}
	}
	return nil
}
