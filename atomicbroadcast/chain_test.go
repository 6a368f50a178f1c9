package atomicbroadcast

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// These tests serve the chains of a consensustest cluster of one node, whose
// configuration (consensus.BundleConfig) validates signatures and policies.

const testChannel = consensustest.DefaultChannel

// newCluster returns a one-node cluster on an embedded Kafka, not started,
// with blocks of at most 10 envelopes and 64 KiB.
func newCluster(t *testing.T) (*consensustest.Cluster, *consensustest.Kafka) {
	t.Helper()
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	t.Cleanup(k.Close)
	c, err := consensustest.NewCluster(k.Addrs(), consensustest.WithNodes(1), consensustest.WithBatchSize(10, 65536),
		consensustest.WithConsenterOpts(consensus.WithErrorTimeout(100*time.Millisecond)))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, k
}

// envelope returns an envelope of c's client on channel with data.
func envelope(t *testing.T, c *consensustest.Cluster, channel string, data []byte) *cb.Envelope {
	t.Helper()
	env, err := c.Envelope(channel, data)
	require.NoError(t, err)
	return env
}

// startCluster starts c and waits until its chains are ready.
func startCluster(t *testing.T, c *consensustest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))
}

// serveNode serves the channel of c's node 0 on loopback and returns a
// client.
func serveNode(t *testing.T, c *consensustest.Cluster) ab.AtomicBroadcastClient {
	t.Helper()
	n := c.Node(0)
	return serveChannels(t, map[string]Channel{testChannel: {Chain: n.Chain(testChannel), Ledger: n.Ledger(testChannel)}})
}

// signed returns an envelope of type typ signed by signer.
func signed(t *testing.T, signer protoutil.Signer, channel string, typ cb.HeaderType, data []byte) *cb.Envelope {
	t.Helper()
	env, err := protoutil.NewSignedEnvelope(typ, channel, data, signer)
	require.NoError(t, err)
	return env
}

// seekAs returns a seek request signed by signer.
func seekAs(t *testing.T, signer protoutil.Signer, channel string, info *ab.SeekInfo) *cb.Envelope {
	t.Helper()
	env, err := NewSeekEnvelope(signer, channel, info)
	require.NoError(t, err)
	return env
}

// configUpdate returns a CONFIG envelope of the channel's configuration at
// sequence seq with AbsoluteMaxBytes set to 32 KiB, signed by admins and
// submitted by the first.
func configUpdate(t *testing.T, c *consensustest.Cluster, seq uint64, admins ...msp.SigningIdentity) *cb.Envelope {
	t.Helper()
	cfg := c.Node(0).Chain(testChannel).Config().(consensus.BundleConfig).Bundle.Config()
	cfg.Sequence = seq
	cfg.BatchSize.AbsoluteMaxBytes = 32768
	cfg.BatchSize.PreferredMaxBytes = 16384
	env, err := channelconfig.NewConfigEnvelope(cfg, admins[0], admins...)
	require.NoError(t, err)
	return env
}

