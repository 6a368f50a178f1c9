package consensus_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// rawClient is a plain franz-go client on k, for writing to a channel's
// topic behind the chains' backs.
func rawClient(t *testing.T, k *consensustest.Kafka) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func produceRaw(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, values ...[]byte) {
	t.Helper()
	for _, v := range values {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("0"), Value: v}).FirstErr())
	}
}

// orderSome orders n envelopes round robin over the running nodes and
// records them in acks.
func orderSome(t *testing.T, ctx context.Context, c *consensustest.Cluster, channel, tag string, n int, acks *ackLog) {
	t.Helper()
	for i := range n {
		p := fmt.Sprintf("%s/%s/%d", channel, tag, i)
		require.NoError(t, c.Order(ctx, channel, envelope(c, channel, []byte(p))))
		acks.add(channel, p)
	}
}

// orderAndWait is orderSome, then waits until node 0's ledger holds every
// envelope acks holds for channel.
func orderAndWait(t *testing.T, ctx context.Context, c *consensustest.Cluster, channel, tag string, n int, acks *ackLog) {
	t.Helper()
	orderSome(t, ctx, c, channel, tag, n, acks)
	waitOrdered(t, ctx, c, channel, acks.of(channel), 0)
}

// waitErrored waits until every chain's Errored channel is closed.
func waitErrored(t *testing.T, c *consensustest.Cluster, channel string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for i := range c.Len() {
		select {
		case <-c.Node(i).Chain(channel).Errored():
		case <-deadline:
			t.Fatalf("node %d: Errored not closed within %v", i, within)
		}
	}
}

// waitRecovered waits until every chain's Errored returns an open channel
// and the chain is ready again.
func waitRecovered(t *testing.T, ctx context.Context, c *consensustest.Cluster, channel string, within time.Duration) {
	t.Helper()
	for i := range c.Len() {
		ch := c.Node(i).Chain(channel)
		require.Eventually(t, func() bool {
			select {
			case <-ch.Errored():
				return false
			default:
				return true
			}
		}, within, 5*time.Millisecond, "node %d: Errored still closed", i)
	}
	require.NoError(t, c.WaitReady(ctx))
}

// TestChainErroredWhileBrokersPaused makes every broker unreachable: each
// chain's Errored closes within a bounded time and Order fails fast with
// ErrNotReady; once the brokers are back Errored is replaced by an open
// channel and ordering works again, with identical ledgers.
func TestChainErroredWhileBrokersPaused(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithConsenterOpts(consensus.WithErrorTimeout(200*time.Millisecond)))
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderSome(t, ctx, c, ch, "before", 15, acks)

	k.Pause()
	waitErrored(t, c, ch, 10*time.Second)
	for i := range c.Len() {
		// A paused broker looks down, not misconfigured: the cause names
		// no TLS or SASL problem.
		if err := c.Node(i).Chain(ch).Available(); err != nil {
			require.NotContains(t, err.Error(), "TLS", "node %d", i)
			require.NotContains(t, err.Error(), "SASL", "node %d", i)
		}
		// Errored fails Order fast with ErrNotReady. Should the chain leave
		// the errored state while the brokers are still down, Order must
		// still not return nil: it ends with ErrNotAcknowledged.
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Node(i).Order(octx, ch, envelope(c, ch, fmt.Appendf(nil, "maybe:while paused %d", i)))
		cancel()
		require.Error(t, err, "node %d", i)
		if !errors.Is(err, consensus.ErrNotReady) {
			require.ErrorIs(t, err, consensus.ErrNotAcknowledged, "node %d", i)
			t.Logf("node %d left the errored state while all brokers were paused: %v", i, err)
		}
	}
	require.NoError(t, k.Resume())
	waitRecovered(t, ctx, c, ch, 20*time.Second)
	orderAndWait(t, ctx, c, ch, "after", 15, acks)
}

