package consensus_test

import (
	"context"
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

// startFabricNodes starts n nodes on an embedded Kafka, from genesis, a
// block of Fabric's fabchannel, node i signing as Fabric's orderer<i>. It
// returns once every node is ready.
func startFabricNodes(t *testing.T, ctx context.Context, genesis *cb.Block, n int) ([]*consensus.Chain, []*ledger.Memory) {
	t.Helper()
	k := itKafka(t)
	var chains []*consensus.Chain
	var ledgers []*ledger.Memory
	for i := range n {
		cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()),
			consensus.WithLogger(quietLogger), consensus.WithClientID(fmt.Sprint("orderer", i)),
			consensus.WithSigner(fabricIdentity(t, fmt.Sprintf("ordererOrganizations/example.com/orderers/orderer%d.example.com", i), "OrdererMSP")))
		require.NoError(t, err)
		t.Cleanup(cons.Close)
		l := ledger.NewMemory()
		ch, err := cons.NewChain("fabchannel", l, genesis)
		require.NoError(t, err)
		ch.Start()
		chains, ledgers = append(chains, ch), append(ledgers, l)
	}
	for _, ch := range chains {
		require.NoError(t, ch.WaitReady(ctx))
	}
	return chains, ledgers
}

// fabricConfigOf returns the configuration that config block b holds.
func fabricConfigOf(t *testing.T, b *cb.Block) *cb.Config {
	t.Helper()
	env, err := protoutil.UnmarshalEnvelope(b.Data.Data[0])
	require.NoError(t, err)
	h, err := protoutil.EnvelopeHeaders(env)
	require.NoError(t, err)
	ce := new(cb.ConfigEnvelope)
	require.NoError(t, proto.Unmarshal(h.Payload.Data, ce))
	return ce.Config
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
	ctx := itCtx(t, 60*time.Second)
	chains, ledgers := startFabricNodes(t, ctx, genesis, 3)
	for _, ch := range chains {
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
	ours, err := ledgers[0].Block(4)
	require.NoError(t, err)
	theirs, err := protoutil.UnmarshalBlock(fabricFile(t, "blocks/004.block"))
	require.NoError(t, err)
	require.True(t, proto.Equal(fabricConfigOf(t, theirs), fabricConfigOf(t, ours)), "the same configuration as Fabric's block 4")

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

// TestCoreRecomputesStaleFabricConfig orders two CONFIG envelopes made
// against the same configuration, as two nodes make them for updates
// submitted at once (Fabric's fixture updates u1 and u2). The second is
// stale once the first is applied: it cannot be validated again as it is,
// since it holds the whole configuration computed for the older sequence,
// so the core computes it again from its update, and the node signs and
// re-submits it, as Fabric's orderer does. Two cores decide the same and
// cut the same blocks; the configuration reached is the one Fabric's
// orderer wrote in its block 8 for u1 then u2.
func TestCoreRecomputesStaleFabricConfig(t *testing.T) {
	const channel = "fabchannel"
	genesis, err := protoutil.UnmarshalBlock(fabricFile(t, "fabchannel-genesis.block"))
	require.NoError(t, err)
	cfg, err := consensus.FabricConfigParser()(genesis)
	require.NoError(t, err)
	orderer0 := fabricIdentity(t, "ordererOrganizations/example.com/orderers/orderer0.example.com", "OrdererMSP")
	configEnv := func(name string) []byte {
		u := new(cb.Envelope)
		require.NoError(t, proto.Unmarshal(fabricFile(t, "updates/"+name), u))
		env, err := cfg.(consensus.ConfigUpdater).ProcessConfigUpdate(u, orderer0)
		require.NoError(t, err)
		return protoutil.MarshalOrPanic(env)
	}
	record := func(offset int64, m *ab.KafkaMessage) consensus.Record {
		return consensus.Record{Offset: offset, Value: protoutil.MarshalOrPanic(m)}
	}
	regular := func(payload []byte, seq uint64) *ab.KafkaMessage {
		return &ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{Payload: payload, ConfigSeq: seq, Class: ab.KafkaMessageRegular_CONFIG}}}
	}
	seq := cfg.Sequence()
	u1 := record(0, regular(configEnv("u1-batchsize-20.pb"), seq))
	u2 := record(1, regular(configEnv("u2-org1-anchorpeer.pb"), seq))

	var cores [2]*consensus.Core
	var blocks [2][][]byte
	step := func(i int, rec consensus.Record) *consensus.Ready {
		r := cores[i].Step(rec)
		for _, b := range r.Blocks {
			blocks[i] = append(blocks[i], protoutil.MarshalOrPanic(b.Block))
		}
		return r
	}
	var resubmission *ab.KafkaMessage
	for i := range cores {
		cores[i], err = consensus.NewCore(channel, consensus.CoreState{LastBlock: genesis, Config: cfg})
		require.NoError(t, err)
		r := step(i, u1)
		require.Len(t, r.Blocks, 1)
		require.Equal(t, seq+1, cores[i].Config().Sequence())

		r = step(i, u2)
		require.Empty(t, r.Blocks)
		require.Empty(t, r.Produce)
		require.True(t, r.Resubmitting, "core %d: no new envelope may overtake the re-submitted config", i)
		require.Len(t, r.Notes, 1)
		require.Equal(t, consensus.NoteResubmitted, r.Notes[0].Kind)
		require.Len(t, r.ConfigResubmissions, 1)
		rs := r.ConfigResubmissions[0]
		require.Equal(t, seq+1, rs.ConfigSeq)
		require.Equal(t, int64(1), rs.OriginalOffset)
		_, err := rs.Message(nil)
		require.ErrorContains(t, err, "no signing identity")
		m, err := rs.Message(orderer0)
		require.NoError(t, err)
		require.Equal(t, ab.KafkaMessageRegular_CONFIG, m.GetRegular().GetClass())
		require.Equal(t, int64(1), m.GetRegular().GetOriginalOffset())
		require.Equal(t, seq+1, m.GetRegular().GetConfigSeq())
		require.NotEqual(t, u2.Value, m.GetRegular().GetPayload(), "the envelope is computed again, not produced as it was")
		if resubmission == nil {
			resubmission = m
		}
	}
	// Both consume the first re-submission and apply it.
	for i := range cores {
		r := step(i, record(2, resubmission))
		require.Len(t, r.Blocks, 1, "core %d", i)
		require.True(t, r.Blocks[0].IsConfig)
		require.False(t, r.Resubmitting)
		require.Equal(t, seq+2, cores[i].Config().Sequence())
	}
	require.Equal(t, blocks[0], blocks[1], "the cores cut different blocks")
	require.Equal(t, uint32(20), cores[0].Config().BatchLimits().MaxMessageCount)
	theirs, err := protoutil.UnmarshalBlock(fabricFile(t, "blocks/008.block"))
	require.NoError(t, err)
	want, err := consensus.FabricConfigParser()(theirs)
	require.NoError(t, err)
	require.True(t, proto.Equal(want.(consensus.FabricConfig).Config(), cores[0].Config().(consensus.FabricConfig).Config()),
		"the configuration of Fabric's block 8 (u1, then u2)")
}

