package consensustest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func TestClusterOptionsRejected(t *testing.T) {
	k := startKafka(t)
	for name, opts := range map[string][]consensustest.ClusterOption{
		"no nodes":     {consensustest.WithNodes(0)},
		"bad channel":  {consensustest.WithChannels("bad/name")},
		"twice":        {consensustest.WithChannels("a", "a")},
		"empty batch":  {consensustest.WithBatchSize(0, 0)},
		"preferred":    {consensustest.WithBatchSize(10, 1000), consensustest.WithPreferredMaxBytes(1001)},
		"zero timeout": {consensustest.WithBatchTimeout(0)},
		"no name":      {consensustest.WithNodeNames("")},
		"two ledgers": {consensustest.WithFileLedgers(t.TempDir()), consensustest.WithLedgers(func(int, string) (ledger.Ledger, error) {
			return ledger.NewMemory(), nil
		})},
		"failed ledger": {consensustest.WithLedgers(func(int, string) (ledger.Ledger, error) { return nil, errors.New("no disk") })},
		"bad consenter": {consensustest.WithConsenterOpts(consensus.WithTopicSettings(consensus.TopicSettings{MaxMessageBytes: 1}))},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := consensustest.NewCluster(k.Addrs(), opts...)
			require.Error(t, err)
			require.Nil(t, c)
		})
	}
	_, err := consensustest.NewCluster(nil)
	require.ErrorContains(t, err, "no seed brokers")
}

// envelope returns an envelope for channel carrying data, signed by c's
// client.
func envelope(t *testing.T, c *consensustest.Cluster, channel string, data []byte) *cb.Envelope {
	t.Helper()
	env, err := c.Envelope(channel, data)
	require.NoError(t, err)
	return env
}

func TestClusterOrderRestartAndCompare(t *testing.T) {
	k := startKafka(t)
	c, err := consensustest.NewCluster(k.Addrs(),
		consensustest.WithNodes(2),
		consensustest.WithChannels("a", "b"),
		consensustest.WithFileLedgers(t.TempDir()),
		consensustest.WithBatchSize(4, 0),
	)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.Equal(t, 2, c.Len())
	require.Equal(t, []string{"a", "b"}, c.Channels())
	ctx := testCtx(t, 30*time.Second)

	// Not started yet: chains exist but are not ready.
	require.ErrorIs(t, c.Node(0).Chain("a").WaitReady(ctx), consensus.ErrNotReady)
	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))

	order := func(ch string, from, to int) {
		for i := from; i < to; i++ {
			require.NoError(t, c.Order(ctx, ch, envelope(t, c, ch, fmt.Appendf(nil, "%s-%d", ch, i))))
		}
	}
	order("a", 0, 8)
	order("b", 0, 4)
	require.NoError(t, c.WaitHeight(ctx, "a", 3))
	require.NoError(t, c.WaitHeight(ctx, "b", 2))
	require.NoError(t, c.CheckConsistent("a"))
	require.NoError(t, c.CheckConsistent("b"))

	// Every node signs its blocks with its own identity.
	b1, err := c.Node(0).Ledger("a").Block(1)
	require.NoError(t, err)
	md, err := protoutil.Metadata(b1, cb.BlockMetadataIndex_SIGNATURES)
	require.NoError(t, err)
	require.Len(t, md.GetSignatures(), 1)

	n1 := c.Node(1)
	n1.Stop()
	require.False(t, n1.Running())
	require.Nil(t, n1.Ledger("a"), "file ledgers are closed while stopped")
	order("a", 8, 12)
	require.NoError(t, c.WaitHeight(ctx, "a", 4))
	require.NoError(t, n1.Restart())
	require.NoError(t, n1.WaitReady(ctx))
	require.NoError(t, c.WaitHeight(ctx, "a", 4))
	require.NoError(t, c.CheckConsistent("a"))
	require.Equal(t, []uint64{4, 4}, c.Heights("a"))

	// A config update built by the cluster applies on every node.
	env, err := c.ConfigUpdate("b", func(cfg *ccpb.ChannelConfig) { cfg.BatchSize.MaxMessageCount = 2 })
	require.NoError(t, err)
	ch := c.Node(0).Chain("b")
	seq, err := ch.ProcessConfig(env)
	require.NoError(t, err)
	require.NoError(t, ch.Configure(ctx, env, seq))
	require.NoError(t, c.WaitHeight(ctx, "b", 3))
	for i := range c.Len() {
		require.Eventually(t, func() bool { return c.Node(i).Chain("b").Config().BatchLimits().MaxMessageCount == 2 },
			10*time.Second, 5*time.Millisecond)
	}
}

