package consensus

import (
	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// BundleConfig is the default ChannelConfig: a channelconfig.Bundle, which
// validates envelopes with the channel's MSPs and policies (signature,
// Writers, channel ID, size; config updates against Admins and sequence).
type BundleConfig struct {
	*channelconfig.Bundle
}

var (
	_ ChannelConfig = BundleConfig{}
	_ BlockVerifier = BundleConfig{}
)

// BatchLimits returns the bundle's batch size as block cutter limits.
func (b BundleConfig) BatchLimits() blockcutter.Limits {
	bs := b.BatchSize()
	return blockcutter.Limits{MaxMessageCount: bs.MaxMessageCount, AbsoluteMaxBytes: bs.AbsoluteMaxBytes, PreferredMaxBytes: bs.PreferredMaxBytes}
}

// ValidateConfig validates a config update and returns the configuration
// it establishes.
func (b BundleConfig) ValidateConfig(env *cb.Envelope) (ChannelConfig, error) {
	next, err := b.Bundle.ValidateConfig(env)
	if err != nil {
		return nil, err
	}
	return BundleConfig{next}, nil
}

// BundleConfigParser is the default ConfigParser: it reads config blocks
// with channelconfig.FromConfigBlock.
func BundleConfigParser(opts ...channelconfig.Option) ConfigParser {
	return func(block *cb.Block) (ChannelConfig, error) {
		b, err := channelconfig.FromConfigBlock(block, opts...)
		if err != nil {
			return nil, err
		}
		return BundleConfig{b}, nil
	}
}
