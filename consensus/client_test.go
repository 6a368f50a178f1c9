package consensus_test

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// connCounter counts the connections a Kafka client opens.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		c.n.Add(1)
	}
}

// gatedLedger is a memory ledger whose appends wait while the gate is
// closed.
type gatedLedger struct {
	*ledger.Memory
	gate chan struct{} // appends wait for it to be closed
}

func (l *gatedLedger) Append(b *cb.Block) error      { <-l.gate; return l.Memory.Append(b) }
func (l *gatedLedger) AppendBuilt(b *cb.Block) error { <-l.gate; return l.Memory.AppendBuilt(b) }

// TestChainsShareOneClient runs 30 channels on one consenter: they share
// its Kafka client (a handful of connections, not one set per channel),
// and a channel whose ledger stalls does not hold up the others; once it
// resumes, it catches up with everything it was sent.
func TestChainsShareOneClient(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	conns := new(connCounter)
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()),
		consensus.WithLogger(quietLogger), consensus.WithKgoOpts(kgo.WithHooks(conns)))
	require.NoError(t, err)
	t.Cleanup(cons.Close)
	ca := testutil.NewCA(t, "Org1")
	client := ca.Issue("client")
	const channels = 30
	chains := make([]*consensus.Chain, channels)
	ledgers := make([]*gatedLedger, channels)
	for i := range channels {
		name := fmt.Sprintf("ch%02d", i)
		ledgers[i] = &gatedLedger{Memory: ledger.NewMemory(), gate: make(chan struct{})}
		if i > 0 {
			close(ledgers[i].gate)
		}
		g := testutil.GenesisBlock(t, testutil.ChannelConfig(name, []*testutil.CA{ca},
			testutil.WithBatchSize(5, 1<<20, 1<<19), testutil.WithBatchTimeout(20*time.Millisecond)))
		require.NoError(t, ledgers[i].Memory.Append(g))
		chains[i], err = cons.NewChain(name, ledgers[i], nil)
		require.NoError(t, err)
		chains[i].Start()
	}
	for _, ch := range chains {
		require.NoError(t, ch.WaitReady(ctx))
	}
	order := func(ch *consensus.Chain, n int) {
		for j := range n {
			env := testutil.Envelope(client, ch.Channel(), cb.HeaderType_ENDORSER_TRANSACTION, []byte(fmt.Sprint("tx", j)))
			require.NoError(t, ch.Submit(ctx, env))
		}
	}
	// Channel 0's ledger is stalled: its blocks wait, and its records pile
	// up in the shared client until its inbox pauses its topic.
	order(chains[0], 200)
	for _, ch := range chains[1:] {
		order(ch, 10)
	}
	for i, l := range ledgers[1:] {
		require.Eventually(t, func() bool { return l.Height() == 3 }, 20*time.Second, 5*time.Millisecond, "channel %d", i+1)
	}
	require.Equal(t, uint64(1), ledgers[0].Height(), "the stalled channel wrote nothing")
	close(ledgers[0].gate)
	require.Eventually(t, func() bool { return ledgers[0].Height() == 41 }, 20*time.Second, 5*time.Millisecond)
	for _, ch := range chains {
		require.NoError(t, ch.Available())
	}
	t.Logf("%d channels, %d connections", channels, conns.n.Load())
	require.Less(t, conns.n.Load(), int64(6*len(k.Addrs())), "a few connections per broker, not a set per channel")
	require.Equal(t, 30, len(cons.Channels()))
}
