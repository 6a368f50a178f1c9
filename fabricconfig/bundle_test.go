package fabricconfig_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestFixtureConfigBlocksLoad loads the config blocks Fabric's orderer
// wrote: the genesis block and blocks 4 and 8.
func TestFixtureConfigBlocksLoad(t *testing.T) {
	orderers := []string{"127.0.0.1:31050", "127.0.0.1:31051", "127.0.0.1:31052"}
	tests := []struct {
		block    int
		sequence uint64
		maxCount uint32
		anchors  []string
	}{
		{0, 1, 10, nil},
		{4, 2, 20, nil},
		{8, 3, 20, []string{"127.0.0.1:31151"}},
	}
	for _, tt := range tests {
		b := bundleAt(t, tt.block)
		require.Equal(t, channel, b.ChannelID())
		require.Equal(t, tt.sequence, b.Sequence(), "block %d", tt.block)
		require.Equal(t, channelconfig.BatchSize{MaxMessageCount: tt.maxCount, AbsoluteMaxBytes: 10485760, PreferredMaxBytes: 524288}, b.BatchSize())
		require.Equal(t, tt.maxCount, b.BatchLimits().MaxMessageCount)
		require.Equal(t, "1s", b.BatchTimeout().String())
		require.Equal(t, []string{"127.0.0.1:31092", "127.0.0.1:31093", "127.0.0.1:31094"}, b.KafkaBrokers())
		require.Equal(t, orderers, b.OrdererAddresses())
		require.Equal(t, "FabConsortium", b.Consortium())
		require.Equal(t, "kafka", b.ConsensusType())
		require.Zero(t, b.MaxChannels())
		require.Equal(t, fabricconfig.Capabilities{Channel: []string{"V2_0"}, Orderer: []string{"V2_0"}, Application: []string{"V2_0"}}, b.Capabilities())
		require.Equal(t, []fabricconfig.Organization{
			{Group: "Application", Name: "Org1MSP", MSPID: "Org1MSP", AnchorPeers: tt.anchors},
			{Group: "Application", Name: "Org2MSP", MSPID: "Org2MSP"},
			{Group: "Orderer", Name: "OrdererOrg", MSPID: "OrdererMSP", Endpoints: orderers},
		}, b.Organizations())
		for _, id := range []string{"OrdererMSP", "Org1MSP", "Org2MSP"} {
			m, ok := b.MSPManager().MSP(id)
			require.True(t, ok)
			require.True(t, m.NodeOUsEnabled())
		}
		// Accessors return copies.
		b.KafkaBrokers()[0] = "x"
		b.Config().ChannelGroup.Groups = nil
		require.Equal(t, "127.0.0.1:31092", b.KafkaBrokers()[0])
		require.NotNil(t, b.Config().ChannelGroup.Groups)
	}

	// The genesis block Fabric's orderer wrote is block 0 of the chain.
	require.Equal(t, protoutil.HeaderHash(genesisBlock(t).Header), block(t, 1).Header.PreviousHash)
	env := envelope(t, genesisBlock(t), 0)
	b, err := fabricconfig.FromConfigEnvelope(env, clock)
	require.NoError(t, err)
	require.True(t, proto.Equal(bundleAt(t, 0).Config(), b.Config()))
}

// ownFormatGenesis returns a genesis block in package channelconfig's own
// format, with the fixtures' organisations.
func ownFormatGenesis(t *testing.T) *cb.Block {
	t.Helper()
	var orgs []*ccpb.Organization
	for _, id := range []string{"Org1MSP", "OrdererMSP"} {
		m, err := msp.LoadDir(filepath.Join(fixtures, orgDirs[id]), id)
		require.NoError(t, err)
		orgs = append(orgs, channelconfig.NewOrganization(m))
	}
	blk, err := channelconfig.GenesisBlock(&ccpb.ChannelConfig{
		ChannelId:       channel,
		BatchSize:       &ccpb.BatchSize{MaxMessageCount: 10, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 1 << 19},
		BatchTimeout:    durationpb.New(1e9),
		ApplicationOrgs: orgs[:1],
		OrdererOrgs:     orgs[1:],
		Policies:        channelconfig.DefaultChannelPolicies(),
	})
	require.NoError(t, err)
	return blk
}

