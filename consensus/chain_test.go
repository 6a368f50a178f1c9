package consensus_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Integration tests of Chain on an embedded three-broker Kafka (topics with
// replication factor 3 and min.insync.replicas 2), several nodes per test,
// built with consensustest.Cluster. Each test checks for leaked goroutines
// once its cleanups have run (the package has no TestMain).

// itKafka starts a Kafka for one test and registers the leak check, which
// runs after every later cleanup.
func itKafka(t *testing.T) *consensustest.Kafka {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // registered first, runs last
	k, err := consensustest.StartKafka(consensustest.WithBrokers(3))
	require.NoError(t, err)
	t.Cleanup(k.Close)
	return k
}

// itCluster creates and starts a cluster on k and waits until it is ready.
func itCluster(t *testing.T, ctx context.Context, k *consensustest.Kafka, opts ...consensustest.ClusterOption) *consensustest.Cluster {
	t.Helper()
	// The nodes' warnings only with -v: the fault tests cause many.
	opts = append([]consensustest.ClusterOption{consensustest.WithBatchTimeout(30 * time.Millisecond), consensustest.WithNodeLogger(testLogger())}, opts...)
	c, err := consensustest.NewCluster(k.Addrs(), opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))
	return c
}

// testLogger is the nodes' logger of the tests: warnings with -v,
// nothing otherwise.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// envelope returns an envelope for channel carrying data, signed by c's
// client. It panics on error, which only a broken signer causes, so that
// the goroutines of a test may call it.
func envelope(c *consensustest.Cluster, channel string, data []byte) *cb.Envelope {
	env, err := c.Envelope(channel, data)
	if err != nil {
		panic(err)
	}
	return env
}

func itCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ackLog records the payloads Kafka acknowledged, per channel.
type ackLog struct {
	mu   sync.Mutex
	acks map[string][]string
	n    atomic.Int64
}

func newAckLog() *ackLog { return &ackLog{acks: make(map[string][]string)} }

func (a *ackLog) add(channel, payload string) {
	a.mu.Lock()
	a.acks[channel] = append(a.acks[channel], payload)
	a.mu.Unlock()
	a.n.Add(1)
}

func (a *ackLog) of(channel string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.acks[channel]...)
}

// blockEnvelopes decodes the envelopes of block b: their payload data and
// header type.
func blockEnvelopes(t *testing.T, b *cb.Block) (data []string, types []cb.HeaderType) {
	t.Helper()
	for j, raw := range b.GetData().GetData() {
		env, err := protoutil.UnmarshalEnvelope(raw)
		require.NoError(t, err, "block %d envelope %d", b.GetHeader().GetNumber(), j)
		h, err := protoutil.EnvelopeHeaders(env)
		require.NoError(t, err, "block %d envelope %d", b.GetHeader().GetNumber(), j)
		data = append(data, string(h.Payload.GetData()))
		types = append(types, cb.HeaderType(h.ChannelHeader.GetType()))
	}
	return data, types
}

// normalCounts counts the normal envelopes of l by payload data, from
// block 1 on.
func normalCounts(t *testing.T, l ledger.Reader) map[string]int {
	t.Helper()
	counts := make(map[string]int)
	for i := uint64(1); i < l.Height(); i++ {
		b, err := l.Block(i)
		require.NoError(t, err)
		data, types := blockEnvelopes(t, b)
		for j := range data {
			if types[j] == cb.HeaderType_ENDORSER_TRANSACTION {
				counts[data[j]]++
			}
		}
	}
	return counts
}