// TestChainErroredWhileFetchFails fails every fetch: the chains become
// errored, then recover once fetches succeed again.
func TestChainErroredWhileFetchFails(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithConsenterOpts(consensus.WithErrorTimeout(200*time.Millisecond)))
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderSome(t, ctx, c, ch, "before", 12, acks)
	require.NoError(t, c.WaitHeight(ctx, ch, 2))

	fault := k.FailFetch(-1, nil)
	waitErrored(t, c, ch, 10*time.Second)
	require.ErrorIs(t, c.Order(ctx, ch, envelope(c, ch, []byte("while failing"))), consensus.ErrNotReady)
	fault.Remove()
	waitRecovered(t, ctx, c, ch, 20*time.Second)
	orderAndWait(t, ctx, c, ch, "after", 12, acks)
}

// TestChainProduceFailsNonRetriably answers every produce request with a
// non-retriable error: Order never returns nil for an envelope Kafka did
// not acknowledge, and works again once the fault is removed.
func TestChainProduceFailsNonRetriably(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k)
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderSome(t, ctx, c, ch, "before", 5, acks)

	fault := k.FailProduce(-1, kerr.InvalidRecord)
	for i := range 6 {
		err := c.Order(ctx, ch, envelope(c, ch, fmt.Appendf(nil, "rejected/%d", i)))
		require.Error(t, err, "envelope %d was not acknowledged", i)
		require.True(t, errors.Is(err, consensus.ErrNotAcknowledged) || errors.Is(err, consensus.ErrNotReady), "%v", err)
		require.ErrorIs(t, err, kerr.InvalidRecord)
	}
	fault.Remove()
	require.NoError(t, c.WaitReady(ctx))
	// A record the chain produced itself just before the removal (a
	// time-to-cut) may still be refused, and franz-go then fails the
	// records buffered behind it with the same error: the first envelopes
	// after the removal may fail so, never succeed silently.
	for i := 0; ; i++ {
		err := c.Order(ctx, ch, envelope(c, ch, fmt.Appendf(nil, "maybe:settle/%d", i)))
		if err == nil {
			break
		}
		require.ErrorIs(t, err, kerr.InvalidRecord)
		require.Less(t, i, 20, "Order keeps failing after the fault was removed: %v", err)
	}
	orderSome(t, ctx, c, ch, "after", 5, acks)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0) // and none of the rejected ones
}

// TestChainTooLarge rejects envelopes above AbsoluteMaxBytes at ingress.
func TestChainTooLarge(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 30*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithNodes(1), consensustest.WithBatchSize(10, 4096))
	ch := c.Node(0).Chain(consensustest.DefaultChannel)
	big := envelope(c, ch.Channel(), make([]byte, 8192))
	require.ErrorIs(t, ch.Order(ctx, big, 0), consensus.ErrTooLarge)
	require.ErrorIs(t, ch.Configure(ctx, big, 0), consensus.ErrTooLarge)
	require.NoError(t, ch.Order(ctx, envelope(c, ch.Channel(), make([]byte, 1024)), 0))
}

// TestChainSkipsForeignRecords writes records that are not orderer
// messages to the topic between envelopes: every node skips them the same
// way and the chain goes on.
func TestChainSkipsForeignRecords(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k)
	ch := consensustest.DefaultChannel
	raw := rawClient(t, k)
	acks := newAckLog()

	random := make([]byte, 300)
	_, _ = rand.Read(random)
	// A regular message carrying a valid envelope, with an unknown field.
	env := envelope(c, ch, []byte("foreign regular"))
	regular := protoutil.MarshalOrPanic(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
		Payload: protoutil.MarshalOrPanic(env), Class: ab.KafkaMessageRegular_NORMAL}}})
	regular = protowire.AppendBytes(protowire.AppendTag(regular, 99, protowire.BytesType), []byte("extension"))
	emptyMsg := protoutil.MarshalOrPanic(&ab.KafkaMessage{}) // no type at all

	for round, garbage := range [][]byte{random, regular, emptyMsg, {0xff}, nil} {
		orderSome(t, ctx, c, ch, fmt.Sprint("round", round), 4, acks)
		produceRaw(t, ctx, raw, ch, garbage)
	}
	orderAndWait(t, ctx, c, ch, "last", 7, acks)
	for i := range c.Len() {
		require.NoError(t, c.Node(i).Chain(ch).Err())
	}
}

