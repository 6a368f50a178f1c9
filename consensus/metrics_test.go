package consensus_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

var quietLogger = slog.New(slog.DiscardHandler)

// TestMetricsAndTraces runs one node with an SDK meter and tracer provider,
// orders envelopes, a config update, an envelope too large and a foreign
// record, and checks every instrument and span against the ledger.
func TestMetricsAndTraces(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() {
		require.NoError(t, tp.Shutdown(context.Background()))
		require.NoError(t, mp.Shutdown(context.Background()))
	})

	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	defer k.Close()
	ca := testutil.NewCA(t, "Org1")
	admin := ca.Issue("admin", testutil.ListedAdmin())
	client := ca.Issue("client")
	const channel = "metrics"
	genesis := testutil.GenesisBlock(t, testutil.ChannelConfig(channel, []*testutil.CA{ca},
		testutil.WithOrdererOrgs(ca), testutil.WithBatchSize(10, 8<<10, 4<<10), testutil.WithBatchTimeout(50*time.Millisecond)))

	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...),
		consensus.WithRetry(consensustest.FastRetryPolicy()), consensus.WithLogger(quietLogger),
		consensus.WithMeterProvider(mp), consensus.WithTracerProvider(tp))
	require.NoError(t, err)
	defer cons.Close()
	l := ledger.NewMemory()
	ch, err := cons.NewChain(channel, l, genesis)
	require.NoError(t, err)
	ch.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ch.WaitReady(ctx))

	ordered, acked := 0, 0
	order := func(n int) {
		for range n {
			env := testutil.Envelope(client, channel, cb.HeaderType_ENDORSER_TRANSACTION, fmt.Appendf(nil, "tx%d", ordered))
			seq, err := ch.ProcessNormal(env)
			require.NoError(t, err)
			require.NoError(t, ch.Order(ctx, env, seq))
			ordered++
			acked++
		}
	}
	order(12)

	big := testutil.Envelope(client, channel, cb.HeaderType_ENDORSER_TRANSACTION, make([]byte, 16<<10))
	// Refused by validation, then by Order itself: both count as too_large.
	_, err = ch.ProcessNormal(big)
	require.ErrorIs(t, err, consensus.ErrTooLarge)
	require.ErrorIs(t, ch.Order(ctx, big, ch.Config().Sequence()), consensus.ErrTooLarge)

	raw, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	require.NoError(t, raw.ProduceSync(ctx, &kgo.Record{Topic: channel, Partition: 0, Value: []byte("not an orderer message")}).FirstErr())
	raw.Close()

	next := ch.Config().(consensus.BundleConfig).Config()
	next.Sequence++
	next.BatchSize.MaxMessageCount = 5
	update, err := channelconfig.NewConfigEnvelope(next, admin.SigningIdentity, admin.SigningIdentity)
	require.NoError(t, err)
	seq, err := ch.ProcessConfig(update)
	require.NoError(t, err)
	require.NoError(t, ch.Configure(ctx, update, seq))
	ordered++
	acked++
	require.Eventually(t, func() bool { return ch.Config().Sequence() == 1 }, 10*time.Second, 5*time.Millisecond)
	order(7)

	countEnvelopes := func() int {
		n := 0
		for i := uint64(1); i < l.Height(); i++ {
			b, err := l.Block(i)
			require.NoError(t, err)
			n += len(b.GetData().GetData())
		}
		return n
	}
	require.Eventually(t, func() bool { return countEnvelopes() == ordered }, 10*time.Second, 5*time.Millisecond)

	// The chain's state and height, observed while it runs.
	var live metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &live))
	states := metricsByName(live)[consensus.MetricChainState].Data.(metricdata.Gauge[int64])
	for _, st := range []string{"new", "starting", "ready", "errored", "halted"} {
		want := int64(0)
		if st == "ready" {
			want = 1
		}
		require.Equal(t, want, dataPoint(t, states.DataPoints, attribute.NewSet(attribute.String("channel", channel), attribute.String("state", st))).Value, st)
	}
	heights := metricsByName(live)[consensus.MetricLedgerHeight].Data.(metricdata.Gauge[int64])
	require.Equal(t, int64(l.Height()), dataPoint(t, heights.DataPoints, attribute.NewSet(attribute.String("channel", channel))).Value)

	cons.Close() // the loop is done: every measurement and span is in

	height := l.Height()
	var blocks []*cb.Block
	var mds []int64 // LastOffsetPersisted of each block, from block 1
	configBlocks := 0
	for i := uint64(1); i < height; i++ {
		b, err := l.Block(i)
		require.NoError(t, err)
		md, err := consensus.KafkaMetadataOf(b)
		require.NoError(t, err)
		require.NotNil(t, md)
		blocks = append(blocks, b)
		mds = append(mds, md.GetLastOffsetPersisted())
		if isConfigBlock(t, b) {
			configBlocks++
		}
	}
	require.Equal(t, 1, configBlocks)

	// Metrics.
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	ms := metricsByName(rm)
	chAttr := attribute.NewSet(attribute.String("channel", channel))

	gauge := ms[consensus.MetricLastOffsetPersisted].Data.(metricdata.Gauge[int64])
	require.Equal(t, mds[len(mds)-1], dataPoint(t, gauge.DataPoints, chAttr).Value)
	require.Equal(t, int64(height-1), sumPoint(t, ms, consensus.MetricBlocksWritten, chAttr))
	require.Equal(t, int64(ordered), sumPoint(t, ms, consensus.MetricEnvelopesWritten, chAttr))
	require.Equal(t, int64(2), sumPoint(t, ms, consensus.MetricEnvelopesRejected,
		attribute.NewSet(attribute.String("channel", channel), attribute.String("reason", "too_large"))))
	require.GreaterOrEqual(t, sumPoint(t, ms, consensus.MetricRecordsSkipped,
		attribute.NewSet(attribute.String("channel", channel), attribute.String("reason", "skipped"))), int64(1))

	fill := ms[consensus.MetricBlockFillDuration].Data.(metricdata.Histogram[float64])
	require.Equal(t, uint64(len(blocks)-configBlocks), dataPoint(t, fill.DataPoints, chAttr).Count)
	latency := ms[consensus.MetricOrderLatency].Data.(metricdata.Histogram[float64])
	lat := dataPoint(t, latency.DataPoints, chAttr)
	require.Equal(t, uint64(acked), lat.Count)
	require.Positive(t, lat.Sum)
	require.Len(t, lat.Bounds, 15, "buckets from 250µs to 10s, not OpenTelemetry's defaults up to 10,000s")
	require.Equal(t, 0.00025, lat.Bounds[0])

	// Traces: one order span per call, the acknowledged ones with their
	// offset; one block span per block, linked to the order spans of its
	// envelopes.
	var orders, blockSpans []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		switch s.Name() {
		case "kafkaconsensus.order":
			orders = append(orders, s)
		case "kafkaconsensus.block":
			blockSpans = append(blockSpans, s)
		}
	}
	require.Len(t, orders, acked+1)
	orderOffsets := map[trace.SpanID]int64{}
	failed := 0
	for _, s := range orders {
		require.Equal(t, channel, attr(s, "channel").AsString())
		if s.Status().Code == codes.Error {
			failed++
			require.Contains(t, s.Status().Description, "too large")
			require.False(t, attr(s, "offset").Type() == attribute.INT64, "a rejected envelope has no offset")
			continue
		}
		require.Equal(t, codes.Unset, s.Status().Code) // success: left unset, as instrumentation should
		require.Equal(t, attribute.INT64, attr(s, "offset").Type(), "span %v has no offset", s.Attributes())
		orderOffsets[s.SpanContext().SpanID()] = attr(s, "offset").AsInt64()
	}
	require.Equal(t, 1, failed)
	require.Len(t, orderOffsets, acked)

	require.Len(t, blockSpans, len(blocks))
	slices.SortFunc(blockSpans, func(a, b sdktrace.ReadOnlySpan) int {
		return int(attr(a, "block.number").AsInt64() - attr(b, "block.number").AsInt64())
	})
	linked := 0
	prev := int64(-1) // the genesis block persists no record
	for i, s := range blockSpans {
		b := blocks[i]
		require.Equal(t, codes.Unset, s.Status().Code)
		require.Equal(t, channel, attr(s, "channel").AsString())
		require.Equal(t, int64(b.Header.Number), attr(s, "block.number").AsInt64())
		require.Equal(t, int64(len(b.Data.Data)), attr(s, "block.envelopes").AsInt64())
		require.Equal(t, isConfigBlock(t, b), attr(s, "block.config").AsBool())
		require.Equal(t, prev+1, attr(s, "offset.first").AsInt64())
		require.Equal(t, mds[i], attr(s, "offset.last").AsInt64())
		require.Len(t, s.Links(), len(b.Data.Data), "block %d: one link per envelope", b.Header.Number)
		for _, lk := range s.Links() {
			off, ok := orderOffsets[lk.SpanContext.SpanID()]
			require.True(t, ok, "block %d links to an unknown span", b.Header.Number)
			require.True(t, prev < off && off <= mds[i], "block %d (offsets %d..%d) links to the order of offset %d", b.Header.Number, prev+1, mds[i], off)
			linked++
		}
		prev = mds[i]
	}
	require.Equal(t, acked, linked, "every acknowledged order is linked from its block")
}

