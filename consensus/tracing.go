package consensus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

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

// spanGate skips the order span of every envelope when the tracer makes no
// spans (OpenTelemetry's default, a no-op provider): starting one costs as
// much as a few percent of ordering an envelope. It asks the tracer again
// at most once a second, so a provider installed later is picked up.
type spanGate struct {
	mu      sync.Mutex
	on      atomic.Bool
	checked atomic.Int64 // unix nanoseconds of the last check
}

// start starts an order span when the tracer makes spans, else returns ctx
// and a span that does nothing; now is the time (the caller has it).
func (g *spanGate) start(ctx context.Context, tracer trace.Tracer, now time.Time) (context.Context, trace.Span) {
	if now := now.UnixNano(); now-g.checked.Load() > int64(time.Second) && g.mu.TryLock() {
		// The probe is never ended, so an exporter never sees it.
		_, probe := tracer.Start(context.Background(), "kafkaconsensus.probe")
		g.on.Store(probe.SpanContext().IsValid())
		g.checked.Store(now)
		g.mu.Unlock()
	}
	if !g.on.Load() {
		return ctx, noopSpan
	}
	return tracer.Start(ctx, spanOrder)
}

// noopSpan is a span that records nothing.
var noopSpan = noop.Span{}