// TestFabricStaleConfigUpdate orders a CONFIG envelope made for u2 before
// u1 was applied, once u1 is: every node computes it again from its update
// against the configuration u1 made and re-submits it signed by itself,
// and all apply it, reaching the configuration of Fabric's block 8.
// Envelopes sent meanwhile wait for the re-submitted config, then are
// ordered. A node without a signing identity cannot run the channel.
func TestFabricStaleConfigUpdate(t *testing.T) {
	genesis, err := protoutil.UnmarshalBlock(fabricFile(t, "fabchannel-genesis.block"))
	require.NoError(t, err)
	ctx := itCtx(t, 60*time.Second)
	chains, ledgers := startFabricNodes(t, ctx, genesis, 3)
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers("127.0.0.1:1"), consensus.WithLogger(quietLogger))
	require.NoError(t, err)
	defer cons.Close()
	_, err = cons.NewChain("fabchannel", ledger.NewMemory(), genesis)
	require.ErrorIs(t, err, consensus.ErrNoSigner)
	update := func(name string) *cb.Envelope {
		u := new(cb.Envelope)
		require.NoError(t, proto.Unmarshal(fabricFile(t, "updates/"+name), u))
		return u
	}
	env1, seq1, err := chains[0].ProcessConfigUpdate(update("u1-batchsize-20.pb"))
	require.NoError(t, err)
	env2, seq2, err := chains[1].ProcessConfigUpdate(update("u2-org1-anchorpeer.pb"))
	require.NoError(t, err)
	require.Equal(t, seq1, seq2)
	require.NoError(t, chains[0].Configure(ctx, env1, seq1))
	require.Eventually(t, func() bool { return chains[1].Config().Sequence() == seq1+1 }, 20*time.Second, 5*time.Millisecond)
	require.NoError(t, chains[1].Configure(ctx, env2, seq2), "a config validated at an older sequence is admitted and re-processed in the log")
	user := fabricIdentity(t, "peerOrganizations/org1.example.com/users/User1@org1.example.com", "Org1MSP")
	for i := range 5 {
		env, err := protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, "fabchannel", []byte(fmt.Sprint("after ", i)), user)
		require.NoError(t, err)
		require.NoError(t, chains[i%3].Submit(ctx, env))
	}
	// Genesis, u1, u2 computed again, and the five envelopes (cut by the
	// batch timeout, or around the config block).
	require.Eventually(t, func() bool {
		for _, ch := range chains {
			if ch.Config().Sequence() != seq1+2 {
				return false
			}
		}
		for _, l := range ledgers {
			if n, _ := normalCountOf(t, l); n != 5 {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "every node applies u2 and orders the envelopes")
	theirs, err := protoutil.UnmarshalBlock(fabricFile(t, "blocks/008.block"))
	require.NoError(t, err)
	for i, ch := range chains {
		require.NoError(t, consensustest.CompareLedgers(ledgers[0], ledgers[i]), "node %d", i)
		require.True(t, proto.Equal(fabricConfigOf(t, theirs), ch.Config().(consensus.FabricConfig).Config()), "node %d: the configuration of Fabric's block 8", i)
	}
	_, lastConfig := normalCountOf(t, ledgers[0])
	b, err := ledgers[0].Block(lastConfig)
	require.NoError(t, err)
	require.True(t, proto.Equal(fabricConfigOf(t, theirs), fabricConfigOf(t, b)), "the last config block holds the configuration of Fabric's block 8")
}

// normalCountOf returns how many normal envelopes l holds past genesis,
// and the number of its last config block.
func normalCountOf(t *testing.T, l *ledger.Memory) (int, uint64) {
	t.Helper()
	n, last := 0, uint64(0)
	for i := uint64(1); i < l.Height(); i++ {
		b, err := l.Block(i)
		require.NoError(t, err)
		env, err := protoutil.UnmarshalEnvelope(b.Data.Data[0])
		require.NoError(t, err)
		h, err := protoutil.EnvelopeHeaders(env)
		require.NoError(t, err)
		if cb.HeaderType(h.ChannelHeader.GetType()) == cb.HeaderType_CONFIG {
			last = i
			continue
		}
		n += len(b.Data.Data)
	}
	return n, last
}
