package consensus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// This file is the chain's ingress: validating envelopes against the
// configuration in force (ProcessNormal, ProcessConfig), admitting them
// (readiness, size, sequence) and producing them, many in flight at once,
// each answered when Kafka acknowledges it.

// admit checks that an envelope may be produced now and returns the client
// to produce it with. Only a re-submitted config in flight makes it wait;
// every other obstacle fails fast.
func (ch *Chain) admit(ctx context.Context, env *cb.Envelope, seq uint64) (*kgo.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // produce nothing for a caller that has given up
	}
	for {
		s := ch.st.Load()
		if err := ch.unavailable(s); err != nil {
			return nil, err
		}
		if !s.resubmitting {
			break
		}
		select {
		case <-s.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	cfg := ch.Config()
	if err := checkSize(cfg, env); err != nil {
		return nil, fmt.Errorf("channel %s: %w", ch.channel, err)
	}
	if seq > cfg.Sequence() {
		return nil, fmt.Errorf("%w: envelope validated at sequence %d, channel %s is at %d", ErrStaleConfig, seq, ch.channel, cfg.Sequence())
	}
	return ch.kc.cl, nil
}

// Order produces a normal envelope that was validated against config
// sequence seq (see ProcessNormal) and returns once Kafka acknowledged it:
// from then on it is in the log and every node will order it (or drop it,
// should it fail re-validation under a newer config). A non-nil error means
// the envelope was not acknowledged; wrapping ErrNotAcknowledged, it may
// still be in the log. A ctx done before the call produces nothing and
// returns ctx's error; a ctx that ends while Kafka has not answered returns
// an error wrapping ErrNotAcknowledged and ctx's error.
func (ch *Chain) Order(ctx context.Context, env *cb.Envelope, seq uint64) error {
	return ch.wait(ctx, func(p Promise) { ch.OrderAsync(ctx, env, seq, p) })
}

// Submit validates a normal envelope (ProcessNormal) and orders it
// (Order): the one-call form, for callers that need not validate in one
// place and order in another.
func (ch *Chain) Submit(ctx context.Context, env *cb.Envelope) error {
	seq, err := ch.ProcessNormal(env)
	if err != nil {
		return err
	}
	return ch.Order(ctx, env, seq)
}

// SubmitConfig is Submit for a config envelope: ProcessConfig, then
// Configure.
func (ch *Chain) SubmitConfig(ctx context.Context, env *cb.Envelope) error {
	seq, err := ch.ProcessConfig(env)
	if err != nil {
		return err
	}
	return ch.Configure(ctx, env, seq)
}

// Configure is Order for a config envelope (see ProcessConfig).
func (ch *Chain) Configure(ctx context.Context, env *cb.Envelope, seq uint64) error {
	return ch.wait(ctx, func(p Promise) { ch.ConfigureAsync(ctx, env, seq, p) })
}

// wait submits and waits for the promise or for ctx. When ctx ends first
// the envelope may still be acknowledged later: the error wraps
// ErrNotAcknowledged and ctx's error.
func (ch *Chain) wait(ctx context.Context, submit func(Promise)) error {
	res := make(chan error, 1)
	submit(func(err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		select {
		case err := <-res:
			return err
		default:
			return fmt.Errorf("%w: channel %s: %w", ErrNotAcknowledged, ch.channel, ctx.Err())
		}
	}
}

// OrderAsync is Order without waiting: promise is called once with the
// outcome: before OrderAsync returns when the envelope is refused before
// reaching Kafka, else later from the Kafka client's delivery goroutine,
// which calls promises one at a time, so a promise must return quickly and
// must not block (hand the result to a channel with room, or start a
// goroutine). Many envelopes may be in
// flight at once (see WithMaxInFlight); they are batched into few produce
// requests, and those of one caller keep their order. ctx bounds only the
// wait before the envelope is handed to Kafka (for a re-submitted config,
// or for room in flight): from then on it is not withdrawn, and promise
// reports Kafka's answer, or the halt of the chain.
func (ch *Chain) OrderAsync(ctx context.Context, env *cb.Envelope, seq uint64, promise Promise) {
	ch.produce(ctx, env, seq, ab.KafkaMessageRegular_NORMAL, promise)
}

// ConfigureAsync is Configure without waiting (see OrderAsync).
func (ch *Chain) ConfigureAsync(ctx context.Context, env *cb.Envelope, seq uint64, promise Promise) {
	ch.produce(ctx, env, seq, ab.KafkaMessageRegular_CONFIG, promise)
}

var recordKey = []byte("0")

func (ch *Chain) produce(ctx context.Context, env *cb.Envelope, seq uint64, class ab.KafkaMessageRegular_Class, promise Promise) {
	start := time.Now()
	ctx, span := ch.orderSpans.start(ctx, ch.tracer, start)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("channel", ch.channel), attribute.String("class", class.String()))
	}
	cl, err := ch.admit(ctx, env, seq)
	if err != nil {
		ch.fail(ctx, span, promise, err)
		return
	}
	select {
	case ch.inflight <- struct{}{}:
	case <-ctx.Done():
		ch.fail(ctx, span, promise, ctx.Err())
		return
	case <-ch.ctx.Done():
		ch.fail(ctx, span, promise, ch.Err())
		return
	}
	p := getPending()
	p.ch, p.ctx, p.span, p.start, p.promise = ch, ctx, span, start, promise
	p.rec = kgo.Record{Topic: ch.topic, Partition: 0, Key: recordKey, Value: appendRegular(p.rec.Value, env, seq, class)}
	injectTrace(ctx, &p.rec)
	// The record gets the chain's context, not the caller's: franz-go fails
	// every record buffered behind one whose context ends, so a caller
	// giving up would fail other callers' envelopes (and the chain's own
	// messages). Once handed to Kafka, an envelope is not withdrawn; Order
	// stops waiting for it when its caller's context ends.
	cl.Produce(ch.ctx, &p.rec, p.done)
}

