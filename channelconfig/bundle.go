package channelconfig

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Bundle is a parsed, validated and immutable channel configuration: its
// limits, its organisations' MSPs and its policies. A Bundle is safe for
// concurrent use; a configuration update yields a new Bundle (see
// ValidateConfig).
type Bundle struct {
	cfg      *ccpb.ChannelConfig
	mgr      *msp.Manager
	policies map[string]policy
	orgs     []org
	opts     []Option
}

// org is one organisation, each MSP ID once.
type org struct {
	id       string
	policies map[string]*cb.SignaturePolicyEnvelope
}

// MaxBatchTimeout is the longest batch timeout a configuration may set.
// Fabric sets no bound; here a partial batch must be cut within an hour:
// a longer timeout is indistinguishable from never for the clients waiting
// on its envelopes, and a mistyped one (10,000 years) would hold a batch
// for ever.
const MaxBatchTimeout = time.Hour

// BatchSize holds the block cutter's limits.
type BatchSize struct {
	// MaxMessageCount is the number of envelopes at which a batch is cut.
	MaxMessageCount uint32
	// AbsoluteMaxBytes is the largest envelope (payload plus signature)
	// the channel accepts.
	AbsoluteMaxBytes uint32
	// PreferredMaxBytes is the batch size the block cutter aims for.
	PreferredMaxBytes uint32
}

// Option configures NewBundle.
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

// NewBundle validates cfg and returns its Bundle. cfg must have a channel
// ID, a batch size whose three limits are positive with PreferredMaxBytes
// <= AbsoluteMaxBytes, a positive batch timeout, organisations with a
// non-empty MSP ID equal to their MSP's name (if set), unique within the
// application and within the orderer organisations (an MSP ID present in
// both lists must be the same organisation), MSP definitions that msp.New
// accepts, organisation policies of type SIGNATURE, and the channel
// policies Readers, Writers and Admins, each SIGNATURE or IMPLICIT_META.
// Errors wrap ErrMalformed. The Bundle keeps a copy of cfg.
func NewBundle(cfg *ccpb.ChannelConfig, opts ...Option) (*Bundle, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil channel configuration", ErrMalformed)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	b := &Bundle{
		cfg:      proto.Clone(cfg).(*ccpb.ChannelConfig),
		policies: make(map[string]policy),
		opts:     opts,
	}
	if err := checkLimits(b.cfg); err != nil {
		return nil, err
	}
	msps, err := b.addOrgs(o.msp)
	if err != nil {
		return nil, err
	}
	if b.mgr, err = msp.NewManager(msps...); err != nil {
		return nil, malformed(b.cfg, "%w", err)
	}
	if err := b.addChannelPolicies(); err != nil {
		return nil, err
	}
	return b, nil
}

// malformed returns an error wrapping ErrMalformed that names cfg's
// channel, then says what is wrong as format and args do.
func malformed(cfg *ccpb.ChannelConfig, format string, args ...any) error {
	return fmt.Errorf("%w: channel %q: "+format, append([]any{ErrMalformed, cfg.GetChannelId()}, args...)...)
}

// checkLimits checks cfg's channel ID, batch size and batch timeout, the
// values the block cutter runs on.
func checkLimits(cfg *ccpb.ChannelConfig) error {
	if cfg.GetChannelId() == "" {
		return malformed(cfg, "empty channel ID")
	}
	bs := cfg.GetBatchSize()
	switch {
	case bs == nil:
		return malformed(cfg, "no batch size")
	case bs.GetMaxMessageCount() == 0:
		return malformed(cfg, "batch size MaxMessageCount is 0")
	case bs.GetAbsoluteMaxBytes() == 0:
		return malformed(cfg, "batch size AbsoluteMaxBytes is 0")
	case bs.GetPreferredMaxBytes() == 0:
		return malformed(cfg, "batch size PreferredMaxBytes is 0")
	case bs.GetPreferredMaxBytes() > bs.GetAbsoluteMaxBytes():
		return malformed(cfg, "batch size PreferredMaxBytes %d exceeds AbsoluteMaxBytes %d", bs.GetPreferredMaxBytes(), bs.GetAbsoluteMaxBytes())
	}
	if t := cfg.GetBatchTimeout(); t == nil || t.CheckValid() != nil || t.AsDuration() <= 0 {
		return malformed(cfg, "batch timeout %v is not a positive duration", t.AsDuration())
	} else if t.AsDuration() > MaxBatchTimeout {
		return malformed(cfg, "batch timeout %v exceeds %v", t.AsDuration(), MaxBatchTimeout)
	}
	return nil
}