func TestIsFabricConfig(t *testing.T) {
	own := ownFormatGenesis(t)
	require.True(t, fabricconfig.IsFabricConfig(genesisBlock(t)))
	require.True(t, fabricconfig.IsFabricConfig(block(t, 4)))
	require.False(t, fabricconfig.IsFabricConfig(own))
	require.False(t, fabricconfig.IsFabricConfig(block(t, 1)))
	require.False(t, fabricconfig.IsFabricConfig(nil))
	require.False(t, fabricconfig.IsFabricConfig(&cb.Block{}))

	// Each parser refuses the other's format.
	_, err := fabricconfig.FromConfigBlock(own)
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
	_, err = channelconfig.FromConfigBlock(genesisBlock(t))
	require.Error(t, err)
}

func TestFromConfigBlockErrors(t *testing.T) {
	good := genesisBlock(t)
	tests := []struct {
		name  string
		block func() *cb.Block
	}{
		{"nil", func() *cb.Block { return nil }},
		{"two envelopes", func() *cb.Block { return protoutil.NewBlock(0, nil, [][]byte{good.Data.Data[0], good.Data.Data[0]}) }},
		{"data hash", func() *cb.Block { b := proto.Clone(good).(*cb.Block); b.Header.DataHash = []byte("x"); return b }},
		{"garbage envelope", func() *cb.Block { return protoutil.NewBlock(0, nil, [][]byte{{0xff}}) }},
		{"not CONFIG", func() *cb.Block { return protoutil.NewBlock(1, nil, block(t, 1).Data.Data[:1]) }},
		{"no config", func() *cb.Block {
			env := envelope(t, good, 0)
			h := mustHeaders(t, env)
			h.Payload.Data = mustMarshal(t, &cb.ConfigEnvelope{})
			env.Payload = mustMarshal(t, h.Payload)
			return protoutil.NewBlock(0, nil, [][]byte{mustMarshal(t, env)})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fabricconfig.FromConfigBlock(tt.block())
			require.ErrorIs(t, err, channelconfig.ErrMalformed)
		})
	}
}

