package atomicbroadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Chain is what the server needs of a channel's chain; *consensus.Chain
// satisfies it.
type Chain interface {
	// Config returns the channel configuration in force. Deliver
	// authorises its requests with it (see DeliverAuthorizer).
	Config() consensus.ChannelConfig
	// ProcessNormal validates a normal envelope and returns the config
	// sequence to order it at; its error says why the envelope is refused
	// (see StatusOf).
	ProcessNormal(env *cb.Envelope) (uint64, error)
	// ProcessConfig is ProcessNormal for a config envelope.
	ProcessConfig(env *cb.Envelope) (uint64, error)
	// ProcessConfigUpdate validates a CONFIG_UPDATE envelope and returns
	// the CONFIG envelope that applies it, with the config sequence to
	// order that at. A channel whose configuration cannot process updates
	// refuses them with an error wrapping consensus.ErrNoConfigUpdates.
	ProcessConfigUpdate(env *cb.Envelope) (*cb.Envelope, uint64, error)
	// OrderAsync produces a validated normal envelope and calls promise
	// once with the outcome, without blocking on Kafka. It is the one
	// check of availability: a chain that cannot take envelopes now
	// refuses them through promise with an error wrapping
	// consensus.ErrNotReady or consensus.ErrHalted.
	OrderAsync(ctx context.Context, env *cb.Envelope, seq uint64, promise consensus.Promise)
	// ConfigureAsync is OrderAsync for a config envelope.
	ConfigureAsync(ctx context.Context, env *cb.Envelope, seq uint64, promise consensus.Promise)
	// Errored returns a channel that is closed while the chain cannot
	// consume from Kafka, and once it has halted. A STRICT Deliver request
	// is refused, or cut, when it is closed.
	Errored() <-chan struct{}
}

var _ Chain = (*consensus.Chain)(nil)

// HeadersProcessor is the optional interface of a Chain that validates a
// normal envelope with the headers Broadcast decoded to route it, instead
// of decoding them again (*consensus.Chain implements it). Broadcast uses
// it in place of ProcessNormal when the chain has it.
type HeadersProcessor interface {
	// ProcessNormalHeaders is ProcessNormal of env, whose headers h are
	// what protoutil.EnvelopeHeaders returned for env.
	ProcessNormalHeaders(env *cb.Envelope, h *protoutil.Headers) (uint64, error)
}

var _ HeadersProcessor = (*consensus.Chain)(nil)

// Channel is a channel the server serves: its chain, which Broadcast
// orders with, and the ledger the chain writes, which Deliver reads.
type Channel struct {
	Chain  Chain
	Ledger ledger.Reader
}

// DefaultWindow is how many envelopes of one Broadcast stream may be
// between reading and answering at once, unless WithWindow says otherwise.
const DefaultWindow = 1000

// Option configures a Server.
type Option func(*serverConfig)

type serverConfig struct {
	window       int
	streamBudget int64
	budget       int64
	maxBroadcast int
	maxDeliver   int
	idleTimeout  time.Duration
	binding      TLSBinding
	throttle     Throttle
	log          *slog.Logger
	now          func() time.Time
}

// WithWindow sets how many envelopes of one Broadcast stream may be read
// and not yet answered at once (default DefaultWindow; at least 1).
func WithWindow(n int) Option { return func(c *serverConfig) { c.window = n } }

// WithStreamBudget sets how many bytes of envelopes one Broadcast stream
// may hold, from reading each until its answer is sent (default
// DefaultStreamBudget; at least 1). A stream that holds that much is not
// read until answers are sent.
func WithStreamBudget(bytes int64) Option { return func(c *serverConfig) { c.streamBudget = bytes } }

// WithBudget sets how many bytes of envelopes all Broadcast streams
// together may hold, from reading each until its answer is sent (default
// DefaultBudget; at least the stream budget). While they hold that much,
// no stream is read.
func WithBudget(bytes int64) Option { return func(c *serverConfig) { c.budget = bytes } }

// WithMaxStreams sets how many Broadcast and Deliver streams the server
// serves at once (defaults DefaultMaxBroadcastStreams and
// DefaultMaxDeliverStreams; at least 1): a stream beyond is refused with
// gRPC's RESOURCE_EXHAUSTED.
func WithMaxStreams(broadcast, deliver int) Option {
	return func(c *serverConfig) { c.maxBroadcast, c.maxDeliver = broadcast, deliver }
}

// WithIdleTimeout sets how long a Broadcast stream may go without
// receiving an envelope or sending an answer before the server closes it
// with gRPC's UNAVAILABLE (default DefaultIdleTimeout; must be positive).
// Envelopes not yet answered may still be ordered, as when a connection
// breaks.
func WithIdleTimeout(d time.Duration) Option { return func(c *serverConfig) { c.idleTimeout = d } }

