package consensus

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
)

// Instrument names. The first two are Fabric's, so that dashboards built
// for Fabric's Kafka consenter keep working.
const (
	MetricLastOffsetPersisted = "consensus_kafka_last_offset_persisted"
	MetricBlockFillDuration   = "blockcutter_block_fill_duration"
	MetricBlocksWritten       = "kafkaconsensus_blocks_written"
	MetricEnvelopesWritten    = "kafkaconsensus_envelopes_written"
	MetricEnvelopesRejected   = "kafkaconsensus_envelopes_rejected"
	MetricRecordsSkipped      = "kafkaconsensus_records_skipped"
	MetricOrderLatency        = "kafkaconsensus_order_latency"
)

const meterName = "github.com/kafkaconsensus/kafkaconsensus/consensus"

type metrics struct {
	channel   metric.MeasurementOption
	attrs     []attribute.KeyValue
	offset    metric.Int64Gauge
	fill      metric.Float64Histogram
	blocks    metric.Int64Counter
	envelopes metric.Int64Counter
	rejected  metric.Int64Counter
	skipped   metric.Int64Counter
	latency   metric.Float64Histogram
}

func newMetrics(p metric.MeterProvider, channel string) (*metrics, error) {
	m := p.Meter(meterName)
	ms := &metrics{attrs: []attribute.KeyValue{attribute.String("channel", channel)}}
	ms.channel = metric.WithAttributes(ms.attrs...)
	var err error
	try := func(f func() error) {
		if err == nil {
			err = f()
		}
	}
	try(func() (e error) {
		ms.offset, e = m.Int64Gauge(MetricLastOffsetPersisted, metric.WithDescription("Offset of the last record persisted in a block."))
		return
	})
	try(func() (e error) {
		ms.fill, e = m.Float64Histogram(MetricBlockFillDuration, metric.WithUnit("s"),
			metric.WithDescription("Time from the first envelope of a batch to the cut of its block."))
		return
	})
	try(func() (e error) {
		ms.blocks, e = m.Int64Counter(MetricBlocksWritten, metric.WithDescription("Blocks appended to the ledger."))
		return
	})
	try(func() (e error) {
		ms.envelopes, e = m.Int64Counter(MetricEnvelopesWritten, metric.WithDescription("Envelopes appended to the ledger."))
		return
	})
	try(func() (e error) {
		ms.rejected, e = m.Int64Counter(MetricEnvelopesRejected, metric.WithDescription("Envelopes refused at ingress or dropped on re-validation, by reason."))
		return
	})
	try(func() (e error) {
		ms.skipped, e = m.Int64Counter(MetricRecordsSkipped, metric.WithDescription("Records of the partition that produced no block, by kind."))
		return
	})
	try(func() (e error) {
		ms.latency, e = m.Float64Histogram(MetricOrderLatency, metric.WithUnit("s"),
			metric.WithDescription("Time from Order to Kafka's acknowledgement."))
		return
	})
	return ms, err
}

func (m *metrics) reason(r string) metric.MeasurementOption {
	return metric.WithAttributes(append(m.attrs[:len(m.attrs):len(m.attrs)], attribute.String("reason", r))...)
}

// validationReason is the rejection reason of an envelope that failed
// ProcessNormal or ProcessConfig: "too_large" or "invalid".
func validationReason(err error) string {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, channelconfig.ErrTooLarge) {
		return "too_large"
	}
	return "invalid"
}

func (m *metrics) blockWritten(ctx context.Context, b Block, fill time.Duration) {
	m.blocks.Add(ctx, 1, m.channel)
	m.envelopes.Add(ctx, int64(len(b.Block.Data.Data)), m.channel)
	m.offset.Record(ctx, b.Metadata.LastOffsetPersisted, m.channel)
	if !b.IsConfig {
		m.fill.Record(ctx, fill.Seconds(), m.channel)
	}
}

