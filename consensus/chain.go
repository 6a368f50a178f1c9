package consensus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaconsensus/kafkaconsensus/ledger"
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
	cause        error // why it is errored
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
	// orderSpans skips order spans when the tracer makes none.
	orderSpans spanGate
	creator    []byte

	// Owned by the loop goroutine.
	core       *Core
	health     health
	in         *inbox    // deliveries of the current consumption
	probedAt   time.Time // when an errored chain last read the log
	batchStart time.Time
	tracing    blockTracing
	quiet      *quietLog

	// inflight bounds the envelopes handed to Kafka and not yet answered,
	// so that Order waits for room on its caller's context rather than
	// inside the Kafka client.
	inflight chan struct{}

	// kc is the consenter's Kafka client, shared with its other chains.
	kc *kafkaClient

	// maxRecordBytes is the largest record the topic takes (its
	// max.message.bytes, as configured or as found).
	maxRecordBytes atomic.Int64

	st     atomic.Pointer[state]
	config atomic.Pointer[configBox]
	stMu   sync.Mutex // serialises state changes

	ctx     context.Context
	cancel  context.CancelFunc
	started atomic.Bool
	done    chan struct{}
}

type configBox struct{ ChannelConfig }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newChain(channel string, cfg *settings, kc *kafkaClient, l Ledger, core *Core, m *metrics, creator []byte) *Chain {
	ch := &Chain{
		kc:       kc,
		health:   health{brokers: &kc.health},
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
	ch.quiet = newQuietLog(ch.log)
	ch.maxRecordBytes.Store(int64(cfg.topic.MaxMessageBytes))
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
	// The signals of the old state are closed once the new state is
	// published, so that whoever they wake reads the new one.
	var signal []chan struct{}
	wasOpen := old.status == statusReady && !old.resubmitting
	isOpen := s.status == statusReady && !s.resubmitting
	switch {
	case isOpen && !wasOpen:
		signal = append(signal, s.open)
	case !isOpen && wasOpen:
		s.open = make(chan struct{})
	}
	wasErrored := old.status == statusErrored || old.status == statusHalted
	isErrored := s.status == statusErrored || s.status == statusHalted
	switch {
	case isErrored && !wasErrored:
		signal = append(signal, s.errored)
	case !isErrored && wasErrored:
		s.errored = make(chan struct{})
	}
	if s.status == statusHalted {
		if !wasOpen {
			signal = append(signal, s.open) // wake the waiters of the old state; they see the halt
		}
		s.open = closedChan
	}
	ch.st.Store(&s)
	for _, c := range signal {
		close(c)
	}
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

// Ledger returns the ledger the chain writes: read blocks from it (its
// Iterator follows the chain as it grows); do not append to it.
func (ch *Chain) Ledger() Ledger { return ch.ledger }

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

// Available reports, without waiting, whether the chain accepts envelopes
// now: nil, or an error wrapping ErrNotReady (not started, setting up
// Kafka, unable to consume, or a re-submitted config in flight), with the
// cause when there is one, or ErrHalted and the cause of the halt.
func (ch *Chain) Available() error {
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
		if s.cause != nil {
			return fmt.Errorf("%w: channel %s is %v: %w", ErrNotReady, ch.channel, s.status, s.cause)
		}
		return fmt.Errorf("%w: channel %s is %v", ErrNotReady, ch.channel, s.status)
	case statusErrored:
		if s.cause != nil {
			return fmt.Errorf("%w: channel %s cannot consume from kafka: %w", ErrNotReady, ch.channel, s.cause)
		}
		return fmt.Errorf("%w: channel %s cannot consume from kafka", ErrNotReady, ch.channel)
	}
	return nil
}