// TestBroadcastStatuses checks the statuses of envelopes that a channel's
// configuration refuses, and that a config update takes effect.
func TestBroadcastStatuses(t *testing.T) {
	c, _ := newCluster(t)
	startCluster(t, c)
	cl := serveNode(t, c)
	user := c.Client()
	outsider := testutil.NewCA(t, "Org9MSP").Issue("user1").SigningIdentity
	// An identity that claims the channel's organisation but was issued by
	// another CA.
	impostor := testutil.NewCA(t, consensustest.DefaultOrg).Issue("user1").SigningIdentity
	tx := func(signer protoutil.Signer, channel string, data []byte) *cb.Envelope {
		return signed(t, signer, channel, cb.HeaderType_ENDORSER_TRANSACTION, data)
	}
	unsigned := tx(user, testChannel, []byte("unsigned"))
	unsigned.Signature = nil
	badSig := tx(user, testChannel, []byte("bad signature"))
	badSig.Signature = tx(user, testChannel, []byte("other")).Signature

	for _, tc := range []struct {
		name string
		env  *cb.Envelope
		want cb.Status
	}{
		{"valid", tx(user, testChannel, []byte("ok")), cb.Status_SUCCESS},
		{"unsigned", unsigned, cb.Status_FORBIDDEN},
		{"bad signature", badSig, cb.Status_FORBIDDEN},
		{"oversized", tx(user, testChannel, make([]byte, 70000)), cb.Status_REQUEST_ENTITY_TOO_LARGE},
		{"unknown channel", tx(user, "otherchannel", []byte("x")), cb.Status_NOT_FOUND},
		{"unknown MSP", tx(outsider, testChannel, []byte("x")), cb.Status_FORBIDDEN},
		{"untrusted certificate", tx(impostor, testChannel, []byte("x")), cb.Status_FORBIDDEN},
		{"config signed by a non-admin", configUpdate(t, c, 1, user), cb.Status_FORBIDDEN},
		{"config with a bad sequence", configUpdate(t, c, 5, c.Admin()), cb.Status_BAD_REQUEST},
		// Signed, but of a type the channel does not order.
		{"CONFIG_UPDATE on a channel of this format", signed(t, c.Admin(), testChannel, cb.HeaderType_CONFIG_UPDATE, []byte("x")), cb.Status_BAD_REQUEST},
		{"ORDERER_TRANSACTION", signed(t, c.Admin(), testChannel, cb.HeaderType_ORDERER_TRANSACTION, []byte("x")), cb.Status_BAD_REQUEST},
		{"DELIVER_SEEK_INFO", signed(t, user, testChannel, cb.HeaderType_DELIVER_SEEK_INFO, protoutil.MarshalOrPanic(&ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()})), cb.Status_BAD_REQUEST},
		{"type 9999", signed(t, user, testChannel, 9999, []byte("x")), cb.Status_BAD_REQUEST},
		{"type -1", signed(t, user, testChannel, -1, []byte("x")), cb.Status_BAD_REQUEST},
	} {
		r := broadcastOne(t, cl, tc.env)
		require.Equal(t, tc.want, r.GetStatus(), "%s: %s", tc.name, r.GetInfo())
	}

	// One stream mixing valid and refused envelopes is answered in order.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stream, err := cl.Broadcast(ctx)
	require.NoError(t, err)
	const n = 60
	go func() {
		for i := range n {
			var env *cb.Envelope
			switch i % 3 {
			case 0:
				env = tx(user, testChannel, []byte("mixed"))
			case 1:
				env = tx(user, "nochannel", nil)
			default:
				env = tx(outsider, testChannel, nil)
			}
			if stream.Send(env) != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	for i := range n {
		want := []cb.Status{cb.Status_SUCCESS, cb.Status_NOT_FOUND, cb.Status_FORBIDDEN}[i%3]
		r, err := stream.Recv()
		require.NoError(t, err, "answer %d", i)
		require.Equal(t, want, r.GetStatus(), "answer %d: %s", i, r.GetInfo())
	}

	// A config update signed by the admin is ordered and takes effect: the
	// new limit (absolute max 32 KiB) applies.
	r := broadcastOne(t, cl, configUpdate(t, c, 1, c.Admin()))
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
	require.Eventually(t, func() bool {
		return c.Node(0).Chain(testChannel).Config().Sequence() == 1
	}, 10*time.Second, 10*time.Millisecond)
	r = broadcastOne(t, cl, tx(user, testChannel, make([]byte, 40000)))
	require.Equal(t, cb.Status_REQUEST_ENTITY_TOO_LARGE, r.GetStatus(), r.GetInfo())
}

// TestDeliverStatuses checks Deliver's authorisation with the channel's
// Readers policy.
func TestDeliverStatuses(t *testing.T) {
	c, _ := newCluster(t)
	startCluster(t, c)
	cl := serveNode(t, c)
	user := c.Client()
	outsider := testutil.NewCA(t, "Org9MSP").Issue("user1").SigningIdentity
	genesis := &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}
	unsigned := seekAs(t, user, testChannel, genesis)
	unsigned.Signature = nil
	for _, tc := range []struct {
		name   string
		env    *cb.Envelope
		want   cb.Status
		blocks int
	}{
		{"reader", seekAs(t, user, testChannel, genesis), cb.Status_SUCCESS, 1},
		{"unsigned", unsigned, cb.Status_FORBIDDEN, 0},
		{"not a reader", seekAs(t, outsider, testChannel, genesis), cb.Status_FORBIDDEN, 0},
		{"not a seek", signed(t, user, testChannel, cb.HeaderType_ENDORSER_TRANSACTION, protoutil.MarshalOrPanic(genesis)), cb.Status_BAD_REQUEST, 0},
		{"unknown channel", seekAs(t, user, "otherchannel", genesis), cb.Status_NOT_FOUND, 0},
	} {
		blocks, st := deliverBlocks(t, cl, tc.env)
		require.Equal(t, tc.want, st, tc.name)
		require.Len(t, blocks, tc.blocks, tc.name)
	}

	// A reader follows the chain as Broadcast extends it.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stream, err := cl.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(seekAs(t, user, testChannel, &ab.SeekInfo{Start: seekSpecified(1), Stop: seekSpecified(1)})))
	require.Equal(t, cb.Status_SUCCESS, broadcastOne(t, cl, envelope(t, c, testChannel, []byte("block 1"))).GetStatus())
	r, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, uint64(1), r.GetBlock().GetHeader().GetNumber(), "%v", r)
	data, _, err := consensustest.EnvelopeData(r.GetBlock().GetData().GetData()[0])
	require.NoError(t, err)
	require.Equal(t, "block 1", string(data))
	r, err = stream.Recv()
	require.NoError(t, err)
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus())
}

