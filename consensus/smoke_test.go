package consensus_test

import (
	"context"
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
