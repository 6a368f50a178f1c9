package consensustest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTopic = "ch1"

func startKafka(t *testing.T, opts ...consensustest.KafkaOption) *consensustest.Kafka {
	t.Helper()
	k, err := consensustest.StartKafka(opts...)
	require.NoError(t, err)
	t.Cleanup(k.Close)
	return k
}

func newClient(t *testing.T, k *consensustest.Kafka, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(k.Addrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		kgo.FetchMaxWait(200 * time.Millisecond),
		// kgo refreshes metadata before retrying a failed partition, at
		// most once per MetadataMinAge (5s by default).
		kgo.MetadataMinAge(50 * time.Millisecond),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func createTopic(t *testing.T, ctx context.Context, k *consensustest.Kafka, topic string) {
	t.Helper()
	cl := newClient(t, k)
	_, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, topic)
	require.NoError(t, err)
}

func rec(v string) *kgo.Record {
	return &kgo.Record{Topic: testTopic, Partition: 0, Value: []byte(v)}
}

// consume reads partition 0 of testTopic from offset 0 until it has n
// records or ctx ends; it returns the values and the fetch errors seen.
func consume(t *testing.T, ctx context.Context, k *consensustest.Kafka, n int) ([]string, []error) {
	t.Helper()
	cl := newClient(t, k, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		testTopic: {0: kgo.NewOffset().At(0)},
	}))
	var vals []string
	var errs []error
	for len(vals) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				errs = append(errs, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) { vals = append(vals, string(r.Value)) })
	}
	return vals, errs
}

func TestKafkaProduceConsume(t *testing.T) {
	k := startKafka(t)
	require.Len(t, k.Addrs(), consensustest.DefaultBrokers)
	for _, a := range k.Addrs() {
		require.True(t, strings.HasPrefix(a, "127.0.0.1:"), a)
	}
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)

	p := newClient(t, k)
	var want []string
	for i := range 10 {
		v := "m" + strconv.Itoa(i)
		want = append(want, v)
		r, err := p.ProduceSync(ctx, rec(v)).First()
		require.NoError(t, err)
		require.Equal(t, int64(i), r.Offset)
	}
	got, errs := consume(t, ctx, k, len(want))
	require.Empty(t, errs)
	require.Equal(t, want, got)
}

func TestKafkaFailProduceRetriable(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)
	p := newClient(t, k)

	h := k.FailProduce(2, nil) // kerr.NotEnoughReplicas: kgo retries
	r, err := p.ProduceSync(ctx, rec("a")).First()
	require.NoError(t, err)
	require.Equal(t, int64(0), r.Offset)
	require.Equal(t, 2, h.Hits())
}

func TestKafkaFailProduceNonRetriable(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)
	p := newClient(t, k)

	h := k.FailProduce(1, kerr.InvalidRecord)
	_, err := p.ProduceSync(ctx, rec("rejected")).First()
	require.ErrorIs(t, err, kerr.InvalidRecord)
	require.Equal(t, 1, h.Hits())

	// The fault is used up: the next produce succeeds, and the rejected
	// record was never appended.
	_, err = p.ProduceSync(ctx, rec("accepted")).First()
	require.NoError(t, err)
	got, errs := consume(t, ctx, k, 1)
	require.Empty(t, errs)
	require.Equal(t, []string{"accepted"}, got)
}

func TestKafkaFailProduceUntilRemoved(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)
	p := newClient(t, k)

	h := k.FailProduce(-1, nil)
	done := make(chan error, 1)
	p.Produce(ctx, rec("held"), func(_ *kgo.Record, err error) { done <- err })
	require.NoError(t, h.Wait(ctx, 3)) // retried at least three times
	select {
	case err := <-done:
		t.Fatalf("produce finished while failing: %v", err)
	default:
	}
	h.Remove()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("produce did not recover after Remove")
	}
}

func TestKafkaFailFetch(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)
	p := newClient(t, k)
	require.NoError(t, p.ProduceSync(ctx, rec("a"), rec("b")).FirstErr())

	h := k.FailFetch(2, nil) // kerr.UnknownServerError: surfaces in PollFetches
	got, errs := consume(t, ctx, k, 2)
	require.Equal(t, []string{"a", "b"}, got)
	require.NotEmpty(t, errs)
	for _, err := range errs {
		require.ErrorIs(t, err, kerr.UnknownServerError)
	}
	require.Equal(t, 2, h.Hits())
}

