package consensustest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func TestClusterOptionsRejected(t *testing.T) {
	k := startKafka(t)
	for name, opts := range map[string][]consensustest.ClusterOption{
		"no nodes":      {consensustest.WithNodes(0)},
		"bad channel":   {consensustest.WithChannels("bad/name")},
		"twice":         {consensustest.WithChannels("a", "a")},
		"empty batch":   {consensustest.WithBatchSize(0, 0)},
		"zero timeout":  {consensustest.WithBatchTimeout(0)},
		"bad consenter": {consensustest.WithConsenterOpts(consensus.WithTopicSettings(consensus.TopicSettings{MaxMessageBytes: 1}))},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := consensustest.NewCluster(k, opts...)
			require.Error(t, err)
			require.Nil(t, c)
		})
	}
	_, err := consensustest.NewCluster(nil)
	require.Error(t, err)
}

func TestClusterOrderRestartAndCompare(t *testing.T) {
	k := startKafka(t)
	c, err := consensustest.NewCluster(k,
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
			require.NoError(t, c.Order(ctx, ch, c.Envelope(ch, fmt.Appendf(nil, "%s-%d", ch, i))))
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
	cl, err := consensustest.NewCluster(startKafka(t)) // never started: only its identities are used
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	mk := func(payloads ...string) *ledger.Memory {
		l := ledger.NewMemory()
		var prev []byte
		for i, p := range payloads {
			env := cl.Envelope("ch", []byte(p))
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
