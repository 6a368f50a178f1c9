package fabricconfig

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	pb "github.com/kafkaconsensus/kafkaconsensus/protos/peer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Defaults of Genesis, configtxgen's own.
var (
	// DefaultBatchSize is the batch size of a Genesis that sets none.
	DefaultBatchSize = channelconfig.BatchSize{MaxMessageCount: 500, AbsoluteMaxBytes: 10 << 20, PreferredMaxBytes: 2 << 20}
	// DefaultBatchTimeout is the batch timeout of a Genesis that sets none.
	DefaultBatchTimeout = 2 * time.Second
)

// DefaultCapability is the capability a Genesis requires of the channel,
// its orderers and its application when it names none.
const DefaultCapability = "V2_0"

// Genesis describes a new application channel ordered by Kafka, as a
// configtxgen profile does. Config and GenesisBlock turn it into Fabric's
// configuration tree, with every mod_policy "Admins" (the enclosing group's
// Admins policy), except OrdererAddresses' "/Channel/Orderer/Admins", as
// configtxgen writes them.
type Genesis struct {
	// ChannelID is the channel's ID.
	ChannelID string
	// ApplicationOrgs are the organisations whose members transact.
	ApplicationOrgs []Org
	// OrdererOrgs are the organisations that run the ordering nodes.
	OrdererOrgs []Org
	// BatchSize holds the block cutter's limits; zero means
	// DefaultBatchSize.
	BatchSize channelconfig.BatchSize
	// BatchTimeout is the batch timeout; zero means DefaultBatchTimeout.
	BatchTimeout time.Duration
	// KafkaBrokers are the Kafka brokers, host:port.
	KafkaBrokers []string
	// OrdererAddresses are the endpoints of the ordering nodes, host:port,
	// that peers pull blocks from (the channel's OrdererAddresses value;
	// organisations may also list their own Endpoints).
	OrdererAddresses []string
	// Consortium, if set, is the channel's Consortium value.
	Consortium string
	// Capabilities the channel, its orderers and its application require;
	// an empty list means DefaultCapability.
	Capabilities Capabilities
	// ChannelPolicies, OrdererPolicies and ApplicationPolicies are the
	// groups' policies; nil means DefaultChannelPolicies,
	// DefaultOrdererPolicies and DefaultApplicationPolicies.
	ChannelPolicies, OrdererPolicies, ApplicationPolicies map[string]*cb.Policy
}

// Org is an organisation of a Genesis.
type Org struct {
	// Name is the organisation's key in its group; empty means its MSP ID.
	Name string
	// MSP is the organisation's MSP definition (see OrgFromDir and
	// FabricMSPConfig).
	MSP *mspb.FabricMSPConfig
	// Policies are the organisation's policies; nil means
	// DefaultApplicationOrgPolicies or DefaultOrdererOrgPolicies.
	Policies map[string]*cb.Policy
	// Endpoints are an orderer organisation's ordering endpoints,
	// host:port (its Endpoints value, written when not empty).
	Endpoints []string
	// AnchorPeers are an application organisation's anchor peers (its
	// AnchorPeers value, written when not empty).
	AnchorPeers []*pb.AnchorPeer
}

// OrgFromDir returns the organisation whose MSP folder, in Fabric's layout,
// is dir (see msp.LoadDir), with MSP ID mspID, named after it and with the
// default policies.
func OrgFromDir(dir, mspID string) (Org, error) {
	cfg, err := msp.LoadDir(dir, mspID)
	if err != nil {
		return Org{}, err
	}
	return Org{Name: mspID, MSP: FabricMSPConfig(cfg)}, nil
}

// ImplicitMetaPolicy returns a Policy of type IMPLICIT_META: rule (ANY,
// ALL or MAJORITY) over the policy named subPolicy of every sub-group.
func ImplicitMetaPolicy(subPolicy string, rule cb.ImplicitMetaPolicy_Rule) *cb.Policy {
	return channelconfig.ImplicitMetaPolicy(subPolicy, rule)
}

// SignaturePolicy returns a Policy of type SIGNATURE holding env.
func SignaturePolicy(env *cb.SignaturePolicyEnvelope) *cb.Policy {
	return channelconfig.SignaturePolicy(env)
}

