package fabricconfig_test

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// fabChannel is the Genesis equivalent to configtx.yaml's FabChannel profile
// with FabSystem's orderer: the channel Fabric's orderer created.
func fabChannel(t *testing.T) fabricconfig.Genesis {
	t.Helper()
	org := func(mspID string) fabricconfig.Org {
		o, err := fabricconfig.OrgFromDir(filepath.Join(fixtures, orgDirs[mspID]), mspID)
		require.NoError(t, err)
		return o
	}
	orderers := []string{"127.0.0.1:31050", "127.0.0.1:31051", "127.0.0.1:31052"}
	ordererOrg := org("OrdererMSP")
	ordererOrg.Name = "OrdererOrg"
	ordererOrg.Endpoints = orderers
	return fabricconfig.Genesis{
		ChannelID:        channel,
		ApplicationOrgs:  []fabricconfig.Org{org("Org1MSP"), org("Org2MSP")},
		OrdererOrgs:      []fabricconfig.Org{ordererOrg},
		BatchSize:        channelconfig.BatchSize{MaxMessageCount: 10, AbsoluteMaxBytes: 10 << 20, PreferredMaxBytes: 512 << 10},
		BatchTimeout:     time.Second,
		KafkaBrokers:     []string{"127.0.0.1:31092", "127.0.0.1:31093", "127.0.0.1:31094"},
		OrdererAddresses: orderers,
		Consortium:       "FabConsortium",
	}
}

// TestGenesisMatchesFabric builds fabchannel's configuration from the same
// inputs as Fabric's configtxgen and compares it with the tree in the
// genesis block Fabric's orderer wrote, value bytes included. The only
// difference is the Application group's version, which Fabric's channel
// creation raised to 1.
func TestGenesisMatchesFabric(t *testing.T) {
	cfg, err := fabChannel(t).Config()
	require.NoError(t, err)
	require.Zero(t, cfg.Sequence)
	fabric := configEnvelope(t, genesisBlock(t)).Config.ChannelGroup
	require.EqualValues(t, 1, fabric.Groups["Application"].Version)
	cfg.ChannelGroup.Groups["Application"].Version = 1
	for _, key := range slices.Sorted(maps.Keys(fabric.Groups)) {
		for _, org := range slices.Sorted(maps.Keys(fabric.Groups[key].Groups)) {
			require.True(t, proto.Equal(fabric.Groups[key].Groups[org], cfg.ChannelGroup.Groups[key].Groups[org]), "organisation %s/%s", key, org)
		}
	}
	require.True(t, proto.Equal(fabric, cfg.ChannelGroup))
}

func TestGenesisBlockRoundTrip(t *testing.T) {
	g := fabChannel(t)
	blk, err := fabricconfig.GenesisBlock(g)
	require.NoError(t, err)
	again, err := fabricconfig.GenesisBlock(g)
	require.NoError(t, err)
	require.True(t, proto.Equal(blk, again), "the genesis block is deterministic")

	require.Zero(t, blk.Header.Number)
	require.Nil(t, blk.Header.PreviousHash)
	require.NoError(t, protoutil.CheckDataHash(blk))
	idx, err := protoutil.LastConfigIndex(blk)
	require.NoError(t, err)
	require.Zero(t, idx)
	md, err := protoutil.Metadata(blk, cb.BlockMetadataIndex_SIGNATURES)
	require.NoError(t, err)
	obm := new(cb.OrdererBlockMetadata)
	require.NoError(t, proto.Unmarshal(md.Value, obm))
	require.Zero(t, obm.GetLastConfig().GetIndex())
	require.True(t, fabricconfig.IsFabricConfig(blk))

	b, err := fabricconfig.FromConfigBlock(blk, clock)
	require.NoError(t, err)
	cfg, err := g.Config()
	require.NoError(t, err)
	require.True(t, proto.Equal(cfg, b.Config()))
	require.Equal(t, channel, b.ChannelID())
	require.Zero(t, b.Sequence())
	require.Equal(t, g.BatchSize, b.BatchSize())
	require.Equal(t, time.Second, b.BatchTimeout())
	require.Equal(t, g.KafkaBrokers, b.KafkaBrokers())
	require.Equal(t, g.OrdererAddresses, b.OrdererAddresses())
	require.Equal(t, "FabConsortium", b.Consortium())
	require.Equal(t, fabricconfig.ConsensusTypeKafka, b.ConsensusType())
	require.Equal(t, fabricconfig.Capabilities{Channel: []string{"V2_0"}, Orderer: []string{"V2_0"}, Application: []string{"V2_0"}}, b.Capabilities())
	require.Equal(t, []string{"OrdererMSP", "Org1MSP", "Org2MSP"}, b.MSPManager().MSPIDs())

	// The policies behave as the fixture's.
	msg := []byte("message")
	for _, tc := range policyCases {
		err := b.EvaluatePolicy(tc.path, signedBy(t, msg, strings.Split(tc.signers, ",")...))
		require.Equal(t, tc.ok, err == nil, "%s by %s: %v", tc.path, tc.signers, err)
	}
	// And Fabric's update u1 applies to it as to Fabric's genesis
	// (u1's read set is at the versions both share).
	ce, err := b.ProposeConfigUpdate(update(t, "u1-batchsize-20"))
	require.NoError(t, err)
	nb, err := fabricconfig.NewBundle(channel, ce.Config, clock)
	require.NoError(t, err)
	require.EqualValues(t, 20, nb.BatchSize().MaxMessageCount)
}