// TestChainFutureTimeToCutSkipped writes time-to-cuts for blocks beyond
// the next one, as any writer to the topic could: every node skips them
// alike, counts them, and the channel keeps ordering.
func TestChainFutureTimeToCutSkipped(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 30*time.Second)
	c := itCluster(t, ctx, k)
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 10, acks)
	h := c.Node(0).Ledger(ch).Height()

	raw := rawClient(t, k)
	for _, n := range []uint64{h + 5, h + 8253, 1 << 40} {
		ttc := protoutil.MarshalOrPanic(&ab.KafkaMessage{Type: &ab.KafkaMessage_TimeToCut{TimeToCut: &ab.KafkaMessageTimeToCut{BlockNumber: n}}})
		produceRaw(t, ctx, raw, ch, ttc)
	}
	orderAndWait(t, ctx, c, ch, "after", 10, acks)
	for i := range c.Len() {
		require.NoError(t, c.Node(i).Chain(ch).Err(), "node %d", i)
	}
	require.NoError(t, c.CheckConsistent(ch))
}

// TestChainUnsafeTopic starts chains on an existing topic with replication
// factor 1: strict chains refuse to start, others log and run.
func TestChainUnsafeTopic(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 30*time.Second)
	const topic = "unsafe"
	_, err := kadm.NewClient(rawClient(t, k)).CreateTopic(ctx, 1, 1, nil, topic)
	require.NoError(t, err)

	strict, err := consensustest.NewCluster(k.Addrs(), consensustest.WithNodes(1), consensustest.WithChannels(topic),
		consensustest.WithConsenterOpts(consensus.WithStrictTopic()))
	require.NoError(t, err)
	require.NoError(t, strict.Start(ctx))
	err = strict.WaitReady(ctx)
	require.ErrorIs(t, err, consensus.ErrHalted)
	require.ErrorIs(t, err, consensus.ErrUnsafeTopic)
	var ute *consensus.UnsafeTopicError
	require.ErrorAs(t, err, &ute)
	require.Equal(t, "replication.factor", ute.Problems[0].Setting)
	strict.Close()

	c := itCluster(t, ctx, k, consensustest.WithChannels(topic))
	acks := newAckLog()
	orderSome(t, ctx, c, topic, "ok", 5, acks)
	waitOrdered(t, ctx, c, topic, acks.of(topic), 0)
}

// TestChainDropConnectionsWhileOrdering closes every client connection to
// the brokers, repeatedly, while clients order: the nodes reconnect, every
// acknowledged envelope is in exactly one block, the idempotent producer
// writes no duplicates, and the ledgers stay identical.
func TestChainDropConnectionsWhileOrdering(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k)
	ch := consensustest.DefaultChannel
	acks := newAckLog()

	stop := make(chan struct{})
	dropped := make(chan int)
	go func() {
		n := 0
		defer func() { dropped <- n }()
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				k.DropConnections()
				n++
			}
		}
	}()

	const clients, perClient = 6, 60
	errs := make(chan error, clients)
	for g := range clients {
		go func() {
			var failed error
			for i := range perClient {
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				// "maybe:": if Order fails, the envelope may still be in the log.
				p := fmt.Sprintf("maybe:%s/drop/%d/%d", ch, g, i)
				env := envelope(c, ch, []byte(p))
				err := c.Node(g%c.Len()).Order(octx, ch, env)
				// A node that cannot consume for a while refuses envelopes
				// (nothing produced): a client tries again, as it would.
				for errors.Is(err, consensus.ErrNotReady) && octx.Err() == nil {
					time.Sleep(20 * time.Millisecond)
					err = c.Node(g%c.Len()).Order(octx, ch, env)
				}
				cancel()
				if err == nil {
					acks.add(ch, p)
				} else if !errors.Is(err, consensus.ErrNotAcknowledged) && !errors.Is(err, consensus.ErrNotReady) {
					failed = fmt.Errorf("%s: %w", p, err)
				}
			}
			errs <- failed
		}()
	}
	for range clients {
		require.NoError(t, <-errs)
	}
	close(stop)
	drops := <-dropped
	require.Greater(t, drops, 0)
	t.Logf("%d of %d envelopes acknowledged across %d connection drops", len(acks.of(ch)), clients*perClient, drops)
	// Envelopes whose Order failed may or may not be in the log; every
	// acknowledged one must be ordered once, and nothing else.
	require.Greater(t, len(acks.of(ch)), clients*perClient/2, "most envelopes get through despite %d drops", drops)
	require.NoError(t, c.WaitReady(ctx))
	orderAndWait(t, ctx, c, ch, "after", 5, acks)
}