// TestNewBundleRejects checks Fabric's rules for a configuration, one
// change of the fixtures' genesis configuration at a time.
func TestNewBundleRejects(t *testing.T) {
	base := bundleAt(t, 0).Config()
	value := func(m proto.Message) *cb.ConfigValue {
		return &cb.ConfigValue{Value: protoutil.MarshalOrPanic(m), ModPolicy: "Admins"}
	}
	orderer := func(ch *cb.ConfigGroup) *cb.ConfigGroup { return ch.Groups["Orderer"] }
	org1 := func(ch *cb.ConfigGroup) *cb.ConfigGroup { return ch.Groups["Application"].Groups["Org1MSP"] }
	org1MSP := func(ch *cb.ConfigGroup, edit func(fc *mspb.FabricMSPConfig)) {
		fc := new(mspb.FabricMSPConfig)
		mc := new(mspb.MSPConfig)
		require.NoError(t, proto.Unmarshal(org1(ch).Values["MSP"].Value, mc))
		require.NoError(t, proto.Unmarshal(mc.Config, fc))
		edit(fc)
		mc.Config = protoutil.MarshalOrPanic(fc)
		org1(ch).Values["MSP"] = value(mc)
	}
	caps := func(names ...string) *cb.ConfigValue {
		c := &cb.Capabilities{Capabilities: map[string]*cb.Capability{}}
		for _, n := range names {
			c.Capabilities[n] = &cb.Capability{}
		}
		return value(c)
	}
	tests := []struct {
		name string
		edit func(ch *cb.ConfigGroup)
	}{
		{"hashing SHA3_256", func(ch *cb.ConfigGroup) {
			ch.Values["HashingAlgorithm"] = value(&cb.HashingAlgorithm{Name: "SHA3_256"})
		}},
		{"no hashing algorithm", func(ch *cb.ConfigGroup) { delete(ch.Values, "HashingAlgorithm") }},
		{"data hashing width", func(ch *cb.ConfigGroup) {
			ch.Values["BlockDataHashingStructure"] = value(&cb.BlockDataHashingStructure{Width: 2})
		}},
		{"unknown channel value", func(ch *cb.ConfigGroup) { ch.Values["Extra"] = value(&cb.Consortium{}) }},
		{"garbage channel value", func(ch *cb.ConfigGroup) { ch.Values["Consortium"] = &cb.ConfigValue{Value: []byte{0xff}} }},
		{"Consortiums group", func(ch *cb.ConfigGroup) { ch.Groups["Consortiums"] = &cb.ConfigGroup{} }},
		{"no Orderer group", func(ch *cb.ConfigGroup) { delete(ch.Groups, "Orderer") }},
		{"channel capability V3_0", func(ch *cb.ConfigGroup) { ch.Values["Capabilities"] = caps("V3_0") }},
		{"orderer capability V9", func(ch *cb.ConfigGroup) { orderer(ch).Values["Capabilities"] = caps("V9") }},
		{"channel capabilities without orderer's", func(ch *cb.ConfigGroup) { delete(orderer(ch).Values, "Capabilities") }},
		{"no OrdererAddresses before V1_4_2", func(ch *cb.ConfigGroup) {
			ch.Values["Capabilities"] = caps("V1_3")
			delete(ch.Values, "OrdererAddresses")
			delete(orderer(ch).Groups["OrdererOrg"].Values, "Endpoints")
		}},
		{"org endpoints before V1_4_2", func(ch *cb.ConfigGroup) { ch.Values["Capabilities"] = caps("V1_3") }},
		{"ACLs without capability", func(ch *cb.ConfigGroup) {
			ch.Groups["Application"].Values["Capabilities"] = caps("V1_1")
			ch.Groups["Application"].Values["ACLs"] = &cb.ConfigValue{}
		}},
		{"consensus etcdraft", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["ConsensusType"] = value(&ab.ConsensusType{Type: "etcdraft"})
		}},
		{"maintenance", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["ConsensusType"] = value(&ab.ConsensusType{Type: "kafka", State: ab.ConsensusType_STATE_MAINTENANCE})
		}},
		{"BFT consenters", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["Orderers"] = value(&cb.Orderers{ConsenterMapping: []*cb.Consenter{{Id: 1}}})
		}},
		{"max message count 0", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["BatchSize"] = value(&ab.BatchSize{AbsoluteMaxBytes: 10, PreferredMaxBytes: 10})
		}},
		{"preferred above absolute", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["BatchSize"] = value(&ab.BatchSize{MaxMessageCount: 1, AbsoluteMaxBytes: 10, PreferredMaxBytes: 11})
		}},
		{"timeout not a duration", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["BatchTimeout"] = value(&ab.BatchTimeout{Timeout: "1 second"})
		}},
		{"timeout zero", func(ch *cb.ConfigGroup) { orderer(ch).Values["BatchTimeout"] = value(&ab.BatchTimeout{Timeout: "0s"}) }},
		{"broker without port", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["KafkaBrokers"] = value(&ab.KafkaBrokers{Brokers: []string{"kafka"}})
		}},
		{"broker port 0", func(ch *cb.ConfigGroup) {
			orderer(ch).Values["KafkaBrokers"] = value(&ab.KafkaBrokers{Brokers: []string{"kafka:0"}})
		}},
		{"organisation sub-group", func(ch *cb.ConfigGroup) { org1(ch).Groups = map[string]*cb.ConfigGroup{"x": {}} }},
		{"unknown organisation value", func(ch *cb.ConfigGroup) { org1(ch).Values["Endpoints"] = value(&cb.OrdererAddresses{}) }},
		{"idemix MSP", func(ch *cb.ConfigGroup) { org1(ch).Values["MSP"] = value(&mspb.MSPConfig{Type: 1}) }},
		{"no MSP", func(ch *cb.ConfigGroup) { delete(org1(ch).Values, "MSP") }},
		{"MSP without name", func(ch *cb.ConfigGroup) { org1MSP(ch, func(fc *mspb.FabricMSPConfig) { fc.Name = "" }) }},
		{"MSP without root", func(ch *cb.ConfigGroup) { org1MSP(ch, func(fc *mspb.FabricMSPConfig) { fc.RootCerts = nil }) }},
		{"MSP SHA3", func(ch *cb.ConfigGroup) {
			org1MSP(ch, func(fc *mspb.FabricMSPConfig) { fc.CryptoConfig.SignatureHashFamily = "SHA3" })
		}},
		{"MSP ID twice", func(ch *cb.ConfigGroup) { org1MSP(ch, func(fc *mspb.FabricMSPConfig) { fc.Name = "Org2MSP" }) }},
		{"nil policy", func(ch *cb.ConfigGroup) { ch.Policies["Readers"].Policy = nil }},
		{"MSP policy type", func(ch *cb.ConfigGroup) { ch.Policies["Readers"].Policy = &cb.Policy{Type: int32(cb.Policy_MSP)} }},
		{"signature policy version 1", func(ch *cb.ConfigGroup) {
			env, err := msp.FromString("OR('Org1MSP.member')")
			require.NoError(t, err)
			env.Version = 1
			org1(ch).Policies["Readers"].Policy = fabricconfig.SignaturePolicy(env)
		}},
		{"signature policy out of range", func(ch *cb.ConfigGroup) {
			org1(ch).Policies["Readers"].Policy = fabricconfig.SignaturePolicy(&cb.SignaturePolicyEnvelope{Rule: msp.SignedBy(3)})
		}},
		{"implicit meta rule", func(ch *cb.ConfigGroup) {
			ch.Policies["Readers"].Policy = fabricconfig.ImplicitMetaPolicy("Readers", cb.ImplicitMetaPolicy_Rule(7))
		}},
		{"illegal key", func(ch *cb.ConfigGroup) { ch.Policies["a/b"] = ch.Policies["Readers"] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := proto.Clone(base).(*cb.Config)
			tt.edit(cfg.ChannelGroup)
			_, err := fabricconfig.NewBundle(channel, cfg, clock)
			require.ErrorIs(t, err, channelconfig.ErrMalformed)
		})
	}
	_, err := fabricconfig.NewBundle(channel, proto.Clone(base).(*cb.Config), clock)
	require.NoError(t, err)
	for _, id := range []string{"", "Fab", "1fab", "fab_channel"} {
		_, err := fabricconfig.NewBundle(id, base, clock)
		require.ErrorIs(t, err, channelconfig.ErrMalformed, id)
	}
	_, err = fabricconfig.NewBundle(channel, nil)
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
	_, err = fabricconfig.NewBundle(channel, &cb.Config{})
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
}