// TestBroadcastUnavailable checks that a chain that cannot take envelopes
// answers SERVICE_UNAVAILABLE through its own admission: not started yet,
// then unable to consume while Kafka is unreachable.
func TestBroadcastUnavailable(t *testing.T) {
	c, k := newCluster(t)
	cl := serveNode(t, c)
	r := broadcastOne(t, cl, envelope(t, c, testChannel, []byte("too early")))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), r.GetInfo())
	require.Contains(t, r.GetInfo(), "not ready")

	startCluster(t, c)
	r = broadcastOne(t, cl, envelope(t, c, testChannel, []byte("ready")))
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())

	k.Pause()
	chain := c.Node(0).Chain(testChannel)
	select {
	case <-chain.Errored():
	case <-time.After(15 * time.Second):
		t.Fatal("the chain did not report itself errored")
	}
	// Whoever Errored wakes sees the errored state (the signal follows the
	// state's publication).
	require.ErrorIs(t, chain.Available(), consensus.ErrNotReady)
	r = broadcastOne(t, cl, envelope(t, c, testChannel, []byte("errored")))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), r.GetInfo())
	require.Contains(t, r.GetInfo(), "cannot consume from kafka")
	all := &ab.SeekInfo{Start: seekOldest(), Stop: seekNewest()}
	_, st := deliverBlocks(t, cl, seekAs(t, c.Client(), testChannel, all))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, st)
	all.ErrorResponse = ab.SeekInfo_BEST_EFFORT
	blocks, st := deliverBlocks(t, cl, seekAs(t, c.Client(), testChannel, all))
	require.Equal(t, cb.Status_SUCCESS, st)
	require.NotEmpty(t, blocks)

	require.NoError(t, k.Resume())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, chain.WaitReady(ctx))
	r = broadcastOne(t, cl, envelope(t, c, testChannel, []byte("back")))
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
}