// TestChainCallerContextDoesNotFailOthers makes the brokers refuse writes
// with a retriable error so that envelopes queue in the Kafka client, lets
// the context of the first one expire, then lets writes through: the other
// callers' envelopes, queued behind it, are all acknowledged and ordered.
// (franz-go fails every record buffered behind one whose context ends, so a
// caller's context must not reach the client.)
func TestChainCallerContextDoesNotFailOthers(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithNodes(1), consensustest.WithConsenterOpts(consensus.WithErrorTimeout(time.Minute)))
	ch := consensustest.DefaultChannel
	chain := c.Node(0).Chain(ch)
	acks := newAckLog()
	orderSome(t, ctx, c, ch, "before", 3, acks)

	fault := k.FailProduce(-1, nil) // NOT_ENOUGH_REPLICAS: retried
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	chain.OrderAsync(short, envelope(c, ch, []byte("maybe:impatient")), 0, func(err error) { first <- err })
	const others = 5
	results := make(chan error, others)
	for i := range others {
		p := fmt.Sprintf("%s/patient/%d", ch, i)
		chain.OrderAsync(ctx, envelope(c, ch, []byte(p)), 0, func(err error) {
			if err == nil {
				acks.add(ch, p)
			}
			results <- err
		})
	}
	<-short.Done()
	time.Sleep(200 * time.Millisecond) // the client notices the expired context
	fault.Remove()
	for range others {
		require.NoError(t, <-results)
	}
	<-first // its outcome does not matter; it must not have failed the others
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
}

// TestChainConfigMustFitTheTopic refuses a config update whose
// AbsoluteMaxBytes the topic could not carry (ErrBadConfig), and accepts
// one just within it.
func TestChainConfigMustFitTheTopic(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 30*time.Second)
	const limit = 1 << 20
	c := itCluster(t, ctx, k, consensustest.WithNodes(1),
		consensustest.WithConsenterOpts(consensus.WithTopicSettings(consensus.TopicSettings{ReplicationFactor: 3, MinInsyncReplicas: 2, MaxMessageBytes: limit})))
	ch := c.Node(0).Chain(consensustest.DefaultChannel)
	update := func(abs uint32) error {
		env, err := c.ConfigUpdate(consensustest.DefaultChannel, func(cfg *ccpb.ChannelConfig) {
			cfg.BatchSize.AbsoluteMaxBytes, cfg.BatchSize.PreferredMaxBytes = abs, abs/2
		})
		require.NoError(t, err)
		return ch.SubmitConfig(ctx, env)
	}
	err := update(4_000_000_000)
	require.ErrorIs(t, err, consensus.ErrBadConfig)
	require.ErrorContains(t, err, "exceed the topic's max.message.bytes 1048576")
	require.ErrorIs(t, update(limit-consensus.RecordOverhead+1), consensus.ErrBadConfig)
	require.NoError(t, update(limit-consensus.RecordOverhead))
}
