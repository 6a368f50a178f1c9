package coretest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	pb "github.com/kafkaconsensus/kafkaconsensus/protos/peer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// fabricFixtures holds blocks, updates and identities made by Hyperledger
// Fabric's own tools and orderer (see its README).
const fabricFixtures = "../../fabricconfig/testdata/fabric"

// TestLogFabricConfigOvertaken orders the CONFIG envelopes of Fabric's
// fixture updates u1 and u2, both made against the genesis configuration,
// one after the other, on 3 nodes that read their configuration back from
// their blocks on restart. The second is overtaken: every core computes it
// again from its update; the nodes re-submit it, and all apply it.
// Without a signing identity each node stops there, as a chain halts.
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
			for i := range 3 {
				require.False(t, l.Running(i), "node %d runs on without signing the configuration computed again", i)
			}
			require.Equal(t, seq+1, l.Config().Sequence(), "u2 applied with no node to re-submit it")
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

// TestLogFabricRandomised runs Fabric's fabchannel on 4 nodes with random
// traffic: envelopes of Org1's user, some validated before the last config
// update, and updates of the batch size or timeout (signed by the orderer
// admin) or of Org1's anchor peer (signed by Org1's admin), made against
// the configuration in force or an older one, so that many are overtaken
// and computed again (those that rewrite a value changed meanwhile are
// then refused, as in Fabric). Deliveries come in a
// random order, with duplicates; nodes restart, stop and start again, and
// strangers write records. The nodes agree, a restarted core cuts the
// same blocks, every envelope is ordered once, and no update is applied
// twice.
func TestLogFabricRandomised(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fabricFixtures, "fabchannel-genesis.block"))
	require.NoError(t, err)
	genesis, err := protoutil.UnmarshalBlock(raw)
	require.NoError(t, err)
	load := func(dir, mspID string) msp.SigningIdentity {
		id, err := msp.LoadSigningIdentity(filepath.Join(fabricFixtures, "crypto", dir, "msp"), mspID)
		require.NoError(t, err)
		return id
	}
	orderer0 := load("ordererOrganizations/example.com/orderers/orderer0.example.com", "OrdererMSP")
	admin := load("ordererOrganizations/example.com/users/Admin@example.com", "OrdererMSP")
	org1Admin := load("peerOrganizations/org1.example.com/users/Admin@org1.example.com", "Org1MSP")
	user := load("peerOrganizations/org1.example.com/users/User1@org1.example.com", "Org1MSP")

	seeds := uint64(12)
	if testing.Short() || raceEnabled {
		seeds = 2
	}
	recomputed := 0
	for seed := range seeds {
		r := newRand(seed)
		l := newLog(t, 4, nil, coretest.WithChannel("fabchannel"), coretest.WithGenesis(genesis),
			coretest.WithConfigParser(consensus.FabricConfigParser()), coretest.WithSigner(orderer0),
			coretest.WithRandomInterleaving(seed), coretest.WithManualDelivery(), coretest.WithDuplicateProduces(0.1),
			coretest.WithReadyHook(func(node int, _ *consensus.Record, r *consensus.Ready) {
				if node == 0 {
					recomputed += len(r.ConfigResubmissions)
				}
			}))
		// Config envelopes made against earlier configurations, not
		// submitted yet, with the sequence they were made at.
		type made struct {
			env *cb.Envelope
			seq uint64
		}
		var backlog []made
		nUpdates := 0
		update := func() made {
			cfg := l.Config().(consensus.FabricConfig)
			next := proto.Clone(cfg.Config()).(*cb.Config)
			orderer := next.ChannelGroup.Groups["Orderer"]
			nUpdates++ // in each value, so that every update changes something
			signer := admin
			switch r.IntN(3) {
			case 0:
				setValue(orderer, fabricconfig.BatchSizeKey, &ab.BatchSize{MaxMessageCount: uint32(1 + r.IntN(5)), AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 1<<19 + uint32(nUpdates)})
			case 1:
				setValue(orderer, fabricconfig.BatchTimeoutKey, &ab.BatchTimeout{Timeout: fmt.Sprintf("%dus", 200_000+r.IntN(2_000_000)+nUpdates)})
			default:
				// Org1's anchor peer: the first one adds a value to the
				// Org1MSP group (a new version of the group, which
				// overtaken updates of it read), later ones change it.
				org1 := next.ChannelGroup.Groups["Application"].Groups["Org1MSP"]
				anchors := &pb.AnchorPeers{AnchorPeers: []*pb.AnchorPeer{{Host: "127.0.0.1", Port: int32(30000 + nUpdates)}}}
				if org1.Values[fabricconfig.AnchorPeersKey] == nil {
					org1.Values[fabricconfig.AnchorPeersKey] = &cb.ConfigValue{ModPolicy: fabricconfig.AdminsPolicy}
				}
				setValue(org1, fabricconfig.AnchorPeersKey, anchors)
				signer = org1Admin
			}
			cu, err := fabricconfig.ComputeUpdate("fabchannel", cfg.Config(), next)
			require.NoError(t, err)
			u, err := fabricconfig.NewConfigUpdateEnvelope(cu, signer)
			require.NoError(t, err)
			env, err := cfg.ProcessConfigUpdate(u, orderer0)
			require.NoError(t, err)
			return made{env, cfg.Sequence()}
		}
		tx, first := 0, l.Config().Sequence()
		for range 150 {
			seq := l.Config().Sequence()
			switch x := r.IntN(100); {
			case x < 40:
				tx++
				env, err := protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, "fabchannel", fmt.Appendf(nil, "t%d", tx), user)
				require.NoError(t, err)
				at := seq
				if seq > first && r.IntN(4) == 0 {
					at = seq - 1 // validated before the last update
				}
				l.SubmitAt(at, env)
			case x < 46:
				backlog = append(backlog, update())
			case x < 52 && len(backlog) > 0:
				i := r.IntN(len(backlog))
				l.SubmitConfigAt(backlog[i].seq, backlog[i].env)
				backlog = append(backlog[:i], backlog[i+1:]...)
			case x < 75:
				l.Deliver()
			case x < 88:
				l.Advance(time.Duration(r.IntN(1500)) * time.Millisecond)
			case x < 91:
				require.NoError(t, l.Restart(r.IntN(4)), "seed %d", seed)
			case x < 93:
				if i := r.IntN(4); running(l) > 1 {
					l.Stop(i)
				}
			case x < 95:
				require.NoError(t, l.Start(r.IntN(4)), "seed %d", seed)
			case x < 97:
				s := coretest.StrangerRecords()
				l.Append(s[r.IntN(len(s))])
			default:
				l.Flush()
			}
		}
		for i := range 4 {
			require.NoError(t, l.Start(i), "seed %d", seed)
		}
		require.NoError(t, l.Settle(), "seed %d", seed)
		// A config envelope computed again is not the one submitted.
		isConfig := func(env *cb.Envelope) bool {
			h, err := protoutil.EnvelopeHeaders(env)
			return err == nil && cb.HeaderType(h.ChannelHeader.GetType()) == cb.HeaderType_CONFIG
		}
		require.NoError(t, l.Check(isConfig), "seed %d", seed)
		updates := map[string]bool{}
		configs := 0
		for _, b := range l.Blocks(0)[1:] {
			env, err := protoutil.UnmarshalEnvelope(b.Data.Data[0])
			require.NoError(t, err)
			if !isConfig(env) {
				continue
			}
			configs++
			h, err := protoutil.EnvelopeHeaders(env)
			require.NoError(t, err)
			ce := new(cb.ConfigEnvelope)
			require.NoError(t, proto.Unmarshal(h.Payload.Data, ce))
			key := string(protoutil.MarshalOrPanic(ce.LastUpdate))
			require.False(t, updates[key], "seed %d: an update applied twice", seed)
			updates[key] = true
		}
		require.Equal(t, uint64(configs), l.Config().Sequence()-1, "seed %d: one sequence per config block", seed)
		require.Positive(t, configs, "seed %d", seed)
	}
	require.Positive(t, recomputed, "no update was overtaken and computed again")
}

func setValue(g *cb.ConfigGroup, key string, m proto.Message) {
	g.Values[key].Value = protoutil.MarshalOrPanic(m)
}
