package msptest

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Batch limits of ChannelConfig unless WithBatchSize or WithBatchTimeout.
const (
	DefaultMaxMessageCount   = 10
	DefaultAbsoluteMaxBytes  = 1 << 20
	DefaultPreferredMaxBytes = 512 << 10
	DefaultBatchTimeout      = 2 * time.Second
)

// ConfigOption adjusts the channel configuration built by ChannelConfig.
type ConfigOption func(*ccpb.ChannelConfig)

// WithOrdererOrgs adds the organisations of cas as orderer organisations.
func WithOrdererOrgs(cas ...*CA) ConfigOption {
	return func(c *ccpb.ChannelConfig) {
		for _, ca := range cas {
			c.OrdererOrgs = append(c.OrdererOrgs, channelconfig.NewOrganization(ca.MSPConfig()))
		}
	}
}

// WithBatchSize sets the block cutter's limits.
func WithBatchSize(maxMessageCount, absoluteMaxBytes, preferredMaxBytes uint32) ConfigOption {
	return func(c *ccpb.ChannelConfig) {
		c.BatchSize = &ccpb.BatchSize{
			MaxMessageCount:   maxMessageCount,
			AbsoluteMaxBytes:  absoluteMaxBytes,
			PreferredMaxBytes: preferredMaxBytes,
		}
	}
}

// WithBatchTimeout sets the batch timeout.
func WithBatchTimeout(d time.Duration) ConfigOption {
	return func(c *ccpb.ChannelConfig) { c.BatchTimeout = durationpb.New(d) }
}

// WithKafkaBrokers records Kafka brokers in the configuration (informative:
// a consenter connects to the brokers it is given).
func WithKafkaBrokers(brokers ...string) ConfigOption {
	return func(c *ccpb.ChannelConfig) { c.Kafka = &ccpb.KafkaSettings{Brokers: brokers} }
}

// WithPolicy sets the channel policy name to p.
func WithPolicy(name string, p *cb.Policy) ConfigOption {
	return func(c *ccpb.ChannelConfig) { c.Policies[name] = p }
}

// ChannelConfig returns the sequence-0 configuration of channelID with the
// organisations of orgs as application organisations, Fabric's default
// policies (channelconfig.DefaultChannelPolicies: Readers and Writers ANY
// member, Admins MAJORITY admin), the batch limits DefaultMaxMessageCount,
// DefaultAbsoluteMaxBytes and DefaultPreferredMaxBytes and
// DefaultBatchTimeout, then applies opts. Each organisation's MSP
// configuration is taken as it is now (CA.MSPConfig).
func ChannelConfig(channelID string, orgs []*CA, opts ...ConfigOption) *ccpb.ChannelConfig {
	c := &ccpb.ChannelConfig{
		ChannelId: channelID,
		BatchSize: &ccpb.BatchSize{
			MaxMessageCount:   DefaultMaxMessageCount,
			AbsoluteMaxBytes:  DefaultAbsoluteMaxBytes,
			PreferredMaxBytes: DefaultPreferredMaxBytes,
		},
		BatchTimeout: durationpb.New(DefaultBatchTimeout),
		Policies:     channelconfig.DefaultChannelPolicies(),
	}
	for _, ca := range orgs {
		c.ApplicationOrgs = append(c.ApplicationOrgs, channelconfig.NewOrganization(ca.MSPConfig()))
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// GenesisBlock returns the genesis block (channelconfig.GenesisBlock) of the
// configuration ChannelConfig builds from its arguments.
func GenesisBlock(channelID string, orgs []*CA, opts ...ConfigOption) (*cb.Block, error) {
	return channelconfig.GenesisBlock(ChannelConfig(channelID, orgs, opts...))
}