func TestKafkaDropConnections(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)

	var h connHook
	p := newClient(t, k, kgo.WithHooks(&h))
	require.NoError(t, p.ProduceSync(ctx, rec("before")).FirstErr())
	connects := h.connects.Load()
	require.Zero(t, h.disconnects.Load())

	// kgo notices a dropped connection when it next uses it, and then
	// dials again.
	k.DropConnections()
	require.NoError(t, p.ProduceSync(ctx, rec("after")).FirstErr())
	require.Positive(t, h.disconnects.Load())
	require.Greater(t, h.connects.Load(), connects)
	got, errs := consume(t, ctx, k, 2)
	require.Empty(t, errs)
	require.Equal(t, []string{"before", "after"}, got)
}

type connHook struct{ connects, disconnects atomic.Int64 }

func (h *connHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		h.connects.Add(1)
	}
}

func (h *connHook) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { h.disconnects.Add(1) }

func TestKafkaPauseResume(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)
	p := newClient(t, k)
	require.NoError(t, p.ProduceSync(ctx, rec("before")).FirstErr())

	k.Pause()
	for node := range int32(len(k.Addrs())) {
		require.True(t, k.Paused(node))
	}

	// Nothing gets through while paused.
	done := produceHeld(t, ctx, p, rec("during"))

	// After Resume the held record is delivered.
	require.NoError(t, k.Resume())
	require.False(t, k.Paused(0))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("produce did not recover after Resume")
	}
	got, errs := consume(t, ctx, k, 2)
	require.Empty(t, errs)
	require.Equal(t, []string{"before", "during"}, got)
}

func TestKafkaPauseOneBroker(t *testing.T) {
	k := startKafka(t)
	k.Pause(1)
	require.False(t, k.Paused(0))
	require.True(t, k.Paused(1))
	require.False(t, k.Paused(2))
	require.False(t, k.Paused(7))

	ctx := testCtx(t, 10*time.Second)
	// A client that only knows the paused broker cannot reach the cluster.
	only1, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()[1]))
	require.NoError(t, err)
	defer only1.Close()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	require.Error(t, only1.Ping(short))
	cancel()
	// One that knows another broker can.
	only0, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()[0]))
	require.NoError(t, err)
	defer only0.Close()
	require.NoError(t, only0.Ping(ctx))

	require.NoError(t, k.Resume(1))
	require.NoError(t, only1.Ping(ctx))
}

