package consensus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Ledger is what a chain needs of a ledger: it reads the last block and the
// last config block at start, then appends every block it cuts.
type Ledger interface {
	ledger.Reader
	ledger.Writer
}

// Promise is called once with the outcome of an asynchronous Order or
// Configure: nil once Kafka acknowledged the envelope.
type Promise func(err error)

type status int

const (
	statusNew      status = iota // Start not called
	statusStarting               // setting up Kafka
	statusReady                  // consuming; ingress open unless resubmitting
	statusErrored                // consumption failing
	statusHalted
)

var statusNames = [...]string{"new", "starting", "ready", "errored", "halted"}

func (s status) String() string { return statusNames[s] }

// state is the chain's published state: immutable, swapped whole by the
// loop, read lock-free by Order and friends. The signal channels are derived
// from it: open is closed when ingress is open, errored when the chain
// cannot consume, done when it halted.
type state struct {
	status       status
	resubmitting bool
	err          error // why it halted
	open         chan struct{}
	errored      chan struct{}
}

// Chain orders the envelopes of one channel through its Kafka partition and
// writes the blocks to its ledger. Create it with Consenter.NewChain, then
// Start it. Its methods are safe for concurrent use.
type Chain struct {
	channel string
	topic   string
	cfg     *settings
	ledger  Ledger
	log     *slog.Logger
	metrics *metrics
	tracer  trace.Tracer
	creator []byte

	// Owned by the loop goroutine.
	core        *Core
	nextConsume int64 // offset of the next record expected
	health      health
	erroredAt   time.Time // when the chain last became errored
	batchStart  time.Time
	tracing     blockTracing

	// inflight bounds the envelopes handed to Kafka and not yet answered,
	// so that Order waits for room on its caller's context rather than
	// inside the Kafka client.
	inflight chan struct{}

	st     atomic.Pointer[state]
	config atomic.Pointer[configBox]
	client atomic.Pointer[kgo.Client]
	stMu   sync.Mutex // serialises state changes

	ctx     context.Context
	cancel  context.CancelFunc
	started atomic.Bool
	done    chan struct{}
}

type configBox struct{ ChannelConfig }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newChain(channel string, cfg *settings, l Ledger, core *Core, m *metrics, creator []byte) *Chain {
	ch := &Chain{
		channel:  channel,
		topic:    channel,
		cfg:      cfg,
		ledger:   l,
		log:      cfg.logger.With("channel", channel),
		metrics:  m,
		tracer:   cfg.tracers.Tracer(meterName),
		creator:  creator,
		core:     core,
		done:     make(chan struct{}),
		inflight: make(chan struct{}, cfg.maxInFlight),
	}
	ch.tracing = blockTracing{tracer: ch.tracer, lastOff: core.LastOffsetPersisted()}
	ch.ctx, ch.cancel = context.WithCancel(context.Background())
	ch.st.Store(&state{status: statusNew, open: make(chan struct{}), errored: make(chan struct{})})
	ch.config.Store(&configBox{core.Config()})
	return ch
}

// setState publishes a new state derived from the old one.
func (ch *Chain) setState(f func(s *state)) {
	ch.stMu.Lock()
	defer ch.stMu.Unlock()
	old := ch.st.Load()
	if old.status == statusHalted {
		return
	}
	s := *old
	f(&s)
	wasOpen := old.status == statusReady && !old.resubmitting
	isOpen := s.status == statusReady && !s.resubmitting
	switch {
	case isOpen && !wasOpen:
		close(s.open)
	case !isOpen && wasOpen:
		s.open = make(chan struct{})
	}
	wasErrored := old.status == statusErrored || old.status == statusHalted
	isErrored := s.status == statusErrored || s.status == statusHalted
	switch {
	case isErrored && !wasErrored:
		close(s.errored)
	case !isErrored && wasErrored:
		s.errored = make(chan struct{})
	}
	if s.status == statusHalted {
		if !wasOpen {
			close(s.open) // wake the waiters of the old state; they see the halt
		}
		s.open = closedChan
	}
	ch.st.Store(&s)
	if old.status != s.status {
		ch.log.Info("chain state", "from", old.status, "to", s.status)
	}
}

// Channel returns the chain's channel ID.
func (ch *Chain) Channel() string { return ch.channel }

