package consensus

import (
	"errors"
	"fmt"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// ChannelConfig is a channel's configuration at one sequence, as the chain
// uses it: batch limits, batch timeout, and how envelopes are validated. It
// is the validation hook of the library: the default implementation
// (BundleConfig) checks signatures and policies with packages msp and
// channelconfig; package fabricconfig reads Fabric's configuration tree;
// package plainconfig validates payloads that are not Fabric transactions
// with a function of the application's; an experiment may supply its own.
//
// The chain checks one thing itself: an envelope larger than
// BatchLimits().AbsoluteMaxBytes (payload plus signature) is refused with
// ErrTooLarge, at ingress (Chain.ProcessNormal, ProcessConfig, Order,
// Configure) and on re-validation, before the configuration is asked.
// Everything else (headers, channel, signatures, policies) is
// ValidateNormal's and ValidateConfig's to check.
//
// Optional interfaces: BlockVerifier, for blocks pulled from other nodes
// during catch-up; HeadersValidator, for envelopes whose headers the
// caller decoded (Chain.ProcessNormalHeaders); and ValidateDeliver(env
// *cb.Envelope) error, which a Deliver service asks of the configuration
// before serving blocks (BundleConfig has it).
//
// Implementations must be immutable and deterministic: every node must
// reach the same verdict on the same envelope under the same configuration,
// because re-validation of stale messages happens while consuming the log.
type ChannelConfig interface {
	// Sequence is the configuration sequence number: 0 in the genesis
	// block, one more per applied config update.
	Sequence() uint64
	// BatchLimits are the block cutter's limits.
	BatchLimits() blockcutter.Limits
	// BatchTimeout is the time after the first envelope of a batch at which
	// a node asks for the batch to be cut.
	BatchTimeout() time.Duration
	// ValidateNormal reports whether env may be ordered as a normal
	// transaction under this configuration.
	ValidateNormal(env *cb.Envelope) error
	// ValidateConfig reports whether env is a valid config update of this
	// configuration and returns the configuration it establishes, whose
	// Sequence is this one's plus one.
	ValidateConfig(env *cb.Envelope) (ChannelConfig, error)
}

// HeadersValidator is the optional interface of a ChannelConfig that
// validates a normal envelope whose headers its caller already decoded
// with protoutil.EnvelopeHeaders, so that they are not decoded twice
// (BundleConfig and FabricConfig implement it). Chain.ProcessNormalHeaders
// uses it.
type HeadersValidator interface {
	// ValidateNormalHeaders is ValidateNormal of env, whose headers are h:
	// what protoutil.EnvelopeHeaders returned for env, which neither side
	// modifies.
	ValidateNormalHeaders(env *cb.Envelope, h *protoutil.Headers) error
}

// ConfigUpdater is the optional interface of a ChannelConfig that
// processes Fabric's CONFIG_UPDATE envelopes (FabricConfig implements it):
// it validates the update against the configuration in force and returns
// the CONFIG envelope that applies it, signed by signer (the ordering
// node). Chain.ProcessConfigUpdate uses it.
type ConfigUpdater interface {
	ProcessConfigUpdate(env *cb.Envelope, signer Signer) (*cb.Envelope, error)
}

// ConfigReprocessor is the optional interface of a ChannelConfig whose
// CONFIG envelopes hold a whole configuration computed from an update
// against the configuration of their time (FabricConfig implements it). A
// CONFIG message that another configuration change overtook in the log
// cannot then be validated again as it is: the core computes it again
// from its update against the configuration in force, as Fabric's orderer
// does (ProcessConfigMsg), and the node re-submits the result signed by
// itself (see Ready.ConfigResubmissions). A chain of such a configuration
// needs the node's signing identity (ErrNoSigner).
type ConfigReprocessor interface {
	// ReproposeConfig computes again, against this configuration, the
	// configuration of env, a CONFIG envelope made against an older one,
	// or fails when this configuration does not accept env's update. It
	// signs nothing, and must reach the same verdict on every node.
	ReproposeConfig(env *cb.Envelope) (*cb.ConfigEnvelope, error)
	// SignConfig wraps ce, which ReproposeConfig returned, into a CONFIG
	// envelope signed by signer that this configuration accepts.
	SignConfig(ce *cb.ConfigEnvelope, signer Signer) (*cb.Envelope, error)
}

// ErrNoConfigUpdates reports a CONFIG_UPDATE envelope sent to a channel
// whose configuration does not process them (it is not a ConfigUpdater),
// or to a node without a signing identity to sign the resulting CONFIG
// envelope.
var ErrNoConfigUpdates = errors.New("consensus: config updates not supported")

// ConfigParser builds the ChannelConfig stored in a config block (the
// genesis block or a later config block) of a ledger.
type ConfigParser func(block *cb.Block) (ChannelConfig, error)

// checkSize refuses an envelope larger than cfg's AbsoluteMaxBytes (payload
// plus signature) with ErrTooLarge. It is the one size check: at ingress
// and on re-validation alike.
func checkSize(cfg ChannelConfig, env *cb.Envelope) error {
	if env == nil {
		return errors.New("consensus: nil envelope")
	}
	size, max := protoutil.EnvelopeSize(env), cfg.BatchLimits().AbsoluteMaxBytes
	if uint64(size) > uint64(max) {
		return fmt.Errorf("%w: %d bytes, the channel allows %d", ErrTooLarge, size, max)
	}
	return nil
}