func TestKafkaDataDir(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t, 20*time.Second)

	k1, err := consensustest.StartKafka(consensustest.WithDataDir(dir))
	require.NoError(t, err)
	func() {
		defer k1.Close()
		createTopic(t, ctx, k1, testTopic)
		p, err := kgo.NewClient(kgo.SeedBrokers(k1.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		require.NoError(t, err)
		defer p.Close()
		require.NoError(t, p.ProduceSync(ctx, rec("x"), rec("y"), rec("z")).FirstErr())
	}()

	k2 := startKafka(t, consensustest.WithDataDir(dir))
	got, errs := consume(t, ctx, k2, 3)
	require.Empty(t, errs)
	require.Equal(t, []string{"x", "y", "z"}, got)
}

func TestKafkaOptions(t *testing.T) {
	_, err := consensustest.StartKafka(consensustest.WithBrokers(0))
	require.ErrorContains(t, err, "at least one broker")
	_, err = consensustest.StartKafka(consensustest.WithBrokers(2), consensustest.WithSeedPorts(0))
	require.ErrorContains(t, err, "contradicts")
	_, err = consensustest.StartKafka(consensustest.WithSeedPorts(70000))
	require.ErrorContains(t, err, "invalid port")

	k := startKafka(t, consensustest.WithBrokers(1))
	require.Len(t, k.Addrs(), 1)

	port := freePort(t)
	kp := startKafka(t, consensustest.WithSeedPorts(port, 0))
	require.Len(t, kp.Addrs(), 2)
	require.Equal(t, fmt.Sprintf("127.0.0.1:%d", port), kp.Addrs()[0])

	for _, host := range []string{"0.0.0.0", "::", "localhost", "not-an-ip"} {
		_, err = consensustest.StartKafka(consensustest.WithListenHost(host))
		require.ErrorContains(t, err, "WithListenHost", host)
	}
}

// TestKafkaListenHost starts the brokers on another address than
// 127.0.0.1: they listen and advertise it, and clients produce and consume
// through it, also after a pause.
func TestKafkaListenHost(t *testing.T) {
	const host = "127.0.0.2" // loopback, but not kfake's 127.0.0.1
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Skipf("no address %s on this machine: %v", host, err)
	}
	ln.Close()
	k := startKafka(t, consensustest.WithListenHost(host))
	for _, a := range k.Addrs() {
		require.True(t, strings.HasPrefix(a, host+":"), a)
	}
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)
	p := newClient(t, k)
	_, err = p.ProduceSync(ctx, rec("a")).First()
	require.NoError(t, err)
	k.Pause()
	k.Resume()
	_, err = p.ProduceSync(ctx, rec("b")).First()
	require.NoError(t, err)
	got, errs := consume(t, ctx, k, 2)
	require.Empty(t, errs)
	require.Equal(t, []string{"a", "b"}, got)

	// Metadata names the brokers by the host they listen on.
	m, err := kadm.NewClient(p).BrokerMetadata(ctx)
	require.NoError(t, err)
	for _, b := range m.Brokers {
		require.Equal(t, host, b.Host)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// produceHeld checks that the brokers of p are unreachable: a ping fails,
// and r, produced now, stays unanswered. Its outcome arrives on the channel
// returned once the brokers come back.
func produceHeld(t *testing.T, ctx context.Context, p *kgo.Client, r *kgo.Record) <-chan error {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := p.Ping(short)
	cancel()
	require.Error(t, err)

	done := make(chan error, 1)
	p.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		t.Fatalf("produce finished while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	return done
}

// TestKafkaPausedBrokerRefuses checks that a paused broker looks down to
// clients, not misconfigured: franz-go reports a reset or refused
// connection (network errors it retries), not a connection closed at once,
// which it takes for a TLS or SASL mismatch.
func TestKafkaPausedBrokerRefuses(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 20*time.Second)
	createTopic(t, ctx, k, testTopic)
	p := newClient(t, k)
	require.NoError(t, p.ProduceSync(ctx, rec("before")).FirstErr())

	k.Pause()
	for _, cl := range []*kgo.Client{p, newClient(t, k)} {
		short, cancel := context.WithTimeout(ctx, time.Second)
		err := cl.Ping(short)
		cancel()
		require.Error(t, err)
		var first *kgo.ErrFirstReadEOF
		require.False(t, errors.As(err, &first), "%v", err)
		require.NotContains(t, err.Error(), "TLS")
		require.ErrorContains(t, err, "refused")
	}

	require.NoError(t, k.Resume())
	require.NoError(t, p.ProduceSync(ctx, rec("after")).FirstErr())
}

func TestKafkaLeader(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 10*time.Second)
	createTopic(t, ctx, k, testTopic)
	leader, err := k.Leader(testTopic, 0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, leader, int32(0))
	require.Less(t, leader, int32(len(k.Addrs())))

	// Pausing the leader alone stops a client that knows only it.
	k.Pause(leader)
	only, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()[leader]))
	require.NoError(t, err)
	defer only.Close()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	require.Error(t, only.Ping(short))
	cancel()
	require.NoError(t, k.Resume(leader))

	_, err = k.Leader(testTopic, 1)
	require.ErrorContains(t, err, "no partition 1")
	_, err = k.Leader("nope", 0)
	require.Error(t, err)
	k.Close()
	_, err = k.Leader(testTopic, 0)
	require.ErrorContains(t, err, "closed")
}

// TestKafkaCloseWhilePaused closes a Kafka whose brokers are paused: the
// brokers' accept loops end (goleak checks), and Resume is then a no-op.
func TestKafkaCloseWhilePaused(t *testing.T) {
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	k.Pause()
	k.Close()
	require.False(t, k.Paused(0))
	require.NoError(t, k.Resume())
}