// waitOrdered waits until node 0's ledger of channel holds every acked
// payload, then until every running node has the same height, and checks
// that the ledgers are identical and that each acked payload is in exactly
// one block and nothing else normal is (payloads starting with "maybe:",
// not acknowledged, may be in one block).
func waitOrdered(t *testing.T, ctx context.Context, c *consensustest.Cluster, channel string, acked []string, ref int) {
	t.Helper()
	l := c.Node(ref).Ledger(channel)
	for {
		counts := normalCounts(t, l)
		missing := 0
		for _, p := range acked {
			if counts[p] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("channel %s: %d of %d acknowledged envelopes not ordered (heights %v)", channel, missing, len(acked), c.Heights(channel))
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.NoError(t, c.WaitHeight(ctx, channel, l.Height()))
	h := l.Height()
	for i := range c.Len() {
		if c.Node(i).Running() {
			require.Equal(t, h, c.Node(i).Ledger(channel).Height(), "node %d, channel %s: heights %v", i, channel, c.Heights(channel))
		}
	}
	require.NoError(t, c.CheckConsistent(channel))
	counts := normalCounts(t, l)
	want := make(map[string]bool, len(acked))
	for _, p := range acked {
		require.False(t, want[p], "payload %q acknowledged twice", p)
		want[p] = true
		require.Equal(t, 1, counts[p], "channel %s: payload %q is in %d blocks", channel, p, counts[p])
	}
	for p, n := range counts {
		if strings.HasPrefix(p, "maybe:") { // not acknowledged, but may be in the log
			require.Equal(t, 1, n, "channel %s: payload %q is in %d blocks", channel, p, n)
			continue
		}
		require.True(t, want[p], "channel %s: payload %q ordered but never acknowledged", channel, p)
	}
}

// orderAll has each of clients goroutines order perClient envelopes on
// channel, with payloads "channel/tag/client/i", through node g % c.Len(): even clients with Order, odd ones with
// OrderAsync, up to 8 in flight. Acknowledged payloads go to acks; an
// error fails the test.
func orderAll(t *testing.T, ctx context.Context, c *consensustest.Cluster, channel, tag string, clients, perClient int, acks *ackLog, nodes ...int) {
	t.Helper()
	if len(nodes) == 0 {
		for i := range c.Len() {
			nodes = append(nodes, i)
		}
	}
	var wg sync.WaitGroup
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := c.Node(nodes[g%len(nodes)]).Chain(channel)
			async := g%2 == 1
			inflight := make(chan struct{}, 8)
			var pending sync.WaitGroup
			for i := range perClient {
				payload := fmt.Sprintf("%s/%s/%d/%d", channel, tag, g, i)
				env := envelope(c, channel, []byte(payload))
				seq, err := ch.ProcessNormal(env)
				if err != nil {
					t.Errorf("client %d: ProcessNormal: %v", g, err)
					return
				}
				if !async {
					if err := ch.Order(ctx, env, seq); err != nil {
						t.Errorf("client %d: Order %s: %v", g, payload, err)
						return
					}
					acks.add(channel, payload)
					continue
				}
				inflight <- struct{}{}
				pending.Add(1)
				ch.OrderAsync(ctx, env, seq, func(err error) {
					defer pending.Done()
					<-inflight
					if err != nil {
						t.Errorf("client %d: OrderAsync %s: %v", g, payload, err)
						return
					}
					acks.add(channel, payload)
				})
			}
			pending.Wait()
		}()
	}
	wg.Wait()
}

// TestChainConcurrentClientsThreeChannels orders from 16 concurrent clients
// per channel on three channels and three nodes, with a config update on
// one channel in the middle, and checks that every node wrote the same
// blocks, that every acknowledged envelope is in exactly one block, and
// that the new batch size applies from the config block on.
func TestChainConcurrentClientsThreeChannels(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	channels := []string{"alpha", "beta", "gamma"}
	c := itCluster(t, ctx, k, consensustest.WithChannels(channels...))

	const clients, perClient = 16, 80
	total := int64(len(channels) * clients * perClient)
	acks := newAckLog()
	var wg sync.WaitGroup
	for _, name := range channels {
		wg.Add(1)
		go func() { defer wg.Done(); orderAll(t, ctx, c, name, "run", clients, perClient, acks) }()
	}

	// Mid-stream, shrink alpha's batches to 3 envelopes.
	for acks.n.Load() < total/3 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	env, err := c.ConfigUpdate("alpha", func(cfg *ccpb.ChannelConfig) { cfg.BatchSize.MaxMessageCount = 3 })
	require.NoError(t, err)
	cfgChain := c.Node(1).Chain("alpha")
	seq, err := cfgChain.ProcessConfig(env)
	require.NoError(t, err)
	require.NoError(t, cfgChain.Configure(ctx, env, seq))
	wg.Wait()
	require.False(t, t.Failed())
	require.Equal(t, total, acks.n.Load())

	for _, name := range channels {
		waitOrdered(t, ctx, c, name, acks.of(name), 0)
	}

	// alpha: exactly one config block, holding only the update; every
	// later block has at most 3 envelopes; every node runs the new config.
	l := c.Node(0).Ledger("alpha")
	configBlock := uint64(0)
	for i := uint64(1); i < l.Height(); i++ {
		b, err := l.Block(i)
		require.NoError(t, err)
		data, types := blockEnvelopes(t, b)
		for _, typ := range types {
			if typ == cb.HeaderType_CONFIG {
				require.Zero(t, configBlock, "second config block %d", i)
				require.Len(t, data, 1, "config block %d holds other envelopes", i)
				configBlock = i
			}
		}
		if configBlock != 0 && i > configBlock {
			require.LessOrEqual(t, len(data), 3, "block %d after the config block %d", i, configBlock)
		}
		lc, err := protoutil.LastConfigIndex(b)
		require.NoError(t, err)
		if configBlock != 0 {
			require.Equal(t, configBlock, lc, "LAST_CONFIG of block %d", i)
		} else {
			require.Zero(t, lc, "LAST_CONFIG of block %d", i)
		}
	}
	require.NotZero(t, configBlock, "no config block")
	require.Less(t, configBlock, l.Height()-1, "no block after the config block")
	for i := range c.Len() {
		cfg := c.Node(i).Chain("alpha").Config()
		require.Equal(t, uint64(1), cfg.Sequence(), "node %d", i)
		require.Equal(t, uint32(3), cfg.BatchLimits().MaxMessageCount, "node %d", i)
		require.Equal(t, uint32(consensustest.DefaultBatchSize), c.Node(i).Chain("beta").Config().BatchLimits().MaxMessageCount)
	}

	// Halt is prompt, and a halted chain refuses envelopes.
	for i := range c.Len() {
		for _, name := range channels {
			ch := c.Node(i).Chain(name)
			start := time.Now()
			ch.Halt()
			require.Less(t, time.Since(start), 2*time.Second, "node %d, channel %s: Halt took %v", i, name, time.Since(start))
			require.ErrorIs(t, ch.Order(ctx, envelope(c, name, []byte("late")), 0), consensus.ErrHalted)
		}
	}
}

