package coretest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// fabricFixtures holds blocks, updates and identities made by Hyperledger
// Fabric's own tools and orderer (see its README).
const fabricFixtures = "../../fabricconfig/testdata/fabric"

// TestLogFabricConfigOvertaken orders the CONFIG envelopes of Fabric's
// fixture updates u1 and u2, both made against the genesis configuration,
// one after the other, on 3 nodes that read their configuration back from
// their blocks on restart. The second is overtaken: every core computes it
// again from its update; nodes with a signing identity re-submit it, and
// all apply it. Nodes without one re-submit nothing, and the overtaken
// update is then never applied: the gate stays closed until another
// re-submission passes it.
func TestLogFabricConfigOvertaken(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fabricFixtures, "fabchannel-genesis.block"))
	require.NoError(t, err)
	genesis, err := protoutil.UnmarshalBlock(raw)
	require.NoError(t, err)
	orderer0, err := msp.LoadSigningIdentity(filepath.Join(fabricFixtures, "crypto/ordererOrganizations/example.com/orderers/orderer0.example.com/msp"), "OrdererMSP")
	require.NoError(t, err)
	cfg, err := consensus.FabricConfigParser()(genesis)
	require.NoError(t, err)
	configEnv := func(name string) *cb.Envelope {
		raw, err := os.ReadFile(filepath.Join(fabricFixtures, "updates", name))
		require.NoError(t, err)
		u := new(cb.Envelope)
		require.NoError(t, proto.Unmarshal(raw, u))
		env, err := cfg.(consensus.ConfigUpdater).ProcessConfigUpdate(u, orderer0)
		require.NoError(t, err)
		return env
	}
	u1, u2 := configEnv("u1-batchsize-20.pb"), configEnv("u2-org1-anchorpeer.pb")
	seq := cfg.Sequence()

	for _, signing := range []bool{true, false} {
		opts := []coretest.Option{coretest.WithChannel("fabchannel"), coretest.WithGenesis(genesis),
			coretest.WithConfigParser(consensus.FabricConfigParser())}
		if signing {
			opts = append(opts, coretest.WithSigner(orderer0))
		}
		l := newLog(t, 3, nil, opts...)
		l.SubmitConfig(u1)
		l.SubmitConfigAt(seq, u2)
		l.Submit(coretest.Envelopes("after")...)
		require.NoError(t, l.Settle())
		require.NoError(t, l.CheckIdentical())
		require.NoError(t, l.CheckRestarts())
		if !signing {
			require.Equal(t, seq+1, l.Config().Sequence(), "u2 applied with no node to re-submit it")
			require.True(t, l.Core(0).Resubmitting())
			continue
		}
		require.Equal(t, seq+2, l.Config().Sequence())
		require.False(t, l.Core(0).Resubmitting())
		require.Equal(t, uint32(20), l.Config().BatchLimits().MaxMessageCount)
		// u1 at offset 0; u2 at 1, overtaken; its re-submissions at 2 to 4,
		// the first applied, the others duplicates; "after" cut at 6 by
		// the time-to-cut.
		require.Equal(t, "block 1 config persisted=0\nblock 2 config persisted=2\nblock 3 [after] persisted=6", l.Summary(0))
	}
}