// addOrgs checks the application then the orderer organisations and adds
// each MSP ID once to b.orgs, in that order. It returns their MSPs, built
// with mspOpts. An MSP ID may appear in both lists only with the same
// definition.
func (b *Bundle) addOrgs(mspOpts []msp.Option) ([]*msp.MSP, error) {
	byID := make(map[string]*ccpb.Organization)
	var msps []*msp.MSP
	for li, list := range [][]*ccpb.Organization{b.cfg.GetApplicationOrgs(), b.cfg.GetOrdererOrgs()} {
		inList := make(map[string]bool)
		for _, og := range list {
			id := og.GetMspId()
			if err := checkOrg(b.cfg, og, inList); err != nil {
				return nil, err
			}
			inList[id] = true
			if prev, ok := byID[id]; ok {
				if li == 1 && !proto.Equal(prev, og) {
					return nil, malformed(b.cfg, "MSP ID %s defined differently as application and orderer organisation", id)
				}
				continue
			}
			byID[id] = og
			m, x, err := b.newOrg(og, mspOpts)
			if err != nil {
				return nil, err
			}
			msps = append(msps, m)
			b.orgs = append(b.orgs, x)
		}
	}
	return msps, nil
}

// checkOrg checks that og, an organisation of cfg, has an MSP ID, not one
// of seen, and an MSP definition whose name, if set, is that ID.
func checkOrg(cfg *ccpb.ChannelConfig, og *ccpb.Organization, seen map[string]bool) error {
	id := og.GetMspId()
	if id == "" {
		return malformed(cfg, "organisation without an MSP ID")
	}
	if og.GetMsp() == nil {
		return malformed(cfg, "organisation %s has no MSP definition", id)
	}
	if n := og.GetMsp().GetName(); n != "" && n != id {
		return malformed(cfg, "organisation %s has an MSP named %q", id, n)
	}
	if seen[id] {
		return malformed(cfg, "MSP ID %s appears twice", id)
	}
	return nil
}

// newOrg builds og's MSP, named by its MSP ID and with mspOpts, and
// decodes its policies, each of which must be of type SIGNATURE.
func (b *Bundle) newOrg(og *ccpb.Organization, mspOpts []msp.Option) (*msp.MSP, org, error) {
	id := og.GetMspId()
	mcfg := proto.Clone(og.GetMsp()).(*ccpb.MSPConfig)
	mcfg.Name = id
	m, err := msp.New(mcfg, mspOpts...)
	if err != nil {
		return nil, org{}, malformed(b.cfg, "organisation %s: %w", id, err)
	}
	x := org{id: id, policies: make(map[string]*cb.SignaturePolicyEnvelope)}
	for name, p := range og.GetPolicies() {
		d, err := decodePolicy(id+"/"+name, p, false)
		if err != nil {
			return nil, org{}, fmt.Errorf("channel %q: %w", b.cfg.GetChannelId(), err)
		}
		x.policies[name] = d.sig
	}
	return m, x, nil
}

// addChannelPolicies decodes the channel's policies into b.policies after
// checking that Readers, Writers and Admins are among them.
func (b *Bundle) addChannelPolicies() error {
	for _, name := range []string{ReadersPolicy, WritersPolicy, AdminsPolicy} {
		if _, ok := b.cfg.GetPolicies()[name]; !ok {
			return malformed(b.cfg, "no %s policy", name)
		}
	}
	for name, p := range b.cfg.GetPolicies() {
		d, err := decodePolicy(name, p, true)
		if err != nil {
			return fmt.Errorf("channel %q: %w", b.cfg.GetChannelId(), err)
		}
		b.policies[name] = d
	}
	return nil
}

// Config returns a copy of the channel configuration.
func (b *Bundle) Config() *ccpb.ChannelConfig { return proto.Clone(b.cfg).(*ccpb.ChannelConfig) }

// ChannelID returns the channel's ID.
func (b *Bundle) ChannelID() string { return b.cfg.GetChannelId() }

// Sequence returns the configuration's sequence number: 0 for the genesis
// configuration, one more for each update.
func (b *Bundle) Sequence() uint64 { return b.cfg.GetSequence() }

// BatchSize returns the block cutter's limits.
func (b *Bundle) BatchSize() BatchSize {
	bs := b.cfg.GetBatchSize()
	return BatchSize{
		MaxMessageCount:   bs.GetMaxMessageCount(),
		AbsoluteMaxBytes:  bs.GetAbsoluteMaxBytes(),
		PreferredMaxBytes: bs.GetPreferredMaxBytes(),
	}
}

// BatchTimeout returns the time after the first envelope of a batch at
// which the batch is cut.
func (b *Bundle) BatchTimeout() time.Duration { return b.cfg.GetBatchTimeout().AsDuration() }

// KafkaBrokers returns the channel's Kafka brokers, if configured. The
// caller owns the slice.
func (b *Bundle) KafkaBrokers() []string {
	return append([]string(nil), b.cfg.GetKafka().GetBrokers()...)
}

// MSPManager returns the MSPs of the channel's organisations.
func (b *Bundle) MSPManager() *msp.Manager { return b.mgr }