// pending is an envelope handed to Kafka: its record and what its promise
// needs. Pendings are recycled once Kafka answered, when franz-go no longer
// reads the record, so that an Order allocates neither a record nor a
// closure.
type pending struct {
	rec     kgo.Record
	ch      *Chain
	ctx     context.Context
	span    trace.Span
	start   time.Time
	promise Promise
	done    func(*kgo.Record, error) // p.answered, bound once
}

var pendingPool sync.Pool

func init() {
	pendingPool.New = func() any {
		p := new(pending)
		p.done = p.answered
		return p
	}
}

func getPending() *pending { return pendingPool.Get().(*pending) }

// answered is franz-go's promise for p's record.
func (p *pending) answered(r *kgo.Record, err error) {
	ch, ctx, span, promise := p.ch, p.ctx, p.span, p.promise
	<-ch.inflight
	if err != nil && ch.ctx.Err() != nil {
		// The chain halted with the envelope in flight: say so, not what
		// closing the client made of it.
		err = fmt.Errorf("%w: %w", ErrNotAcknowledged, ch.Err())
	} else if err != nil {
		err = fmt.Errorf("%w: channel %s: %w", ErrNotAcknowledged, ch.channel, err)
		span.SetStatus(codes.Error, err.Error())
	} else {
		if span.IsRecording() {
			span.SetAttributes(attribute.Int64("offset", r.Offset))
		}
		ch.metrics.latency.Record(ctx, time.Since(p.start).Seconds(), ch.metrics.channel)
	}
	span.End()
	p.recycle()
	promise(err)
}

// recycle puts p back for another envelope, keeping its value buffer when
// it is of a reasonable size.
func (p *pending) recycle() {
	v := p.rec.Value
	if cap(v) > maxPooledValue {
		v = nil
	}
	*p = pending{done: p.done}
	p.rec.Value = v[:0]
	pendingPool.Put(p)
}

// fail ends an envelope refused before it reached Kafka.
func (ch *Chain) fail(ctx context.Context, span trace.Span, promise Promise, err error) {
	ch.metrics.rejected.Add(ctx, 1, ch.metrics.reason(reasonOf(err)))
	span.SetStatus(codes.Error, err.Error())
	span.End()
	promise(err)
}

// reasonOf is the metrics reason of an envelope refused with err.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrHalted):
		return "halted"
	case errors.Is(err, ErrNotReady):
		return "not_ready"
	case errors.Is(err, ErrStaleConfig):
		return "stale_config"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "invalid"
	}
}

// ProcessNormal validates a normal envelope against the configuration in
// force and returns its sequence, to pass to Order: its size against
// AbsoluteMaxBytes (ErrTooLarge), then ChannelConfig.ValidateNormal (with
// the default configuration: headers, channel, signature, the Writers
// policy).
func (ch *Chain) ProcessNormal(env *cb.Envelope) (uint64, error) {
	return ch.process(env, func(cfg ChannelConfig) error { return cfg.ValidateNormal(env) })
}