// WithTLSBinding sets which requests must be bound to the TLS client
// certificate of their connection (default BindNone). Use it with a
// gRPC server that requires client certificates (see MutualTLS).
func WithTLSBinding(b TLSBinding) Option { return func(c *serverConfig) { c.binding = b } }

// WithThrottle sets the Broadcast rates of clients and organisations
// (default: none). Rates must not be negative.
func WithThrottle(t Throttle) Option { return func(c *serverConfig) { c.throttle = t } }

// WithLogger sets the logger of refused requests; nil, like the default,
// means slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *serverConfig) { c.log = l } }

// withClock sets the throttle's clock (tests).
func withClock(now func() time.Time) Option { return func(c *serverConfig) { c.now = now } }

// validate rejects the options out of range.
func (c *serverConfig) validate() []error {
	var errs []error
	if c.window < 1 {
		errs = append(errs, fmt.Errorf("window %d: must be at least 1", c.window))
	}
	if c.streamBudget < 1 {
		errs = append(errs, fmt.Errorf("stream budget %d: must be at least 1", c.streamBudget))
	}
	if c.budget < c.streamBudget {
		errs = append(errs, fmt.Errorf("budget %d: must be at least the stream budget %d", c.budget, c.streamBudget))
	}
	if c.maxBroadcast < 1 || c.maxDeliver < 1 {
		errs = append(errs, fmt.Errorf("max streams %d and %d: must be at least 1", c.maxBroadcast, c.maxDeliver))
	}
	if c.idleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("idle timeout %v: must be positive", c.idleTimeout))
	}
	if c.binding < BindNone || c.binding > BindAll {
		errs = append(errs, fmt.Errorf("TLS binding %d: unknown", c.binding))
	}
	if c.throttle.ClientRate < 0 || c.throttle.OrgRate < 0 {
		errs = append(errs, fmt.Errorf("throttle %+v: rates must not be negative", c.throttle))
	}
	return errs
}

// Server implements Fabric's orderer.AtomicBroadcast service over a fixed
// set of channels: register it with ab.RegisterAtomicBroadcastServer. See
// the package documentation for what it answers and how it is bounded.
type Server struct {
	ab.UnimplementedAtomicBroadcastServer

	channels     map[string]Channel
	window       int
	streamBudget int64
	budget       *budget // bytes of envelopes held by all Broadcast streams
	idleTimeout  time.Duration
	binding      TLSBinding
	throttle     *throttler // nil: no throttling
	log          *slog.Logger
	validators   *validators   // run the validations, at most GOMAXPROCS at once
	broadcasts   chan struct{} // a token per Broadcast stream served
	delivers     chan struct{} // a token per Deliver stream served
}