// Config returns the channel configuration in force.
func (ch *Chain) Config() ChannelConfig { return ch.config.Load().ChannelConfig }

// Errored returns a channel that is closed while the chain cannot consume
// its partition (or has halted), and replaced by a fresh open one once
// consumption recovers. Call it again after each close.
func (ch *Chain) Errored() <-chan struct{} { return ch.st.Load().errored }

// Done returns a channel closed once the chain has halted and released its
// resources.
func (ch *Chain) Done() <-chan struct{} { return ch.done }

// Err returns why the chain halted: nil while it runs, ErrHalted after
// Halt, or an error wrapping ErrHalted and the cause after a fatal problem.
func (ch *Chain) Err() error { return ch.st.Load().err }

// Height returns the number of blocks the chain has written.
func (ch *Chain) Height() uint64 { return ch.ledger.Height() }

// Start starts the chain: it sets up Kafka in the background (see
// RetryPolicy) and then consumes. Calling it again does nothing.
func (ch *Chain) Start() {
	if !ch.started.CompareAndSwap(false, true) {
		return
	}
	ch.setState(func(s *state) { s.status = statusStarting })
	go ch.run()
}

// Halt stops the chain and waits until its goroutines and Kafka client are
// gone. Order and Configure then return ErrHalted. It is safe to call more
// than once.
func (ch *Chain) Halt() {
	ch.halt(ErrHalted)
	if ch.started.CompareAndSwap(false, true) {
		close(ch.done) // never started: nothing to wait for
	}
	<-ch.done
}

func (ch *Chain) halt(err error) {
	ch.setState(func(s *state) { s.status, s.err = statusHalted, err })
	ch.cancel()
}