// ProcessNormalHeaders is ProcessNormal of env whose headers h the caller
// decoded with protoutil.EnvelopeHeaders (to route env, as Broadcast
// does): a configuration that is a HeadersValidator validates env with h
// instead of decoding them again. h must be what protoutil.EnvelopeHeaders
// returned for env.
func (ch *Chain) ProcessNormalHeaders(env *cb.Envelope, h *protoutil.Headers) (uint64, error) {
	return ch.process(env, func(cfg ChannelConfig) error {
		if hv, ok := cfg.(HeadersValidator); ok && h != nil {
			return hv.ValidateNormalHeaders(env, h)
		}
		return cfg.ValidateNormal(env)
	})
}

// ProcessConfig validates a config envelope against the configuration in
// force and returns its sequence, to pass to Configure: its size, then
// ChannelConfig.ValidateConfig.
func (ch *Chain) ProcessConfig(env *cb.Envelope) (uint64, error) {
	return ch.process(env, func(cfg ChannelConfig) error {
		next, err := cfg.ValidateConfig(env)
		if err != nil {
			return err
		}
		return ch.checkFits(next)
	})
}

// ProcessConfigUpdate handles a Fabric CONFIG_UPDATE envelope, as
// Fabric's orderer does: the configuration in force (a ConfigUpdater)
// validates the update and computes the CONFIG envelope that applies it,
// signed by this node's signer; that envelope then passes ProcessConfig.
// It returns the CONFIG envelope and its sequence, to pass to Configure.
// Without a ConfigUpdater configuration or a signer the error wraps
// ErrNoConfigUpdates.
func (ch *Chain) ProcessConfigUpdate(env *cb.Envelope) (*cb.Envelope, uint64, error) {
	u, ok := ch.Config().(ConfigUpdater)
	switch {
	case !ok:
		return nil, 0, fmt.Errorf("%w: channel %s: its configuration (%T) has no CONFIG_UPDATE processing; send a CONFIG envelope", ErrNoConfigUpdates, ch.channel, ch.Config())
	case ch.cfg.signer == nil:
		return nil, 0, fmt.Errorf("%w: channel %s: the node has no signer for the CONFIG envelope", ErrNoConfigUpdates, ch.channel)
	}
	if err := checkSize(ch.Config(), env); err != nil {
		return nil, 0, fmt.Errorf("channel %s: %w", ch.channel, err)
	}
	out, err := u.ProcessConfigUpdate(env, ch.cfg.signer)
	if err != nil {
		ch.metrics.rejected.Add(ch.ctx, 1, ch.metrics.reason(reasonOf(err)))
		return nil, 0, fmt.Errorf("channel %s: %w", ch.channel, err)
	}
	seq, err := ch.ProcessConfig(out)
	return out, seq, err
}

// RecordOverhead is what a record of the topic holds beyond the envelope:
// the KafkaMessage framing, the record and batch headers, the key and a
// trace header. An envelope of AbsoluteMaxBytes plus RecordOverhead must
// fit in the topic's max.message.bytes.
const RecordOverhead = 1 << 10

// checkFits refuses a configuration whose largest envelope would not fit
// in a record of the channel's topic (ErrBadConfig): Kafka would refuse
// every such envelope with MESSAGE_TOO_LARGE after the channel accepted it.
func (ch *Chain) checkFits(next ChannelConfig) error {
	limit := ch.maxRecordBytes.Load()
	if abs := int64(next.BatchLimits().AbsoluteMaxBytes); abs+RecordOverhead > limit {
		return fmt.Errorf("%w: AbsoluteMaxBytes %d and %d bytes of record overhead exceed the topic's max.message.bytes %d",
			ErrBadConfig, abs, RecordOverhead, limit)
	}
	return nil
}

func (ch *Chain) process(env *cb.Envelope, validate func(ChannelConfig) error) (uint64, error) {
	cfg := ch.Config()
	err := checkSize(cfg, env)
	if err == nil {
		err = validate(cfg)
	}
	if err != nil {
		ch.metrics.rejected.Add(ch.ctx, 1, ch.metrics.reason(reasonOf(err)))
		return 0, fmt.Errorf("channel %s: %w", ch.channel, err)
	}
	return cfg.Sequence(), nil
}
