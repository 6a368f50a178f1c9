// Package fabricconfig reads, validates and updates a channel configuration
// in Hyperledger Fabric's own format: the configuration tree (Config,
// ConfigGroup, ConfigValue, ConfigPolicy) that Fabric's configtxgen writes,
// Fabric's orderer and peers keep in config blocks, and CONFIG_UPDATE
// transactions change. It lets an orderer built on this library start from
// a genesis block made by Fabric's tools, serve channels Fabric peers join,
// and accept exactly the config updates Fabric's orderer accepts.
//
// A Bundle is one configuration at one sequence, with the same shape as
// package channelconfig's (which reads the library's own, flat format):
//
//	bundle, err := fabricconfig.FromConfigBlock(genesis)
//	err = bundle.ValidateNormal(env)                         // Broadcast: size, channel, creator, signature, /Channel/Writers
//	err = bundle.ValidateDeliver(seekEnv)                    // Deliver: /Channel/Readers
//	cfgEnv, err := bundle.ProcessConfigUpdate(update, signer) // CONFIG_UPDATE -> CONFIG envelope to order
//	next, err := bundle.ValidateConfig(cfgEnv)                // a consumed CONFIG envelope -> next Bundle
//	err = bundle.VerifyBlockSignatures(block)                 // /Channel/Orderer/BlockValidation
//
// IsFabricConfig tells a config block in Fabric's format from one in
// channelconfig's, so that a parser can accept both. GenesisBlock writes the
// genesis block of a new channel as configtxgen would (Genesis, Org,
// OrgFromDir and the Default...Policies).
//
// Policies follow Fabric's policy manager: every group has its policies; a
// SIGNATURE policy is a SignaturePolicyEnvelope evaluated as msp's
// CheckedSignatures.Evaluate does (Fabric's cauthdsl); an IMPLICIT_META
// policy applies ANY (one), ALL or MAJORITY (more than half) to the
// same-named policy of every direct sub-group, a sub-group lacking it
// counting as unsatisfied and a group without sub-groups satisfying it.
// Paths are absolute ("/Channel/Application/Writers"); a relative mod_policy
// ("Admins") names a policy of the element's group.
//
// Config updates follow Fabric's configtx exactly (see
// Bundle.ProposeConfigUpdate): read-set versions, delta-set versions,
// mod_policies of the modified elements, the result as the current tree
// with the delta applied, sequence plus one. Errors keep Fabric's wording,
// so that a client sees the answers Fabric's orderer gives.
//
// Invariants: a Bundle never changes; ValidateConfig returns a new Bundle
// whose sequence is exactly one more; a configuration is authorised by the
// one it replaces, never by itself. Errors wrap package channelconfig's
// sentinels (ErrWrongChannel, ErrBadSignature, ErrForbidden,
// ErrBadSequence, ErrMalformed), so that the status mappers written for
// channelconfig answer as Fabric does, and ErrBadUpdate for rejected
// config updates; nothing here panics on input.
//
// Left out of Fabric's channel configuration: the system channel
// (Consortiums group, channel creation), consensus types other than kafka
// and consensus-type migration, BFT consenter sets, Idemix MSPs and hash
// functions other than SHA-256.
package fabricconfig