func TestCompareLedgersNamesFirstDifference(t *testing.T) {
	cl, err := consensustest.NewCluster([]string{"127.0.0.1:1"}) // never started: only its identities are used
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	mk := func(payloads ...string) *ledger.Memory {
		l := ledger.NewMemory()
		var prev []byte
		for i, p := range payloads {
			env := envelope(t, cl, "ch", []byte(p))
			b := protoutil.NewBlock(uint64(i), prev, [][]byte{protoutil.MarshalOrPanic(env)})
			protoutil.SetMetadata(b, cb.BlockMetadataIndex_ORDERER, &cb.Metadata{Value: []byte{byte(i)}})
			require.NoError(t, l.Append(b))
			prev = protoutil.HeaderHash(b.Header)
		}
		return l
	}
	a := mk("x", "y", "z")
	require.NoError(t, consensustest.CompareLedgers(a, a))

	// A prefix of the same blocks is consistent, whichever comes first.
	p := ledger.NewMemory()
	for i := range uint64(2) {
		blk, err := a.Block(i)
		require.NoError(t, err)
		require.NoError(t, p.Append(blk))
	}
	require.NoError(t, consensustest.CompareLedgers(a, p))
	require.NoError(t, consensustest.CompareLedgers(p, a))

	// Block 1 with other data: named, with both transaction IDs.
	b := ledger.NewMemory()
	b0, _ := a.Block(0)
	require.NoError(t, b.Append(b0))
	other := mk("x", "y")
	ob1, _ := other.Block(1)
	ob1 = protoutil.NewBlock(1, protoutil.HeaderHash(b0.Header), ob1.Data.Data)
	require.NoError(t, b.Append(ob1))
	err = consensustest.CompareLedgers(a, b)
	require.ErrorContains(t, err, "block 1 differs: data hash")

	// Same header and data, other ORDERER metadata.
	m := ledger.NewMemory()
	require.NoError(t, m.Append(b0))
	a1, _ := a.Block(1)
	c1 := protoutil.NewBlock(1, a1.Header.PreviousHash, a1.Data.Data)
	protoutil.SetMetadata(c1, cb.BlockMetadataIndex_ORDERER, &cb.Metadata{Value: []byte{9}})
	require.NoError(t, m.Append(c1))
	require.ErrorContains(t, consensustest.CompareLedgers(a, m), "block 1 differs: ORDERER metadata")
}

// TestClusterOrderSkipsUnready orders through the nodes that are ready
// only, and fails at once when none is.
func TestClusterOrderSkipsUnready(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 30*time.Second)
	c, err := consensustest.NewCluster(k.Addrs(), consensustest.WithBatchTimeout(20*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ch := consensustest.DefaultChannel

	// Created, not started: no chain is available.
	start := time.Now()
	err = c.Order(ctx, ch, envelope(t, c, ch, []byte("early")))
	require.ErrorIs(t, err, consensus.ErrNotReady)
	require.ErrorContains(t, err, "node0")
	require.Less(t, time.Since(start), time.Second)

	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))
	c.Node(0).Stop()
	c.Node(1).Chain(ch).Halt()
	for i := range 6 {
		require.NoError(t, c.Order(ctx, ch, envelope(t, c, ch, fmt.Appendf(nil, "tx %d", i))))
	}
	require.NoError(t, c.Node(2).WaitReady(ctx))
	require.Eventually(t, func() bool { return c.Node(2).Chain(ch).Height() >= 2 }, 10*time.Second, 5*time.Millisecond)

	c.Node(2).Stop()
	err = c.Order(ctx, ch, envelope(t, c, ch, []byte("none")))
	require.ErrorIs(t, err, consensus.ErrNotReady)
	require.ErrorContains(t, err, "node0 is stopped")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, c.Order(cancelled, ch, envelope(t, c, ch, []byte("late"))), context.Canceled)
	require.ErrorContains(t, c.Order(ctx, "nope", envelope(t, c, "nope", nil)), "does not serve channel")
}

// TestClusterOrgsNamesAndLedgers runs a cluster with organisations of its
// own (NodeOUs on), named nodes and ledgers from WithLedgers.
func TestClusterOrgsNamesAndLedgers(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 30*time.Second)
	app, err := msptest.NewCA("AppMSP", msptest.WithNodeOUs())
	require.NoError(t, err)
	orderers, err := msptest.NewCA("OrdererMSP", msptest.WithNodeOUs())
	require.NoError(t, err)
	var opened []string
	c, err := consensustest.NewCluster(k.Addrs(),
		consensustest.WithNodes(2),
		consensustest.WithNodeNames("orderer"),
		consensustest.WithOrg(app),
		consensustest.WithOrdererOrg(orderers),
		consensustest.WithBatchSize(3, 0),
		consensustest.WithLedgers(func(node int, channel string) (ledger.Ledger, error) {
			opened = append(opened, fmt.Sprint(node, channel))
			return ledger.NewMemory(), nil
		}),
	)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.Equal(t, []string{"0" + consensustest.DefaultChannel, "1" + consensustest.DefaultChannel}, opened)
	require.Equal(t, "orderer1", c.Node(1).String())
	require.Same(t, app, c.Org())
	require.Same(t, orderers, c.OrdererOrg())
	require.Equal(t, k.Addrs(), c.Brokers())

	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))
	ch := consensustest.DefaultChannel
	for i := range 3 {
		require.NoError(t, c.Order(ctx, ch, envelope(t, c, ch, fmt.Appendf(nil, "tx %d", i))))
	}
	require.NoError(t, c.WaitHeight(ctx, ch, 2))
	b, err := c.Node(1).Ledger(ch).Block(1)
	require.NoError(t, err)
	md, err := protoutil.Metadata(b, cb.BlockMetadataIndex_SIGNATURES)
	require.NoError(t, err)
	require.Len(t, md.GetSignatures(), 1)
	sh := new(cb.SignatureHeader)
	require.NoError(t, proto.Unmarshal(md.GetSignatures()[0].GetSignatureHeader(), sh))
	signer, err := c.Node(1).Chain(ch).Config().(consensus.BundleConfig).MSPManager().Deserialize(sh.GetCreator())
	require.NoError(t, err)
	require.Equal(t, "OrdererMSP", signer.MSPID())
	require.Equal(t, "orderer1", signer.Certificate().Subject.CommonName)

	// Ledgers of WithLedgers stay open across a restart.
	l := c.Node(0).Ledger(ch)
	c.Node(0).Stop()
	require.Same(t, l, c.Node(0).Ledger(ch))
	require.NoError(t, c.Node(0).Restart())
	require.NoError(t, c.Node(0).WaitReady(ctx))
	require.NoError(t, c.CheckConsistent(ch))
}