// DefaultChannelPolicies returns configtxgen's sample channel policies:
// Readers ANY Readers, Writers ANY Writers, Admins MAJORITY Admins.
func DefaultChannelPolicies() map[string]*cb.Policy {
	return map[string]*cb.Policy{
		ReadersPolicy: ImplicitMetaPolicy(ReadersPolicy, cb.ImplicitMetaPolicy_ANY),
		WritersPolicy: ImplicitMetaPolicy(WritersPolicy, cb.ImplicitMetaPolicy_ANY),
		AdminsPolicy:  ImplicitMetaPolicy(AdminsPolicy, cb.ImplicitMetaPolicy_MAJORITY),
	}
}

// DefaultOrdererPolicies returns configtxgen's sample Orderer group
// policies: the channel's, plus BlockValidation ANY Writers.
func DefaultOrdererPolicies() map[string]*cb.Policy {
	p := DefaultChannelPolicies()
	p[BlockValidationPolicyName] = ImplicitMetaPolicy(WritersPolicy, cb.ImplicitMetaPolicy_ANY)
	return p
}

// DefaultApplicationPolicies returns configtxgen's sample Application group
// policies: the channel's, plus Endorsement and LifecycleEndorsement
// MAJORITY Endorsement.
func DefaultApplicationPolicies() map[string]*cb.Policy {
	p := DefaultChannelPolicies()
	p[EndorsementPolicy] = ImplicitMetaPolicy(EndorsementPolicy, cb.ImplicitMetaPolicy_MAJORITY)
	p[LifecycleEndorsementPolicy] = ImplicitMetaPolicy(EndorsementPolicy, cb.ImplicitMetaPolicy_MAJORITY)
	return p
}

// DefaultApplicationOrgPolicies returns the policies of an application
// organisation of Fabric's samples, with NodeOUs: Readers
// OR('ID.admin', 'ID.peer', 'ID.client'), Writers OR('ID.admin',
// 'ID.client'), Admins OR('ID.admin'), Endorsement OR('ID.peer'). Each is
// byte for byte what Fabric's policy parser makes of these strings.
func DefaultApplicationOrgPolicies(mspID string) map[string]*cb.Policy {
	return map[string]*cb.Policy{
		ReadersPolicy:     SignaturePolicy(anyOf(mspID, mspb.MSPRole_ADMIN, mspb.MSPRole_PEER, mspb.MSPRole_CLIENT)),
		WritersPolicy:     SignaturePolicy(anyOf(mspID, mspb.MSPRole_ADMIN, mspb.MSPRole_CLIENT)),
		AdminsPolicy:      SignaturePolicy(anyOf(mspID, mspb.MSPRole_ADMIN)),
		EndorsementPolicy: SignaturePolicy(anyOf(mspID, mspb.MSPRole_PEER)),
	}
}

// DefaultOrdererOrgPolicies returns the policies of an orderer
// organisation of Fabric's samples: Readers and Writers OR('ID.member'),
// Admins OR('ID.admin').
func DefaultOrdererOrgPolicies(mspID string) map[string]*cb.Policy {
	return map[string]*cb.Policy{
		ReadersPolicy: SignaturePolicy(anyOf(mspID, mspb.MSPRole_MEMBER)),
		WritersPolicy: SignaturePolicy(anyOf(mspID, mspb.MSPRole_MEMBER)),
		AdminsPolicy:  SignaturePolicy(anyOf(mspID, mspb.MSPRole_ADMIN)),
	}
}

// anyOf is OR('mspID.role1', 'mspID.role2', ...).
func anyOf(mspID string, roles ...mspb.MSPRole_MSPRoleType) *cb.SignaturePolicyEnvelope {
	env := &cb.SignaturePolicyEnvelope{}
	var rules []*cb.SignaturePolicy
	for i, r := range roles {
		rules = append(rules, msp.SignedBy(int32(i)))
		env.Identities = append(env.Identities, msp.RolePrincipal(mspID, r))
	}
	env.Rule = msp.NOutOf(1, rules)
	return env
}

