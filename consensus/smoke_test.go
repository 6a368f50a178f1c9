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

// startOneNode starts an embedded Kafka and one consenter with a ready
// chain of channel on a memory ledger, configured by cfg and opts, for an
// organisation whose client it returns. Everything stops when t ends.
func startOneNode(t *testing.T, ctx context.Context, channel string, cfg []testutil.ConfigOption, opts ...consensus.Option) (*consensus.Chain, *ledger.Memory, *testutil.Identity) {
	t.Helper()
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	t.Cleanup(k.Close)
	ca := testutil.NewCA(t, "Org1")
	genesis := testutil.GenesisBlock(t, testutil.ChannelConfig(channel, []*testutil.CA{ca}, cfg...))
	opts = append([]consensus.Option{consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()),
		consensus.WithLogger(quietLogger)}, opts...)
	cons, err := consensus.NewConsenter(opts...)
	require.NoError(t, err)
	t.Cleanup(cons.Close)
	l := ledger.NewMemory()
	ch, err := cons.NewChain(channel, l, genesis)
	require.NoError(t, err)
	ch.Start()
	require.NoError(t, ch.WaitReady(ctx))
	return ch, l, ca.Issue("client")
}

// TestSmokeOneNode uses the consensus API directly, without the
// consensustest cluster: one consenter, one chain on a memory ledger.
func TestSmokeOneNode(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, l, client := startOneNode(t, ctx, "ch1",
		[]testutil.ConfigOption{testutil.WithBatchSize(10, 1<<20, 1<<19), testutil.WithBatchTimeout(50 * time.Millisecond)})
	for i := 0; i < 25; i++ {
		env := testutil.Envelope(client, "ch1", cb.HeaderType_ENDORSER_TRANSACTION, []byte(fmt.Sprint("tx", i)))
		seq, err := ch.ProcessNormal(env)
		require.NoError(t, err)
		require.NoError(t, ch.Order(ctx, env, seq))
	}
	// 10 + 10 cut by count, the last 5 by the batch timeout.
	require.Eventually(t, func() bool { return l.Height() == 4 }, 10*time.Second, 10*time.Millisecond, "height %d", l.Height())
	require.Same(t, consensus.Ledger(l), ch.Ledger())

	// The one-call form validates and orders.
	require.NoError(t, ch.Submit(ctx, testutil.Envelope(client, "ch1", cb.HeaderType_ENDORSER_TRANSACTION, []byte("submitted"))))
	require.Error(t, ch.Submit(ctx, testutil.Envelope(client, "other", cb.HeaderType_ENDORSER_TRANSACTION, nil)), "wrong channel")
	require.Eventually(t, func() bool { return l.Height() == 5 }, 10*time.Second, 10*time.Millisecond)
	// No envelope is an error, not a panic.
	require.ErrorContains(t, ch.Order(ctx, nil, 0), "nil envelope")
	require.ErrorContains(t, ch.Submit(ctx, nil), "nil envelope")
}

// TestConsenterChannels creates chains of a few channels: Channels lists
// them sorted; an invalid channel name is refused once, naming it.
func TestConsenterChannels(t *testing.T) {
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers("127.0.0.1:1"), consensus.WithLogger(quietLogger))
	require.NoError(t, err)
	defer cons.Close()
	ca := testutil.NewCA(t, "Org1")
	for _, name := range []string{"zeta", "alpha", "mid"} {
		_, err := cons.NewChain(name, ledger.NewMemory(), testutil.GenesisBlock(t, testutil.ChannelConfig(name, []*testutil.CA{ca})))
		require.NoError(t, err)
	}
	require.Equal(t, []string{"alpha", "mid", "zeta"}, cons.Channels())
	_, err = cons.NewChain("bad/name", ledger.NewMemory(), nil)
	require.ErrorIs(t, err, consensus.ErrInvalidTopicName)
	require.Equal(t, `consensus: invalid topic name "bad/name": illegal character '/' at byte 3 (allowed: a-z A-Z 0-9 . _ -)`, err.Error())
}

// TestOrderLargeEnvelopes orders envelopes larger than Kafka's default
// max.message.bytes (1 MB, which the embedded broker enforces too), several
// at once so that the producer batches them: the topic is created with
// TopicSettings.MaxMessageBytes and the producer keeps its batches within it.
func TestOrderLargeEnvelopes(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, l, client := startOneNode(t, ctx, "big",
		[]testutil.ConfigOption{testutil.WithBatchSize(10, 4<<20, 4<<20), testutil.WithBatchTimeout(50 * time.Millisecond)},
		consensus.WithTopicSettings(consensus.TopicSettings{MaxMessageBytes: 8 << 20}))

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