// Traces. Order and Configure make a "kafkaconsensus.order" span that ends
// at Kafka's acknowledgement, with the record's offset; when the span is
// valid, its context travels in the record's W3C traceparent header. Every
// node makes a "kafkaconsensus.block" span around signing and appending a
// block, with the offsets of the records it covers, linked to the spans
// whose envelopes it holds.
const (
	spanOrder = "kafkaconsensus.order"
	spanBlock = "kafkaconsensus.block"

	// maxBlockLinks bounds the links of a block span (the OpenTelemetry
	// SDK keeps 128 by default).
	maxBlockLinks = 128
)

var traceContext propagation.TraceContext

// recordCarrier is a propagation.TextMapCarrier over a record's headers.
type recordCarrier struct{ r *kgo.Record }

func (c recordCarrier) Get(key string) string {
	for _, h := range c.r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c recordCarrier) Set(key, value string) {
	for i, h := range c.r.Headers {
		if h.Key == key {
			c.r.Headers[i].Value = []byte(value)
			return
		}
	}
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c recordCarrier) Keys() []string {
	keys := make([]string, len(c.r.Headers))
	for i, h := range c.r.Headers {
		keys[i] = h.Key
	}
	return keys
}

// injectTrace puts the span context of ctx, if valid, in rec's headers.
// Without a tracer (no-op spans are invalid) it costs nothing.
func injectTrace(ctx context.Context, rec *kgo.Record) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		traceContext.Inject(ctx, recordCarrier{rec})
	}
}

// blockTracing makes the block spans of a chain. It is owned by the loop.
type blockTracing struct {
	tracer  trace.Tracer
	lastOff int64 // LastOffsetPersisted of the last block written
	noLinks bool  // the last block span was a no-op: collect no links
	offsets []int64
	links   []trace.Link // of the records at offsets, not yet in a block
}

// consumed notes the trace context of a record the core just took into a
// batch: one that carries a traceparent header and produced no note.
func (t *blockTracing) consumed(r *kgo.Record, notes []Note) {
	if t.noLinks || len(r.Headers) == 0 || len(t.links) >= maxBlockLinks {
		return
	}
	for _, n := range notes {
		if n.Offset == r.Offset {
			return // skipped, dropped or re-submitted: in no block yet
		}
	}
	sc := trace.SpanContextFromContext(traceContext.Extract(context.Background(), recordCarrier{r}))
	if !sc.IsValid() {
		return
	}
	t.offsets = append(t.offsets, r.Offset)
	t.links = append(t.links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.Int64("offset", r.Offset)}})
}

// start starts the span of block b, which holds envelopes of the records
// at offsets first to last (those after the previous block's).
func (t *blockTracing) start(ctx context.Context, channel string, b Block) trace.Span {
	last := b.Metadata.GetLastOffsetPersisted()
	first := t.lastOff + 1
	t.lastOff = last
	n := 0
	for n < len(t.offsets) && t.offsets[n] <= last {
		n++
	}
	var opts []trace.SpanStartOption
	if n > 0 {
		opts = append(opts, trace.WithLinks(t.links[:n]...))
	}
	_, span := t.tracer.Start(ctx, spanBlock, opts...)
	if span.IsRecording() { // no allocation for a no-op tracer
		span.SetAttributes(
			attribute.String("channel", channel),
			attribute.Int64("block.number", int64(b.Block.GetHeader().GetNumber())),
			attribute.Int("block.envelopes", len(b.Block.GetData().GetData())),
			attribute.Bool("block.config", b.IsConfig),
			attribute.Int64("offset.first", first),
			attribute.Int64("offset.last", last),
		)
	}
	m := copy(t.offsets, t.offsets[n:])
	copy(t.links, t.links[n:])
	clear(t.links[m:])
	t.offsets, t.links = t.offsets[:m], t.links[:m]
	t.noLinks = !span.SpanContext().IsValid()
	return span
}

// endSpan ends span with err's status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
