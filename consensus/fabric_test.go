package consensus_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// fabricFixtures holds blocks, updates and identities made by Hyperledger
// Fabric v2.5.16's own tools and orderer (see its README).
const fabricFixtures = "../fabricconfig/testdata/fabric"

func fabricIdentity(t *testing.T, dir, mspID string) msp.SigningIdentity {
	t.Helper()
	id, err := msp.LoadSigningIdentity(filepath.Join(fabricFixtures, "crypto", dir, "msp"), mspID)
	require.NoError(t, err)
	return id
}

func fabricFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fabricFixtures, name))
	require.NoError(t, err)
	return b
}

// TestFabricChannel runs 3 nodes, signing as Fabric's orderer0..2, on the
// genesis block Fabric's orderer made for fabchannel: they order envelopes
// of the fixture users, apply the CONFIG_UPDATE u1 (BatchSize 10 -> 20) as
// Fabric did, refuse u3 (a BAD_REQUEST in Fabric too), and write identical
// blocks whose SIGNATURES metadata is Fabric's OrdererBlockMetadata and
// verifies against /Channel/Orderer/BlockValidation.
func TestFabricChannel(t *testing.T) {
	const channel = "fabchannel"
	genesis, err := protoutil.UnmarshalBlock(fabricFile(t, "fabchannel-genesis.block"))
	require.NoError(t, err)
	require.True(t, fabricconfig.IsFabricConfig(genesis))
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	var chains []*consensus.Chain
	var ledgers []*ledger.Memory
	for i := range 3 {
		cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()),
			consensus.WithLogger(quietLogger), consensus.WithClientID(fmt.Sprint("orderer", i)),
			consensus.WithSigner(fabricIdentity(t, fmt.Sprintf("ordererOrganizations/example.com/orderers/orderer%d.example.com", i), "OrdererMSP")))
		require.NoError(t, err)
		t.Cleanup(cons.Close)
		l := ledger.NewMemory()
		ch, err := cons.NewChain(channel, l, genesis)
		require.NoError(t, err)
		ch.Start()
		chains, ledgers = append(chains, ch), append(ledgers, l)
	}
	for _, ch := range chains {
		require.NoError(t, ch.WaitReady(ctx))
		require.IsType(t, consensus.FabricConfig{}, ch.Config(), "the genesis block says Fabric's config tree")
		require.Equal(t, uint32(10), ch.Config().BatchLimits().MaxMessageCount)
	}
	users := []msp.SigningIdentity{
		fabricIdentity(t, "peerOrganizations/org1.example.com/users/User1@org1.example.com", "Org1MSP"),
		fabricIdentity(t, "peerOrganizations/org2.example.com/users/User1@org2.example.com", "Org2MSP"),
	}
	order := func(tag string, n int) {
		for i := range n {
			env, err := protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, channel, []byte(fmt.Sprint(tag, i)), users[i%2])
			require.NoError(t, err)
			require.NoError(t, chains[i%3].Submit(ctx, env))
		}
	}
	order("before", 25)

	// u1, signed by the orderer admin as Fabric received it.
	u1 := new(cb.Envelope)
	require.NoError(t, proto.Unmarshal(fabricFile(t, "updates/u1-batchsize-20.pb"), u1))
	cfgEnv, seq, err := chains[1].ProcessConfigUpdate(u1)
	require.NoError(t, err)
	require.NoError(t, chains[1].Configure(ctx, cfgEnv, seq))
	u3 := new(cb.Envelope)
	require.NoError(t, proto.Unmarshal(fabricFile(t, "updates/u3-batchtimeout-org1-only.pb"), u3))
	_, _, err = chains[0].ProcessConfigUpdate(u3)
	require.ErrorIs(t, err, fabricconfig.ErrBadUpdate)
	require.ErrorContains(t, err, "implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Admins' sub-policies to be satisfied")
	order("after", 45)

	// 25 + 45 envelopes, 10 then 20 a block, and the config block.
	require.Eventually(t, func() bool {
		for _, l := range ledgers {
			if l.Height() != 1+3+1+3 {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "heights %d %d %d", ledgers[0].Height(), ledgers[1].Height(), ledgers[2].Height())
	for i := range chains {
		require.Equal(t, uint64(2), chains[i].Config().Sequence(), "node %d", i)
		require.Equal(t, uint32(20), chains[i].Config().BatchLimits().MaxMessageCount, "node %d", i)
		require.NoError(t, consensustest.CompareLedgers(ledgers[0], ledgers[i]), "node %d", i)
	}
	// Our block 4 holds the configuration Fabric's orderer wrote in its
	// block 4 for the same update.
	configOf := func(b *cb.Block) *cb.Config {
		env, err := protoutil.UnmarshalEnvelope(b.Data.Data[0])
		require.NoError(t, err)
		h, err := protoutil.EnvelopeHeaders(env)
		require.NoError(t, err)
		ce := new(cb.ConfigEnvelope)
		require.NoError(t, proto.Unmarshal(h.Payload.Data, ce))
		return ce.Config
	}
	ours, err := ledgers[0].Block(4)
	require.NoError(t, err)
	theirs, err := protoutil.UnmarshalBlock(fabricFile(t, "blocks/004.block"))
	require.NoError(t, err)
	require.True(t, proto.Equal(configOf(theirs), configOf(ours)), "the same configuration as Fabric's block 4")

	// Every block past genesis carries Fabric's metadata, signed by the
	// node that wrote it, valid under BlockValidation.
	cfg := chains[0].Config().(consensus.FabricConfig)
	for n := uint64(1); n < ledgers[0].Height(); n++ {
		for i, l := range ledgers {
			b, err := l.Block(n)
			require.NoError(t, err)
			require.NoError(t, cfg.VerifyBlockSignatures(b), "node %d block %d", i, n)
			md, err := protoutil.Metadata(b, cb.BlockMetadataIndex_SIGNATURES)
			require.NoError(t, err)
			obm := new(cb.OrdererBlockMetadata)
			require.NoError(t, proto.Unmarshal(md.Value, obm))
			inner := new(cb.Metadata)
			require.NoError(t, proto.Unmarshal(obm.ConsenterMetadata, inner))
			km := new(ab.KafkaMetadata)
			require.NoError(t, proto.Unmarshal(inner.Value, km))
			require.Positive(t, km.LastOffsetPersisted, "node %d block %d", i, n)
			wantLast := uint64(0)
			if n >= 4 {
				wantLast = 4
			}
			require.Equal(t, wantLast, obm.GetLastConfig().GetIndex(), "node %d block %d", i, n)
		}
	}
}