// TestBroadcastConfigRefusals checks that the configuration updates the
// chain refuses, because they would leave the channel unusable or could
// not be ordered, are answered BAD_REQUEST with the reason, and that the
// channel keeps its configuration.
func TestBroadcastConfigRefusals(t *testing.T) {
	c, _ := newCluster(t)
	startCluster(t, c)
	cl := serveNode(t, c)
	nobody, err := msp.FromString("OR('GoneMSP.member')")
	require.NoError(t, err)
	for _, tc := range []struct {
		name, info string
		update     func(*ccpb.ChannelConfig)
	}{
		{"no organisation", "no application organisation", func(cfg *ccpb.ChannelConfig) { cfg.ApplicationOrgs, cfg.OrdererOrgs = nil, nil }},
		{"a Writers policy nobody can satisfy", "no identity could satisfy policy Writers", func(cfg *ccpb.ChannelConfig) {
			cfg.Policies[channelconfig.WritersPolicy] = channelconfig.SignaturePolicy(nobody)
		}},
		{"AbsoluteMaxBytes above the topic's max.message.bytes", "exceed the topic's max.message.bytes", func(cfg *ccpb.ChannelConfig) {
			cfg.BatchSize.AbsoluteMaxBytes = 2 * consensus.DefaultMaxMessageBytes
		}},
		{"an unbounded batch timeout", "exceeds 1h0m0s", func(cfg *ccpb.ChannelConfig) { cfg.BatchTimeout = durationpb.New(10 * 365 * 24 * time.Hour) }},
	} {
		env, err := c.ConfigUpdate(testChannel, tc.update)
		require.NoError(t, err, tc.name)
		r := broadcastOne(t, cl, env)
		require.Equal(t, cb.Status_BAD_REQUEST, r.GetStatus(), "%s: %s", tc.name, r.GetInfo())
		require.Contains(t, r.GetInfo(), tc.info, tc.name)
	}
	require.Equal(t, uint64(0), c.Node(0).Chain(testChannel).Config().Sequence())
}

// fabricFixtures holds blocks, updates and identities made by Hyperledger
// Fabric's own tools and orderer (see its README).
const fabricFixtures = "../fabricconfig/testdata/fabric"

// TestBroadcastFabricConfigUpdate serves the channel Fabric's orderer
// created (its genesis block, Fabric's config tree) on one node signing as
// Fabric's orderer0, and broadcasts Fabric's CONFIG_UPDATE envelopes: u1
// is applied, u3 refused with Fabric's reason, and a CONFIG envelope is
// refused as Fabric refuses it.
func TestBroadcastFabricConfigUpdate(t *testing.T) {
	const channel = "fabchannel"
	file := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(fabricFixtures, name))
		require.NoError(t, err)
		return b
	}
	genesis, err := protoutil.UnmarshalBlock(file("fabchannel-genesis.block"))
	require.NoError(t, err)
	signer, err := msp.LoadSigningIdentity(filepath.Join(fabricFixtures, "crypto/ordererOrganizations/example.com/orderers/orderer0.example.com/msp"), "OrdererMSP")
	require.NoError(t, err)
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	t.Cleanup(k.Close)
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()),
		consensus.WithLogger(slog.New(slog.DiscardHandler)), consensus.WithSigner(signer))
	require.NoError(t, err)
	t.Cleanup(cons.Close)
	l := ledger.NewMemory()
	chain, err := cons.NewChain(channel, l, genesis)
	require.NoError(t, err)
	chain.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, chain.WaitReady(ctx))
	cl := serveChannels(t, map[string]Channel{channel: {Chain: chain, Ledger: l}})

	update := func(name string) *cb.Envelope {
		env, err := protoutil.UnmarshalEnvelope(file("updates/" + name))
		require.NoError(t, err)
		return env
	}
	r := broadcastOne(t, cl, update("u3-batchtimeout-org1-only.pb"))
	require.Equal(t, cb.Status_BAD_REQUEST, r.GetStatus(), r.GetInfo())
	require.Contains(t, r.GetInfo(), "implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Admins' sub-policies to be satisfied")

	cfgEnv, _, err := chain.ProcessConfigUpdate(update("u1-batchsize-20.pb"))
	require.NoError(t, err)
	r = broadcastOne(t, cl, cfgEnv)
	require.Equal(t, cb.Status_BAD_REQUEST, r.GetStatus(), r.GetInfo())
	require.Contains(t, r.GetInfo(), "a CONFIG envelope cannot be processed directly")

	r = broadcastOne(t, cl, update("u1-batchsize-20.pb"))
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
	require.Eventually(t, func() bool { return chain.Config().Sequence() == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, uint32(20), chain.Config().BatchLimits().MaxMessageCount)
}
