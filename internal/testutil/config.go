package testutil

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ConfigOption adjusts the channel configuration built by ChannelConfig.
type ConfigOption func(*ccpb.ChannelConfig)

// WithOrdererOrgs adds the MSPs of cas as orderer organisations.
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

// WithKafkaBrokers sets the channel's Kafka brokers.
func WithKafkaBrokers(brokers ...string) ConfigOption {
	return func(c *ccpb.ChannelConfig) { c.Kafka = &ccpb.KafkaSettings{Brokers: brokers} }
}

// WithPolicy sets the channel policy name.
func WithPolicy(name string, p *cb.Policy) ConfigOption {
	return func(c *ccpb.ChannelConfig) { c.Policies[name] = p }
}

// ChannelConfig returns the sequence-0 configuration of channelID with the
// MSPs of orgs as application organisations, Fabric's default policies
// (channelconfig.DefaultChannelPolicies and DefaultOrgPolicies), batches of
// at most 10 messages, 1 MiB absolute and 512 KiB preferred, and a 2 s batch
// timeout, then applies opts.
func ChannelConfig(channelID string, orgs []*CA, opts ...ConfigOption) *ccpb.ChannelConfig {
	c := &ccpb.ChannelConfig{
		ChannelId:    channelID,
		BatchSize:    &ccpb.BatchSize{MaxMessageCount: 10, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 512 << 10},
		BatchTimeout: durationpb.New(2 * time.Second),
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

// GenesisBlock returns the genesis block of cfg (channelconfig.GenesisBlock).
func GenesisBlock(t testing.TB, cfg *ccpb.ChannelConfig) *cb.Block {
	b, err := channelconfig.GenesisBlock(cfg)
	check(t, err)
	return b
}

// Bundle returns the channelconfig.Bundle of cfg.
func Bundle(t testing.TB, cfg *ccpb.ChannelConfig, opts ...channelconfig.Option) *channelconfig.Bundle {
	b, err := channelconfig.NewBundle(cfg, opts...)
	check(t, err)
	return b
}