// TestImplicitMetaRules checks ALL, a missing sub-policy and a group
// without sub-groups.
func TestImplicitMetaRules(t *testing.T) {
	cfg := bundleAt(t, 0).Config()
	cfg.ChannelGroup.Policies["Readers"].Policy = fabricconfig.ImplicitMetaPolicy("Readers", cb.ImplicitMetaPolicy_ALL)
	cfg.ChannelGroup.Policies["Odd"] = &cb.ConfigPolicy{Policy: fabricconfig.ImplicitMetaPolicy("Nope", cb.ImplicitMetaPolicy_ANY), ModPolicy: "Admins"}
	b, err := fabricconfig.NewBundle(channel, cfg, clock)
	require.NoError(t, err)
	msg := []byte("m")
	require.Error(t, b.EvaluatePolicy(fabricconfig.ChannelReaders, signedBy(t, msg, "peer0.org1")))
	require.NoError(t, b.EvaluatePolicy(fabricconfig.ChannelReaders, signedBy(t, msg, "peer0.org1", "orderer0")))
	err = b.EvaluatePolicy("/Channel/Odd", signedBy(t, msg, "peer0.org1", "orderer0"))
	require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied)
	require.ErrorContains(t, err, "0 sub-policies were satisfied, but this policy requires 1 of the 'Nope' sub-policies")

	// With no application organisation, ANY Writers of the Application
	// group is satisfied by anyone, as in Fabric.
	ord, err := fabricconfig.OrgFromDir(filepath.Join(fixtures, orgDirs["OrdererMSP"]), "OrdererMSP")
	require.NoError(t, err)
	blk, err := fabricconfig.GenesisBlock(fabricconfig.Genesis{ChannelID: "noapp", OrdererOrgs: []fabricconfig.Org{ord}})
	require.NoError(t, err)
	b, err = fabricconfig.FromConfigBlock(blk, clock)
	require.NoError(t, err)
	require.NoError(t, b.EvaluatePolicy("/Channel/Application/Writers", nil))
	require.Error(t, b.EvaluatePolicy("/Channel/Orderer/Writers", nil))
}