// Config returns the configuration tree g describes, at sequence 0 with
// every version 0, after checking that NewBundle accepts it.
func (g Genesis) Config() (*cb.Config, error) {
	orderer := g.ordererGroup()
	app := newGroup(policiesOr(g.ApplicationPolicies, DefaultApplicationPolicies()))
	setValue(app, CapabilitiesKey, capabilities(g.Capabilities.Application), AdminsPolicy)
	if err := g.addOrgs(app, g.ApplicationOrgs, DefaultApplicationOrgPolicies); err != nil {
		return nil, err
	}
	if err := g.addOrgs(orderer, g.OrdererOrgs, DefaultOrdererOrgPolicies); err != nil {
		return nil, err
	}
	cfg := &cb.Config{ChannelGroup: g.channelGroup(orderer, app)}
	if _, err := NewBundle(g.ChannelID, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ordererGroup returns the Orderer group without its organisations: its
// policies, Kafka consensus type and brokers, batch size and timeout (the
// defaults where g sets none), channel restrictions and capabilities.
func (g Genesis) ordererGroup() *cb.ConfigGroup {
	bs, timeout := g.BatchSize, g.BatchTimeout
	if bs == (channelconfig.BatchSize{}) {
		bs = DefaultBatchSize
	}
	if timeout == 0 {
		timeout = DefaultBatchTimeout
	}
	orderer := newGroup(policiesOr(g.OrdererPolicies, DefaultOrdererPolicies()))
	setValue(orderer, ConsensusTypeKey, &ab.ConsensusType{Type: ConsensusTypeKafka}, AdminsPolicy)
	setValue(orderer, BatchSizeKey, &ab.BatchSize{
		MaxMessageCount: bs.MaxMessageCount, AbsoluteMaxBytes: bs.AbsoluteMaxBytes, PreferredMaxBytes: bs.PreferredMaxBytes,
	}, AdminsPolicy)
	setValue(orderer, BatchTimeoutKey, &ab.BatchTimeout{Timeout: timeout.String()}, AdminsPolicy)
	setValue(orderer, ChannelRestrictionsKey, &ab.ChannelRestrictions{}, AdminsPolicy)
	setValue(orderer, CapabilitiesKey, capabilities(g.Capabilities.Orderer), AdminsPolicy)
	setValue(orderer, KafkaBrokersKey, &ab.KafkaBrokers{Brokers: g.KafkaBrokers}, AdminsPolicy)
	return orderer
}

// addOrgs adds a group for each of orgs to group, under the
// organisation's name, with its policies or, if nil, defaults(MSP ID). It
// fails on an organisation without an MSP and on a name given twice.
func (g Genesis) addOrgs(group *cb.ConfigGroup, orgs []Org, defaults func(mspID string) map[string]*cb.Policy) error {
	for _, o := range orgs {
		if o.MSP == nil {
			return g.malformed("organisation %q without an MSP", o.Name)
		}
		name := o.Name
		if name == "" {
			name = o.MSP.GetName()
		}
		if _, dup := group.Groups[name]; dup {
			return g.malformed("organisation %q given twice", name)
		}
		og := newGroup(policiesOr(o.Policies, defaults(o.MSP.GetName())))
		setValue(og, MSPKey, &mspb.MSPConfig{Config: protoutil.MarshalOrPanic(o.MSP)}, AdminsPolicy)
		if len(o.Endpoints) > 0 {
			setValue(og, EndpointsKey, &cb.OrdererAddresses{Addresses: o.Endpoints}, AdminsPolicy)
		}
		if len(o.AnchorPeers) > 0 {
			setValue(og, AnchorPeersKey, &pb.AnchorPeers{AnchorPeers: o.AnchorPeers}, AdminsPolicy)
		}
		group.Groups[name] = og
	}
	return nil
}

// channelGroup returns the Channel group, root of the tree: its policies
// and values, and orderer and app as its Orderer and Application groups.
func (g Genesis) channelGroup(orderer, app *cb.ConfigGroup) *cb.ConfigGroup {
	ch := newGroup(policiesOr(g.ChannelPolicies, DefaultChannelPolicies()))
	setValue(ch, HashingAlgorithmKey, &cb.HashingAlgorithm{Name: "SHA256"}, AdminsPolicy)
	setValue(ch, BlockDataHashingStructureKey, &cb.BlockDataHashingStructure{Width: math.MaxUint32}, AdminsPolicy)
	if len(g.OrdererAddresses) > 0 {
		setValue(ch, OrdererAddressesKey, &cb.OrdererAddresses{Addresses: g.OrdererAddresses}, OrdererAdmins)
	}
	if g.Consortium != "" {
		setValue(ch, ConsortiumKey, &cb.Consortium{Name: g.Consortium}, AdminsPolicy)
	}
	setValue(ch, CapabilitiesKey, capabilities(g.Capabilities.Channel), AdminsPolicy)
	ch.Groups[OrdererGroupKey] = orderer
	ch.Groups[ApplicationGroupKey] = app
	return ch
}

// malformed returns an error wrapping channelconfig.ErrMalformed that
// names g's channel, then says what is wrong as format and args do.
func (g Genesis) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: genesis of channel %q: "+format, append([]any{channelconfig.ErrMalformed, g.ChannelID}, args...)...)
}

// capabilities returns the Capabilities value requiring names, or
// DefaultCapability if there are none.
func capabilities(names []string) *cb.Capabilities {
	if len(names) == 0 {
		names = []string{DefaultCapability}
	}
	out := &cb.Capabilities{Capabilities: make(map[string]*cb.Capability)}
	for _, name := range names {
		out.Capabilities[name] = &cb.Capability{}
	}
	return out
}

// policiesOr returns p, or def if p is nil.
func policiesOr(p, def map[string]*cb.Policy) map[string]*cb.Policy {
	if p == nil {
		return def
	}
	return p
}

// GenesisBlock returns block 0 of the channel g describes, as configtxgen
// writes one but deterministic, so that every node builds the same bytes:
// no previous hash; one unsigned CONFIG envelope (channel header of type
// CONFIG naming the channel, without timestamp or tx_id; empty signature
// header) whose data is a ConfigEnvelope holding g.Config(); LAST_CONFIG
// metadata, and the SIGNATURES metadata's OrdererBlockMetadata, pointing at
// block 0. A Fabric peer joins the channel with it.
func GenesisBlock(g Genesis) (*cb.Block, error) {
	cfg, err := g.Config()
	if err != nil {
		return nil, err
	}
	payload := &cb.Payload{
		Header: &cb.Header{
			ChannelHeader:   protoutil.MarshalOrPanic(&cb.ChannelHeader{Type: int32(cb.HeaderType_CONFIG), ChannelId: g.ChannelID}),
			SignatureHeader: protoutil.MarshalOrPanic(&cb.SignatureHeader{}),
		},
		Data: protoutil.MarshalOrPanic(&cb.ConfigEnvelope{Config: cfg}),
	}
	env := &cb.Envelope{Payload: protoutil.MarshalOrPanic(payload)}
	block := protoutil.NewBlock(0, nil, [][]byte{protoutil.MarshalOrPanic(env)})
	protoutil.SetMetadata(block, cb.BlockMetadataIndex_SIGNATURES, &cb.Metadata{
		Value: protoutil.MarshalOrPanic(&cb.OrdererBlockMetadata{LastConfig: &cb.LastConfig{Index: 0}}),
	})
	protoutil.SetMetadata(block, cb.BlockMetadataIndex_LAST_CONFIG, &cb.Metadata{
		Value: protoutil.MarshalOrPanic(&cb.LastConfig{Index: 0}),
	})
	return block, nil
}

// newGroup returns a group with policies (each with mod_policy Admins) and
// mod_policy Admins.
func newGroup(policies map[string]*cb.Policy) *cb.ConfigGroup {
	g := emptyGroup(0)
	g.ModPolicy = AdminsPolicy
	for name, p := range policies {
		g.Policies[name] = &cb.ConfigPolicy{Policy: proto.Clone(p).(*cb.Policy), ModPolicy: AdminsPolicy}
	}
	return g
}

// setValue sets value key of g to the marshalled m.
func setValue(g *cb.ConfigGroup, key string, m proto.Message, modPolicy string) {
	g.Values[key] = &cb.ConfigValue{Value: protoutil.MarshalOrPanic(m), ModPolicy: modPolicy}
}