func TestGenesisDefaults(t *testing.T) {
	org1, err := fabricconfig.OrgFromDir(filepath.Join(fixtures, orgDirs["Org1MSP"]), "Org1MSP")
	require.NoError(t, err)
	ord, err := fabricconfig.OrgFromDir(filepath.Join(fixtures, orgDirs["OrdererMSP"]), "OrdererMSP")
	require.NoError(t, err)
	g := fabricconfig.Genesis{ChannelID: "minimal", ApplicationOrgs: []fabricconfig.Org{org1}, OrdererOrgs: []fabricconfig.Org{ord}}
	blk, err := fabricconfig.GenesisBlock(g)
	require.NoError(t, err)
	b, err := fabricconfig.FromConfigBlock(blk, clock)
	require.NoError(t, err)
	require.Equal(t, fabricconfig.DefaultBatchSize, b.BatchSize())
	require.Equal(t, fabricconfig.DefaultBatchTimeout, b.BatchTimeout())
	require.Empty(t, b.OrdererAddresses())
	require.Empty(t, b.Consortium())
	require.Equal(t, []fabricconfig.Organization{
		{Group: fabricconfig.ApplicationGroupKey, Name: "Org1MSP", MSPID: "Org1MSP"},
		{Group: fabricconfig.OrdererGroupKey, Name: "OrdererMSP", MSPID: "OrdererMSP"},
	}, b.Organizations())
	sd := signedBy(t, []byte("m"), "User1@org1")
	require.NoError(t, b.EvaluatePolicy(fabricconfig.ChannelWriters, sd))
}

func TestGenesisErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(g *fabricconfig.Genesis)
	}{
		{"bad channel ID", func(g *fabricconfig.Genesis) { g.ChannelID = "Fab_Channel" }},
		{"empty channel ID", func(g *fabricconfig.Genesis) { g.ChannelID = "" }},
		{"organisation without MSP", func(g *fabricconfig.Genesis) { g.ApplicationOrgs[0].MSP = nil }},
		{"organisation twice", func(g *fabricconfig.Genesis) { g.ApplicationOrgs[1] = g.ApplicationOrgs[0] }},
		{"preferred above absolute", func(g *fabricconfig.Genesis) { g.BatchSize.PreferredMaxBytes = g.BatchSize.AbsoluteMaxBytes + 1 }},
		{"negative timeout", func(g *fabricconfig.Genesis) { g.BatchTimeout = -time.Second }},
		{"broker without port", func(g *fabricconfig.Genesis) { g.KafkaBrokers = []string{"localhost"} }},
		{"unknown capability", func(g *fabricconfig.Genesis) { g.Capabilities.Orderer = []string{"V9_9"} }},
		{"MSP defined twice differently", func(g *fabricconfig.Genesis) {
			o := g.ApplicationOrgs[1]
			o.Name = "Again"
			o.MSP = proto.Clone(o.MSP).(*mspb.FabricMSPConfig)
			o.MSP.Name = "Org1MSP"
			g.ApplicationOrgs = append(g.ApplicationOrgs, o)
		}},
		{"unknown policy type", func(g *fabricconfig.Genesis) {
			g.ChannelPolicies = fabricconfig.DefaultChannelPolicies()
			g.ChannelPolicies["Odd"] = &cb.Policy{Type: int32(cb.Policy_MSP)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := fabChannel(t)
			tt.edit(&g)
			_, err := fabricconfig.GenesisBlock(g)
			require.ErrorIs(t, err, channelconfig.ErrMalformed)
		})
	}
}

// TestDefaultOrgPoliciesMatchPolicyDSL checks that the default
// organisation policies are what Fabric's policy language makes of the
// fixtures' configtx.yaml rules.
func TestDefaultOrgPoliciesMatchPolicyDSL(t *testing.T) {
	for name, rule := range map[string]string{
		fabricconfig.ReadersPolicy:     "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')",
		fabricconfig.WritersPolicy:     "OR('Org1MSP.admin', 'Org1MSP.client')",
		fabricconfig.AdminsPolicy:      "OR('Org1MSP.admin')",
		fabricconfig.EndorsementPolicy: "OR('Org1MSP.peer')",
	} {
		env, err := msp.FromString(rule)
		require.NoError(t, err)
		require.True(t, proto.Equal(fabricconfig.SignaturePolicy(env), fabricconfig.DefaultApplicationOrgPolicies("Org1MSP")[name]), name)
	}
	env, err := msp.FromString("OR('OrdererMSP.member')")
	require.NoError(t, err)
	require.True(t, proto.Equal(fabricconfig.SignaturePolicy(env), fabricconfig.DefaultOrdererOrgPolicies("OrdererMSP")[fabricconfig.WritersPolicy]))
}