// WaitReady blocks until the chain accepts envelopes: it is set up, can
// consume, and no re-submitted config is in flight. It returns ErrNotReady
// before Start, an error wrapping ErrHalted once halted, or ctx's error.
func (ch *Chain) WaitReady(ctx context.Context) error {
	if !ch.started.Load() {
		return fmt.Errorf("%w: channel %s not started", ErrNotReady, ch.channel)
	}
	for {
		s := ch.st.Load()
		if s.status == statusHalted {
			return s.err
		}
		select {
		case <-s.open:
			if s2 := ch.st.Load(); s2.status == statusReady && !s2.resubmitting {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Ready reports, without waiting, whether the chain accepts envelopes now:
// nil, or an error wrapping ErrNotReady (not started, setting up Kafka,
// unable to consume, or a re-submitted config in flight) or ErrHalted.
func (ch *Chain) Ready() error {
	s := ch.st.Load()
	if err := ch.unavailable(s); err != nil {
		return err
	}
	if s.resubmitting {
		return fmt.Errorf("%w: channel %s waits for a re-submitted config", ErrNotReady, ch.channel)
	}
	return nil
}

// unavailable returns why the chain in state s cannot take envelopes at
// all, or nil.
func (ch *Chain) unavailable(s *state) error {
	switch s.status {
	case statusHalted:
		return s.err
	case statusNew, statusStarting:
		return fmt.Errorf("%w: channel %s is %v", ErrNotReady, ch.channel, s.status)
	case statusErrored:
		return fmt.Errorf("%w: channel %s cannot consume from kafka", ErrNotReady, ch.channel)
	}
	return nil
}

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
	if max := cfg.BatchLimits().AbsoluteMaxBytes; uint64(protoutil.EnvelopeSize(env)) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, channel %s allows %d", ErrTooLarge, protoutil.EnvelopeSize(env), ch.channel, max)
	}
	if seq > cfg.Sequence() {
		return nil, fmt.Errorf("%w: envelope validated at sequence %d, channel %s is at %d", ErrStaleConfig, seq, ch.channel, cfg.Sequence())
	}
	return ch.client.Load(), nil
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
	ctx, span := ch.tracer.Start(ctx, spanOrder)
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
	if err != nil {
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
	ch.metrics.rejected.Add(ctx, 1, ch.metrics.reason(rejectReason(err)))
	span.SetStatus(codes.Error, err.Error())
	span.End()
	promise(err)
}

func rejectReason(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrHalted):
		return "halted"
	case errors.Is(err, ErrNotReady):
		return "not_ready"
	case errors.Is(err, ErrStaleConfig):
		return "stale_config"
	default:
		return "other"
	}
}

// ProcessNormal validates a normal envelope against the configuration in
// force and returns its sequence, to pass to Order.
func (ch *Chain) ProcessNormal(env *cb.Envelope) (uint64, error) {
	cfg := ch.Config()
	if err := cfg.ValidateNormal(env); err != nil {
		ch.metrics.rejected.Add(ch.ctx, 1, ch.metrics.reason(validationReason(err)))
		return 0, err
	}
	return cfg.Sequence(), nil
}

// ProcessConfig validates a config envelope against the configuration in
// force and returns its sequence, to pass to Configure.
func (ch *Chain) ProcessConfig(env *cb.Envelope) (uint64, error) {
	cfg := ch.Config()
	if _, err := cfg.ValidateConfig(env); err != nil {
		ch.metrics.rejected.Add(ch.ctx, 1, ch.metrics.reason(validationReason(err)))
		return 0, err
	}
	return cfg.Sequence(), nil
}

// run is the chain's loop: set up Kafka, then feed every record to the core
// and carry out what it decides. It is the only goroutine that touches the
// core and the ledger's write side.
func (ch *Chain) run() {
	defer close(ch.done)
	defer func() {
		if cl := ch.client.Load(); cl != nil {
			cl.Close()
		}
	}()
	if err := ch.setUp(); err != nil {
		if ch.ctx.Err() == nil {
			ch.log.Error("kafka set-up failed, halting", "err", err)
			ch.halt(fmt.Errorf("%w: channel %s: %w", ErrHalted, ch.channel, err))
		}
		return
	}
	cl := ch.client.Load()
	fetches := make(chan kgo.Fetches)
	var pollers sync.WaitGroup
	pollers.Add(1)
	go func() {
		defer pollers.Done()
		ch.poll(cl, fetches)
	}()
	defer pollers.Wait()

	batch := time.NewTimer(time.Hour)
	batch.Stop()
	defer batch.Stop()
	check := time.NewTicker(min(max(ch.cfg.errorTimeout/4, 10*time.Millisecond), 250*time.Millisecond))
	defer check.Stop()

	for {
		select {
		case <-ch.ctx.Done():
			return
		case fs := <-fetches:
			fs.EachError(func(t string, p int32, err error) {
				ch.health.partitionFailed()
				ch.log.Warn("fetch error", "partition", p, "err", err)
				if errors.Is(err, kerr.OffsetOutOfRange) {
					ch.log.Error("offset out of range: the partition lost records or was recreated", "next", ch.nextConsume)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				if ch.ctx.Err() == nil {
					ch.consume(r, batch)
				}
			})
			if fs.NumRecords() > 0 {
				ch.health.recordConsumed()
			}
		case <-check.C:
			ch.checkHealth(cl)
		case <-batch.C:
			ch.apply(ch.core.TimerFired(), batch)
		}
	}
}

// checkHealth moves the chain between ready and errored: errored once
// consumption has failed for the error timeout, ready again once it works.
// While a partition error persists, it probes with a Connect record, whose
// arrival proves consumption works again, and re-adds the partition, which
// franz-go stops fetching after an offset out of range.
func (ch *Chain) checkHealth(cl *kgo.Client) {
	since, partition := ch.health.failingSince()
	status := ch.st.Load().status
	if since.IsZero() {
		// Back to ready only on a fetch sent after the chain became
		// errored: a response to an older request may still arrive once
		// the brokers are gone.
		if status == statusErrored && ch.health.fetchedSince(ch.erroredAt) {
			ch.log.Info("consuming again")
			ch.setState(func(s *state) { s.status = statusReady })
		}
		return
	}
	if time.Since(since) < ch.cfg.errorTimeout {
		return
	}
	if status != statusErrored {
		ch.log.Warn("cannot consume from kafka, chain errored", "since", since)
		ch.erroredAt = time.Now()
		ch.setState(func(s *state) { s.status = statusErrored })
	}
	if !partition {
		return
	}
	if cl.BufferedProduceRecords() == 0 {
		cl.Produce(ch.ctx, &kgo.Record{Topic: ch.topic, Partition: 0, Key: recordKey, Value: connectMessage}, nil)
	}
	if ch.nextConsume >= 0 {
		cl.RemoveConsumePartitions(map[string][]int32{ch.topic: {0}})
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{ch.topic: {0: kgo.NewOffset().At(ch.nextConsume)}})
	}
}

func (ch *Chain) poll(cl *kgo.Client, out chan<- kgo.Fetches) {
	for {
		fs := cl.PollFetches(ch.ctx)
		if fs.IsClientClosed() || ch.ctx.Err() != nil {
			return
		}
		select {
		case out <- fs:
		case <-ch.ctx.Done():
			return
		}
	}
}

func (ch *Chain) consume(r *kgo.Record, batch *time.Timer) {
	if r.Partition != 0 || r.Topic != ch.topic {
		return
	}
	if ch.nextConsume >= 0 && r.Offset < ch.nextConsume {
		return // delivered again after a consumer restart
	}
	ch.nextConsume = r.Offset + 1
	ready, err := ch.core.Step(Record{Offset: r.Offset, Value: r.Value})
	if len(r.Headers) > 0 {
		ch.tracing.consumed(r, ready.Notes)
	}
	ch.apply(ready, batch)
	if err != nil {
		ch.log.Error("halting", "err", err)
		ch.halt(err)
	}
}

// apply carries out a Ready: append and sign blocks, produce messages, set
// the timer, log and count notes, publish the new config and gate.
func (ch *Chain) apply(r *Ready, batch *time.Timer) {
	ctx := ch.ctx
	now := time.Now()
	for _, b := range r.Blocks {
		span := ch.tracing.start(ctx, ch.channel, b)
		if err := ch.sign(b.Block); err != nil {
			err = fmt.Errorf("%w: channel %s: signing block %d: %w", ErrHalted, ch.channel, b.Block.Header.Number, err)
			endSpan(span, err)
			ch.halt(err)
			return
		}
		if err := ledger.AppendBuilt(ch.ledger, b.Block); err != nil {
			err = fmt.Errorf("%w: channel %s: appending block %d: %w", ErrHalted, ch.channel, b.Block.Header.Number, err)
			endSpan(span, err)
			ch.halt(err)
			return
		}
		span.End()
		fill := time.Duration(0)
		if !ch.batchStart.IsZero() {
			fill = now.Sub(ch.batchStart)
			ch.batchStart = time.Time{}
		}
		ch.metrics.blockWritten(ctx, b, fill)
		if b.IsConfig {
			ch.config.Store(&configBox{ch.core.Config()})
			ch.log.Info("config applied", "block", b.Block.Header.Number, "sequence", ch.core.Config().Sequence())
		}
	}
	if ch.core.Pending() > 0 && ch.batchStart.IsZero() {
		ch.batchStart = now
	}
	cl := ch.client.Load()
	for _, m := range r.Produce {
		rec := &kgo.Record{Topic: ch.topic, Partition: 0, Key: recordKey, Value: encodeMessage(m)}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				ch.log.Warn("producing", "message", m.String(), "err", err)
			}
		})
	}
	switch r.Timer {
	case TimerStart:
		batch.Reset(ch.core.BatchTimeout())
	case TimerStop:
		batch.Stop()
	}
	for _, n := range r.Notes {
		ch.metrics.skipped.Add(ctx, 1, ch.metrics.reason(n.Kind.String()))
		switch n.Kind {
		case NoteSkipped, NoteInvalid, NoteEmptyTimeToCut:
			ch.log.Warn("record not ordered", "kind", n.Kind, "offset", n.Offset, "err", n.Err)
		default:
			ch.log.Debug("record", "kind", n.Kind, "offset", n.Offset)
		}
	}
	if resub := ch.core.Resubmitting(); resub != ch.st.Load().resubmitting {
		ch.setState(func(s *state) { s.resubmitting = resub })
	}
}