// NewServer returns a server of channels (by channel ID), which it copies.
// It fails when a channel has no chain or no ledger, or when an option is
// out of range.
func NewServer(channels map[string]Channel, opts ...Option) (*Server, error) {
	cfg := serverConfig{
		window:       DefaultWindow,
		streamBudget: DefaultStreamBudget,
		budget:       DefaultBudget,
		maxBroadcast: DefaultMaxBroadcastStreams,
		maxDeliver:   DefaultMaxDeliverStreams,
		idleTimeout:  DefaultIdleTimeout,
		now:          time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	errs := cfg.validate()
	own := make(map[string]Channel, len(channels))
	for id, ch := range channels {
		if ch.Chain == nil || ch.Ledger == nil {
			errs = append(errs, fmt.Errorf("channel %q: Chain and Ledger are required", id))
		}
		own[id] = ch
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("atomicbroadcast: %w", errors.Join(errs...))
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	s := &Server{
		channels:     own,
		window:       cfg.window,
		streamBudget: cfg.streamBudget,
		budget:       newBudget(cfg.budget),
		idleTimeout:  cfg.idleTimeout,
		binding:      cfg.binding,
		log:          cfg.log,
		validators:   newValidators(runtime.GOMAXPROCS(0)),
		broadcasts:   make(chan struct{}, cfg.maxBroadcast),
		delivers:     make(chan struct{}, cfg.maxDeliver),
	}
	if cfg.throttle != (Throttle{}) {
		s.throttle = newThrottler(cfg.throttle, cfg.now)
	}
	return s, nil
}

// openStream takes a token of streams for a new stream of method, or
// refuses it with RESOURCE_EXHAUSTED when they are all taken.
func openStream(streams chan struct{}, method string) (release func(), err error) {
	select {
	case streams <- struct{}{}:
		return func() { <-streams }, nil
	default:
		return nil, status.Errorf(codes.ResourceExhausted, "atomicbroadcast: the server serves at most %d %s streams at once", cap(streams), method)
	}
}

// errIdle is why an idle Broadcast stream is closed.
var errIdle = errors.New("idle")

// Broadcast answers each envelope of the stream with a BroadcastResponse,
// in order. It is a pipeline: a reader receives envelopes while the
// stream's and the server's byte budgets have room; each envelope is
// validated by one of the server's validation goroutines (signature
// checks are the costly part; at most GOMAXPROCS run at once); a
// dispatcher hands the valid ones to the chain in stream order, so that
// they keep their order in the log; a sender returns the answers in stream
// order as Kafka acknowledges them, giving each envelope's bytes back to
// the budgets. At most the window's envelopes are between reading and
// answering. A stream idle for the idle timeout is closed.
func (s *Server) Broadcast(stream ab.AtomicBroadcast_BroadcastServer) error {
	release, err := openStream(s.broadcasts, "Broadcast")
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	b := &broadcastStream{srv: s, stream: stream, ctx: ctx, own: newBudget(s.streamBudget)}
	b.touch()
	idle := b.watchIdle(cancel)
	defer idle.Stop()

	toDispatch := make(chan *broadcastJob, s.window)
	toSend := make(chan *broadcastJob, s.window)
	inFlight := make(chan struct{}, s.window) // a token per envelope read and not yet answered
	sendDone := make(chan error, 1)
	recvDone := make(chan error, 1)
	go s.dispatch(ctx, toDispatch, toSend)
	go func() {
		err := b.sendInOrder(toSend, inFlight)
		if err != nil {
			cancel(err)
		}
		sendDone <- err
	}()
	go func() {
		err := b.receive(toDispatch, inFlight)
		close(toDispatch)
		if err != nil {
			cancel(err)
		}
		serr := <-sendDone
		// The envelopes read and not answered leave with the stream.
		s.budget.give(b.own.inUse())
		if err == nil {
			err = serr
		}
		recvDone <- err
	}()
	select {
	case err := <-recvDone:
		return err
	case <-ctx.Done():
		// Cut while the reader may be waiting for the client: returning
		// ends the stream, and with it the reader's Recv.
		if err := context.Cause(ctx); errors.Is(err, errIdle) {
			s.log.Warn("closing idle broadcast stream", "timeout", s.idleTimeout)
			return status.Errorf(codes.Unavailable, "atomicbroadcast: nothing received or sent for %v: stream closed", s.idleTimeout)
		}
		return context.Cause(ctx)
	}
}

// broadcastStream is the state of one Broadcast stream.
type broadcastStream struct {
	srv    *Server
	stream ab.AtomicBroadcast_BroadcastServer
	ctx    context.Context
	own    *budget      // bytes of envelopes the stream holds
	active atomic.Int64 // when an envelope was last received or an answer sent (Unix ns)
}

// touch records activity.
func (b *broadcastStream) touch() { b.active.Store(time.Now().UnixNano()) }

// watchIdle cancels the stream with errIdle once it has been inactive for
// the idle timeout.
func (b *broadcastStream) watchIdle(cancel context.CancelCauseFunc) *time.Timer {
	timeout := b.srv.idleTimeout
	var t *time.Timer
	t = time.AfterFunc(timeout, func() {
		if b.ctx.Err() != nil {
			return
		}
		if since := time.Since(time.Unix(0, b.active.Load())); since < timeout {
			t.Reset(timeout - since)
			return
		}
		cancel(errIdle)
	})
	return t
}

// receive reads envelopes while the stream's and the server's budgets
// have room, starts their validation and passes them to out, until the
// stream ends (nil) or fails. Each envelope's bytes are taken from both
// budgets as it is read.
func (b *broadcastStream) receive(out chan<- *broadcastJob, inFlight chan<- struct{}) error {
	s, ctx := b.srv, b.ctx
	for {
		// Backpressure: while the budgets are spent, leave the envelopes
		// in the client's flow-control window.
		if err := b.own.waitRoom(ctx); err != nil {
			return err
		}
		if err := s.budget.waitRoom(ctx); err != nil {
			return err
		}
		env, err := b.stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		b.touch()
		size := int64(proto.Size(env))
		b.own.take(size)
		s.budget.take(size)
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		j := &broadcastJob{env: env, size: size, validated: make(chan struct{}), answer: make(chan *ab.BroadcastResponse, 1)}
		err = s.validators.run(ctx, func() {
			s.validate(ctx, j)
			close(j.validated)
		})
		if err != nil {
			return err
		}
		select {
		case out <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// broadcastJob is one envelope on its way through a Broadcast stream.
type broadcastJob struct {
	env       *cb.Envelope  // the envelope to order; nil once ordered or refused
	size      int64         // bytes taken from the budgets
	validated chan struct{} // closed once the fields below are set
	channel   string
	chain     Chain // nil when refused
	seq       uint64
	isConfig  bool
	answer    chan *ab.BroadcastResponse // the answer, once known
}

// reject answers j with the status of err.
func (s *Server) reject(j *broadcastJob, err error) {
	st := StatusOf(err)
	s.log.Warn("rejecting broadcast", "channel", j.channel, "status", st, "err", err)
	j.answer <- &ab.BroadcastResponse{Status: st, Info: err.Error()}
}

// validate decodes, classifies and validates j's envelope against its
// channel's configuration, and throttles its creator, answering j if it
// is refused. ctx is the stream's (its TLS client certificate).
func (s *Server) validate(ctx context.Context, j *broadcastJob) {
	if err := s.process(ctx, j); err != nil {
		j.env, j.chain = nil, nil
		s.reject(j, err)
	}
}

func (s *Server) process(ctx context.Context, j *broadcastJob) error {
	h, err := protoutil.EnvelopeHeaders(j.env)
	if err != nil {
		return fmt.Errorf("bad envelope: %w", err)
	}
	j.channel = h.ChannelHeader.GetChannelId()
	if s.binding == BindAll {
		if err := checkBinding(ctx, h.ChannelHeader); err != nil {
			return err
		}
	}
	ch, ok := s.channels[j.channel]
	if !ok {
		return fmt.Errorf("%w: %q", ErrChannelNotFound, j.channel)
	}
	class, err := classify(h.ChannelHeader.GetType(), ch.Chain.Config())
	if err != nil {
		return fmt.Errorf("channel %s: %w", j.channel, err)
	}
	switch class {
	case normalMsg:
		if hp, ok := ch.Chain.(HeadersProcessor); ok {
			j.seq, err = hp.ProcessNormalHeaders(j.env, h)
		} else {
			j.seq, err = ch.Chain.ProcessNormal(j.env)
		}
	case configMsg:
		j.isConfig = true
		j.seq, err = ch.Chain.ProcessConfig(j.env)
	case configUpdateMsg:
		// Ordered as the CONFIG envelope that applies the update.
		j.isConfig = true
		j.env, j.seq, err = ch.Chain.ProcessConfigUpdate(j.env)
	}
	if err != nil {
		return err
	}
	if s.throttle != nil {
		if err := s.throttle.allow(h.SignatureHeader.GetCreator()); err != nil {
			return fmt.Errorf("channel %s: %w", j.channel, err)
		}
	}
	j.chain = ch.Chain
	return nil
}

// dispatch hands the valid envelopes of in to their chain, in order, and
// passes every job on to out.
func (s *Server) dispatch(ctx context.Context, in <-chan *broadcastJob, out chan<- *broadcastJob) {
	defer close(out)
	for j := range in {
		select {
		case <-j.validated:
		case <-ctx.Done():
			return
		}
		if j.chain != nil {
			s.order(ctx, j)
			j.env = nil // the chain has what it needs; the answer is all that is left
		}
		select {
		case out <- j:
		case <-ctx.Done():
			return
		}
	}
}

// success is the answer of every envelope ordered. gRPC only reads it (a
// message may be marshalled by several goroutines at once).
var success = &ab.BroadcastResponse{Status: cb.Status_SUCCESS}

// order produces a validated envelope; its answer comes with Kafka's
// acknowledgement, or with the chain's refusal (not ready, halted).
func (s *Server) order(ctx context.Context, j *broadcastJob) {
	promise := func(err error) {
		if err != nil {
			s.reject(j, err)
			return
		}
		j.answer <- success
	}
	if j.isConfig {
		j.chain.ConfigureAsync(ctx, j.env, j.seq, promise)
	} else {
		j.chain.OrderAsync(ctx, j.env, j.seq, promise)
	}
}

// sendInOrder sends the answers of the jobs of in, in order, each once
// known, and gives each envelope's bytes back once its answer is sent.
func (b *broadcastStream) sendInOrder(in <-chan *broadcastJob, inFlight <-chan struct{}) error {
	ctx := b.ctx
	for j := range in {
		var r *ab.BroadcastResponse
		select {
		case r = <-j.answer:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := b.stream.Send(r); err != nil {
			return err
		}
		b.touch()
		b.own.give(j.size)
		b.srv.budget.give(j.size)
		<-inFlight
	}
	return ctx.Err()
}