// TestTraceContextOnlyWithTracer checks that Order puts a traceparent
// header in the record only when its span is a real one.
func TestTraceContextOnlyWithTracer(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	defer k.Close()
	ca := testutil.NewCA(t, "Org1")
	client := ca.Issue("client")
	tp := sdktrace.NewTracerProvider()
	defer func() { require.NoError(t, tp.Shutdown(context.Background())) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, c := range []struct {
		channel string
		tracers trace.TracerProvider
		header  bool
	}{{"noop", tracenoop.NewTracerProvider(), false}, {"sdk", tp, true}} {
		genesis := testutil.GenesisBlock(t, testutil.ChannelConfig(c.channel, []*testutil.CA{ca}, testutil.WithBatchTimeout(20*time.Millisecond)))
		cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...),
			consensus.WithRetry(consensustest.FastRetryPolicy()), consensus.WithLogger(quietLogger), consensus.WithTracerProvider(c.tracers))
		require.NoError(t, err)
		l := ledger.NewMemory()
		ch, err := cons.NewChain(c.channel, l, genesis)
		require.NoError(t, err)
		ch.Start()
		require.NoError(t, ch.WaitReady(ctx))
		env := testutil.Envelope(client, c.channel, cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx"))
		seq, err := ch.ProcessNormal(env)
		require.NoError(t, err)
		require.NoError(t, ch.Order(ctx, env, seq))
		require.Eventually(t, func() bool { return l.Height() == 2 }, 10*time.Second, 5*time.Millisecond)
		cons.Close()

		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.channel: {0: kgo.NewOffset().AtStart()}}))
		require.NoError(t, err)
		headers := map[int64]int{}
		for len(headers) < 2 { // the Connect record and the envelope
			fs := cl.PollFetches(ctx)
			require.NoError(t, fs.Err0())
			fs.EachRecord(func(r *kgo.Record) { headers[r.Offset] = len(r.Headers) })
		}
		cl.Close()
		require.Equal(t, 0, headers[0], "%s: the Connect record", c.channel)
		want := 0
		if c.header {
			want = 1
		}
		require.Equal(t, want, headers[1], "%s: the envelope's record", c.channel)
	}
}

func isConfigBlock(t *testing.T, b *cb.Block) bool {
	t.Helper()
	lc, err := protoutil.LastConfigIndex(b)
	require.NoError(t, err)
	return lc == b.Header.Number
}

func metricsByName(rm metricdata.ResourceMetrics) map[string]metricdata.Metrics {
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func dataPoint[T any](t *testing.T, pts []T, set attribute.Set) T {
	t.Helper()
	for _, p := range pts {
		if a := attrsOf(p); a.Equals(&set) {
			return p
		}
	}
	require.FailNow(t, "no data point", "attributes %v in %+v", set.ToSlice(), pts)
	panic("unreachable")
}

func attrsOf(p any) attribute.Set {
	switch p := p.(type) {
	case metricdata.DataPoint[int64]:
		return p.Attributes
	case metricdata.HistogramDataPoint[float64]:
		return p.Attributes
	}
	panic(fmt.Sprintf("data point of type %T", p))
}

func sumPoint(t *testing.T, ms map[string]metricdata.Metrics, name string, set attribute.Set) int64 {
	t.Helper()
	m, ok := ms[name]
	require.True(t, ok, "no metric %s", name)
	return dataPoint(t, m.Data.(metricdata.Sum[int64]).DataPoints, set).Value
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}