// TestChainLifecycle checks the chain's answers before Start, with a
// cancelled context, and after Halt.
func TestChainLifecycle(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 30*time.Second)
	c, err := consensustest.NewCluster(k.Addrs(), consensustest.WithNodes(1), consensustest.WithBatchTimeout(20*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ch := c.Node(0).Chain(consensustest.DefaultChannel)
	env := envelope(c, ch.Channel(), []byte("tx"))

	require.ErrorIs(t, ch.WaitReady(ctx), consensus.ErrNotReady)
	require.ErrorIs(t, ch.Order(ctx, env, 0), consensus.ErrNotReady)
	select {
	case <-ch.Errored():
		t.Fatal("Errored closed before Start")
	default:
	}

	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))
	seq, err := ch.ProcessNormal(env)
	require.NoError(t, err)
	// The same verdicts with the headers decoded by the caller.
	h, err := protoutil.EnvelopeHeaders(env)
	require.NoError(t, err)
	hseq, err := ch.ProcessNormalHeaders(env, h)
	require.NoError(t, err)
	require.Equal(t, seq, hseq)
	other := envelope(c, "otherchannel", []byte("tx"))
	oh, err := protoutil.EnvelopeHeaders(other)
	require.NoError(t, err)
	_, err = ch.ProcessNormalHeaders(other, oh)
	require.ErrorIs(t, err, channelconfig.ErrWrongChannel)
	require.NoError(t, ch.Order(ctx, env, seq))
	require.ErrorIs(t, ch.Order(ctx, env, seq+1), consensus.ErrStaleConfig)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, ch.Order(cancelled, envelope(c, ch.Channel(), []byte("cancelled")), seq), context.Canceled)

	require.NoError(t, c.WaitHeight(ctx, ch.Channel(), 2))
	start := time.Now()
	ch.Halt()
	require.Less(t, time.Since(start), 2*time.Second)
	select {
	case <-ch.Done():
	default:
		t.Fatal("Done not closed after Halt")
	}
	select {
	case <-ch.Errored():
	default:
		t.Fatal("Errored not closed after Halt")
	}
	require.ErrorIs(t, ch.Err(), consensus.ErrHalted)
	require.ErrorIs(t, ch.Order(ctx, env, seq), consensus.ErrHalted)
	require.ErrorIs(t, ch.Configure(ctx, env, seq), consensus.ErrHalted)
	require.ErrorIs(t, ch.WaitReady(ctx), consensus.ErrHalted)
	ch.Halt() // idempotent
	require.Equal(t, uint64(2), ch.Height(), "the cancelled envelope must not be ordered")
}
