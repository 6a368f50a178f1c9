package consensus

import (
	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// BundleConfig is the default ChannelConfig: a channelconfig.Bundle, which
// validates envelopes with the channel's MSPs and policies (signature,
// Writers, channel ID, size; config updates against Admins and sequence).
type BundleConfig struct {
	*channelconfig.Bundle
}

var (
	_ ChannelConfig    = BundleConfig{}
	_ BlockVerifier    = BundleConfig{}
	_ HeadersValidator = BundleConfig{}
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

// BundleConfigParser reads config blocks of this project's own format with
// channelconfig.FromConfigBlock.
func BundleConfigParser(opts ...channelconfig.Option) ConfigParser {
	return func(block *cb.Block) (ChannelConfig, error) {
		b, err := channelconfig.FromConfigBlock(block, opts...)
		if err != nil {
			return nil, err
		}
		return BundleConfig{b}, nil
	}
}

// FabricConfig is the ChannelConfig of a channel configured with Fabric's
// config tree: a fabricconfig.Bundle, which validates envelopes as
// Fabric's orderer does (/Channel/Writers, /Channel/Readers), processes
// CONFIG_UPDATE envelopes (ConfigUpdater) and verifies block signatures
// with /Channel/Orderer/BlockValidation.
type FabricConfig struct {
	*fabricconfig.Bundle
}

var (
	_ ChannelConfig     = FabricConfig{}
	_ BlockVerifier     = FabricConfig{}
	_ ConfigUpdater     = FabricConfig{}
	_ ConfigReprocessor = FabricConfig{}
	_ HeadersValidator  = FabricConfig{}
)

// ValidateConfig validates a CONFIG envelope and returns the configuration
// it establishes.
func (f FabricConfig) ValidateConfig(env *cb.Envelope) (ChannelConfig, error) {
	next, err := f.Bundle.ValidateConfig(env)
	if err != nil {
		return nil, err
	}
	return FabricConfig{next}, nil
}

// FabricConfigParser reads config blocks of Fabric's config tree with
// fabricconfig.FromConfigBlock.
func FabricConfigParser(opts ...fabricconfig.Option) ConfigParser {
	return func(block *cb.Block) (ChannelConfig, error) {
		b, err := fabricconfig.FromConfigBlock(block, opts...)
		if err != nil {
			return nil, err
		}
		return FabricConfig{b}, nil
	}
}

// DefaultConfigParser is the default ConfigParser: a config block that
// holds Fabric's config tree (fabricconfig.IsFabricConfig: a block made by
// Fabric's configtxgen or orderer, or by fabricconfig.GenesisBlock) is read
// by FabricConfigParser, any other by BundleConfigParser. The genesis
// block's content thus says which format a channel uses.
func DefaultConfigParser() ConfigParser {
	fabric, own := FabricConfigParser(), BundleConfigParser()
	return func(block *cb.Block) (ChannelConfig, error) {
		if fabricconfig.IsFabricConfig(block) {
			return fabric(block)
		}
		return own(block)
	}
}
