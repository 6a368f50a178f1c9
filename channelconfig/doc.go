// Package channelconfig parses and validates the configuration of a
// kafkaconsensus channel and the envelopes submitted to it.
//
// A channel's configuration (protos/channelconfig.ChannelConfig) holds its
// batch limits and timeout, its application and orderer organisations with
// their MSP definitions and policies, the channel policies Readers, Writers
// and Admins, and a sequence number: 0 in the genesis block, one more for
// each configuration update. NewBundle turns it into an immutable Bundle,
// which the ordering service consults for every envelope:
//
//	bundle, err := channelconfig.FromGenesisBlock(genesis)
//	err = bundle.ValidateNormal(env)          // Broadcast/Order: size, channel, creator, signature, Writers
//	next, err := bundle.ValidateConfig(cfgEnv) // Configure: sequence+1, signed by the current Admins
//	err = bundle.ValidateDeliver(seekEnv)      // Deliver: Readers
//
// Policies follow Fabric: a SIGNATURE policy is a SignaturePolicyEnvelope
// (see msp.FromString); an IMPLICIT_META policy applies ANY, ALL or MAJORITY
// to the same-named policy of every organisation. DefaultChannelPolicies and
// DefaultOrgPolicies give Fabric's defaults.
//
// Invariants: a Bundle never changes; ValidateConfig returns a new Bundle
// whose sequence is exactly one more; a config update is authorised by the
// configuration it replaces, never by itself. Errors wrap the sentinels
// ErrWrongChannel, ErrBadSignature, ErrForbidden, ErrBadSequence and
// ErrMalformed. An envelope's size against AbsoluteMaxBytes is the ordering
// node's check (consensus.ErrTooLarge), not the configuration's.
package channelconfig