// sign adds the node's signature to the block's SIGNATURES slot: over the
// slot's (empty) value, the signature header and the block header bytes.
func (ch *Chain) sign(b *cb.Block) error {
	if ch.cfg.signer == nil {
		return nil
	}
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sh, err := protoutil.Marshal(&cb.SignatureHeader{Creator: ch.creator, Nonce: nonce})
	if err != nil {
		return err
	}
	hb := protoutil.HeaderBytes(b.Header)
	msg := make([]byte, 0, len(sh)+len(hb))
	msg = append(append(msg, sh...), hb...)
	sig, err := ch.cfg.signer.Sign(msg)
	if err != nil {
		return err
	}
	protoutil.SetMetadata(b, cb.BlockMetadataIndex_SIGNATURES, &cb.Metadata{
		Signatures: []*cb.MetadataSignature{{SignatureHeader: sh, Signature: sig}},
	})
	return nil
}

// setUp creates the topic, the client, posts a Connect record and starts
// consuming, retrying each step as the retry policy says.
func (ch *Chain) setUp() error {
	start := time.Now()
	steps := []struct {
		name string
		do   func() error
	}{
		{"create client", ch.newClient},
		{"ensure topic", ch.ensureTopic},
		{"post connect", ch.postConnect},
	}
	for _, st := range steps {
		for attempt := 1; ; attempt++ {
			err := st.do()
			if err == nil {
				break
			}
			var perm *permanentError
			if errors.As(err, &perm) {
				return perm.err
			}
			wait, ok := ch.cfg.retry.next(time.Since(start))
			if !ok {
				return fmt.Errorf("%s: giving up after %v: %w", st.name, time.Since(start).Round(time.Millisecond), err)
			}
			ch.log.Warn("kafka set-up step failed, retrying", "step", st.name, "attempt", attempt, "in", wait, "err", err)
			select {
			case <-time.After(wait):
			case <-ch.ctx.Done():
				return ch.ctx.Err()
			}
		}
	}
	off := kgo.NewOffset().At(ch.core.NextOffset())
	ch.nextConsume = ch.core.NextOffset()
	if ch.core.LastOffsetPersisted() == OffsetBeforeOldest {
		off = kgo.NewOffset().AtStart()
		ch.nextConsume = -1
	}
	ch.client.Load().AddConsumePartitions(map[string]map[int32]kgo.Offset{ch.topic: {0: off}})
	ch.setState(func(s *state) { s.status, s.resubmitting = statusReady, ch.core.Resubmitting() })
	ch.log.Info("chain ready", "height", ch.core.Height(), "next_offset", ch.core.NextOffset(), "setup", time.Since(start).Round(time.Millisecond))
	return nil
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (ch *Chain) newClient() error {
	if ch.client.Load() != nil {
		return nil
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(ch.cfg.seeds...),
		kgo.ClientID(ch.cfg.clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(ch.cfg.linger),
		kgo.ProducerBatchMaxBytes(ch.cfg.topic.MaxMessageBytes),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.WithHooks(&ch.health),
		// Room for every admitted envelope plus the chain's own messages,
		// so that Produce never blocks (see inflight).
		kgo.MaxBufferedRecords(ch.cfg.maxInFlight + 1024),
		kgo.WithLogger(kslog.New(ch.log.With("component", "kgo"))),
	}
	if ch.cfg.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(ch.cfg.tls))
	}
	if len(ch.cfg.sasl) > 0 {
		opts = append(opts, kgo.SASL(ch.cfg.sasl...))
	}
	opts = append(opts, ch.cfg.kgoOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return &permanentError{fmt.Errorf("kafka client options: %w", err)}
	}
	ch.client.Store(cl)
	return nil
}

func (ch *Chain) ensureTopic() error {
	ctx, cancel := context.WithTimeout(ch.ctx, 10*time.Second)
	defer cancel()
	created, err := EnsureTopic(ctx, kadm.NewClient(ch.client.Load()), ch.topic, ch.cfg.topic)
	var unsafe *UnsafeTopicError
	switch {
	case errors.As(err, &unsafe) && !ch.cfg.strictTopic:
		ch.log.Warn("topic has unsafe settings", "err", err)
	case errors.As(err, &unsafe):
		return &permanentError{err}
	case err != nil:
		return err
	case created:
		ch.log.Info("topic created", "topic", ch.topic)
	}
	return nil
}

func (ch *Chain) postConnect() error {
	ctx, cancel := context.WithTimeout(ch.ctx, 10*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: ch.topic, Partition: 0, Key: recordKey, Value: connectMessage}
	return ch.client.Load().ProduceSync(ctx, rec).FirstErr()
}
