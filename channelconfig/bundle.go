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
	cfg = b.cfg
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: channel %q: "+format, append([]any{ErrMalformed, cfg.GetChannelId()}, args...)...)
	}
	if cfg.GetChannelId() == "" {
		return nil, fail("empty channel ID")
	}
	bs := cfg.GetBatchSize()
	switch {
	case bs == nil:
		return nil, fail("no batch size")
	case bs.GetMaxMessageCount() == 0:
		return nil, fail("batch size MaxMessageCount is 0")
	case bs.GetAbsoluteMaxBytes() == 0:
		return nil, fail("batch size AbsoluteMaxBytes is 0")
	case bs.GetPreferredMaxBytes() == 0:
		return nil, fail("batch size PreferredMaxBytes is 0")
	case bs.GetPreferredMaxBytes() > bs.GetAbsoluteMaxBytes():
		return nil, fail("batch size PreferredMaxBytes %d exceeds AbsoluteMaxBytes %d", bs.GetPreferredMaxBytes(), bs.GetAbsoluteMaxBytes())
	}
	if t := cfg.GetBatchTimeout(); t == nil || t.CheckValid() != nil || t.AsDuration() <= 0 {
		return nil, fail("batch timeout %v is not a positive duration", t.AsDuration())
	} else if t.AsDuration() > MaxBatchTimeout {
		return nil, fail("batch timeout %v exceeds %v", t.AsDuration(), MaxBatchTimeout)
	}
	byID := make(map[string]*ccpb.Organization)
	var msps []*msp.MSP
	for li, list := range [][]*ccpb.Organization{cfg.GetApplicationOrgs(), cfg.GetOrdererOrgs()} {
		inList := make(map[string]bool)
		for _, og := range list {
			id := og.GetMspId()
			if id == "" {
				return nil, fail("organisation without an MSP ID")
			}
			if og.GetMsp() == nil {
				return nil, fail("organisation %s has no MSP definition", id)
			}
			if n := og.GetMsp().GetName(); n != "" && n != id {
				return nil, fail("organisation %s has an MSP named %q", id, n)
			}
			if inList[id] {
				return nil, fail("MSP ID %s appears twice", id)
			}
			inList[id] = true
			if prev, ok := byID[id]; ok {
				if li == 1 && !proto.Equal(prev, og) {
					return nil, fail("MSP ID %s defined differently as application and orderer organisation", id)
				}
				continue
			}
			byID[id] = og
			mcfg := proto.Clone(og.GetMsp()).(*ccpb.MSPConfig)
			mcfg.Name = id
			m, err := msp.New(mcfg, o.msp...)
			if err != nil {
				return nil, fail("organisation %s: %w", id, err)
			}
			msps = append(msps, m)
			x := org{id: id, policies: make(map[string]*cb.SignaturePolicyEnvelope)}
			for name, p := range og.GetPolicies() {
				d, err := decodePolicy(id+"/"+name, p, false)
				if err != nil {
					return nil, fmt.Errorf("channel %q: %w", cfg.GetChannelId(), err)
				}
				x.policies[name] = d.sig
			}
			b.orgs = append(b.orgs, x)
		}
	}
	mgr, err := msp.NewManager(msps...)
	if err != nil {
		return nil, fail("%w", err)
	}
	b.mgr = mgr
	for _, name := range []string{ReadersPolicy, WritersPolicy, AdminsPolicy} {
		if _, ok := cfg.GetPolicies()[name]; !ok {
			return nil, fail("no %s policy", name)
		}
	}
	for name, p := range cfg.GetPolicies() {
		d, err := decodePolicy(name, p, true)
		if err != nil {
			return nil, fmt.Errorf("channel %q: %w", cfg.GetChannelId(), err)
		}
		b.policies[name] = d
	}
	return b, nil
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
