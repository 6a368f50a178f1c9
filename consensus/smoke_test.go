package consensus_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// TestSmokeOneNode uses the consensus API directly, without the
// consensustest cluster: one consenter, one chain on a memory ledger.
func TestSmokeOneNode(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	defer k.Close()
	ca := testutil.NewCA(t, "Org1")
	client := ca.Issue("client")
	cfg := testutil.ChannelConfig("ch1", []*testutil.CA{ca}, testutil.WithBatchSize(10, 1<<20, 1<<19), testutil.WithBatchTimeout(50*time.Millisecond))
	genesis := testutil.GenesisBlock(t, cfg)

	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()))
	require.NoError(t, err)
	defer cons.Close()
	l := ledger.NewMemory()
	ch, err := cons.NewChain("ch1", l, genesis)
	require.NoError(t, err)
	ch.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, ch.WaitReady(ctx))
	for i := 0; i < 25; i++ {
		env := testutil.Envelope(client, "ch1", cb.HeaderType_ENDORSER_TRANSACTION, []byte(fmt.Sprint("tx", i)))
		seq, err := ch.ProcessNormal(env)
		require.NoError(t, err)
		require.NoError(t, ch.Order(ctx, env, seq))
	}
	// 10 + 10 cut by count, the last 5 by the batch timeout.
	require.Eventually(t, func() bool { return l.Height() == 4 }, 10*time.Second, 10*time.Millisecond, "height %d", l.Height())
}

// TestOrderLargeEnvelopes orders envelopes larger than Kafka's default
// max.message.bytes (1 MB, which the embedded broker enforces too), several
// at once so that the producer batches them: the topic is created with
// TopicSettings.MaxMessageBytes and the producer keeps its batches within it.
func TestOrderLargeEnvelopes(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	defer k.Close()
	ca := testutil.NewCA(t, "Org1")
	client := ca.Issue("client")
	cfg := testutil.ChannelConfig("big", []*testutil.CA{ca}, testutil.WithBatchSize(10, 4<<20, 4<<20), testutil.WithBatchTimeout(50*time.Millisecond))
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()),
		consensus.WithTopicSettings(consensus.TopicSettings{MaxMessageBytes: 8 << 20}))
	require.NoError(t, err)
	defer cons.Close()
	l := ledger.NewMemory()
	ch, err := cons.NewChain("big", l, testutil.GenesisBlock(t, cfg))
	require.NoError(t, err)
	ch.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ch.WaitReady(ctx))

	const n = 6
	errs := make(chan error, n)
	for range n {
		data := make([]byte, 3<<20) // 3 MiB each, incompressible
		_, _ = rand.Read(data)
		env := testutil.Envelope(client, "big", cb.HeaderType_ENDORSER_TRANSACTION, data)
		seq, err := ch.ProcessNormal(env)
		require.NoError(t, err)
		ch.OrderAsync(ctx, env, seq, func(err error) { errs <- err })
	}
	for range n {
		require.NoError(t, <-errs)
	}
	require.Eventually(t, func() bool {
		total := 0
		for i := uint64(1); i < l.Height(); i++ {
			b, err := l.Block(i)
			require.NoError(t, err)
			total += len(b.Data.Data)
		}
		return total == n
	}, 20*time.Second, 20*time.Millisecond)
}
