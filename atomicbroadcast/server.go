package atomicbroadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"

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
	window int
	log    *slog.Logger
}

// WithWindow sets how many envelopes of one Broadcast stream may be read
// and not yet answered at once (default DefaultWindow; at least 1).
func WithWindow(n int) Option { return func(c *serverConfig) { c.window = n } }

// WithLogger sets the logger of refused requests; nil, like the default,
// means slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *serverConfig) { c.log = l } }

// Server implements Fabric's orderer.AtomicBroadcast service over a fixed
// set of channels: register it with ab.RegisterAtomicBroadcastServer. See
// the package documentation for what it answers and how it is bounded.
type Server struct {
	ab.UnimplementedAtomicBroadcastServer

	channels   map[string]Channel
	window     int
	log        *slog.Logger
	validators chan struct{} // a token per validation running
}

// NewServer returns a server of channels (by channel ID), which it copies.
// It fails when a channel has no chain or no ledger, or when an option is
// out of range.
func NewServer(channels map[string]Channel, opts ...Option) (*Server, error) {
	cfg := serverConfig{window: DefaultWindow}
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if cfg.window < 1 {
		errs = append(errs, fmt.Errorf("window %d: must be at least 1", cfg.window))
	}
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
	return &Server{channels: own, window: cfg.window, log: cfg.log, validators: make(chan struct{}, runtime.GOMAXPROCS(0))}, nil
}

// Broadcast answers each envelope of the stream with a BroadcastResponse,
// in order. It is a pipeline: the handler reads envelopes; each is
// validated on its own goroutine (signature checks are the costly part,
// and at most GOMAXPROCS run at once per server); a dispatcher hands the
// valid ones to the chain in stream order, so that they keep their order in
// the log; a sender returns the answers in stream order as Kafka
// acknowledges them. At most the window's envelopes are between reading
// and answering.
func (s *Server) Broadcast(stream ab.AtomicBroadcast_BroadcastServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	toDispatch := make(chan *broadcastJob, s.window)
	toSend := make(chan *broadcastJob, s.window)
	inFlight := make(chan struct{}, s.window) // a token per envelope read and not yet answered
	sendDone := make(chan error, 1)
	go s.dispatch(ctx, toDispatch, toSend)
	go func() {
		err := sendInOrder(ctx, stream, toSend, inFlight)
		if err != nil {
			cancel()
		}
		sendDone <- err
	}()
	finish := func(err error) error {
		close(toDispatch)
		if err != nil {
			cancel()
		}
		if serr := <-sendDone; err == nil {
			err = serr
		}
		return err
	}
	for {
		env, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return finish(nil)
		}
		if err != nil {
			return finish(err)
		}
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			return finish(ctx.Err())
		}
		j := &broadcastJob{env: env, validated: make(chan struct{}), answer: make(chan *ab.BroadcastResponse, 1)}
		select {
		case s.validators <- struct{}{}:
		case <-ctx.Done():
			return finish(ctx.Err())
		}
		go func() {
			s.validate(j)
			<-s.validators
			close(j.validated)
		}()
		select {
		case toDispatch <- j:
		case <-ctx.Done():
			return finish(ctx.Err())
		}
	}
}

// broadcastJob is one envelope on its way through a Broadcast stream.
type broadcastJob struct {
	env       *cb.Envelope
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

// validate decodes and validates j's envelope against its channel's
// configuration, answering j if it is refused.
func (s *Server) validate(j *broadcastJob) {
	h, err := protoutil.EnvelopeHeaders(j.env)
	if err != nil {
		s.reject(j, fmt.Errorf("bad envelope: %w", err))
		return
	}
	j.channel = h.ChannelHeader.GetChannelId()
	ch, ok := s.channels[j.channel]
	if !ok {
		s.reject(j, fmt.Errorf("%w: %q", ErrChannelNotFound, j.channel))
		return
	}
	j.isConfig = cb.HeaderType(h.ChannelHeader.GetType()) == cb.HeaderType_CONFIG
	if j.isConfig {
		j.seq, err = ch.Chain.ProcessConfig(j.env)
	} else {
		j.seq, err = ch.Chain.ProcessNormal(j.env)
	}
	if err != nil {
		s.reject(j, err)
		return
	}
	j.chain = ch.Chain
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
		}
		select {
		case out <- j:
		case <-ctx.Done():
			return
		}
	}
}

// order produces a validated envelope; its answer comes with Kafka's
// acknowledgement, or with the chain's refusal (not ready, halted).
func (s *Server) order(ctx context.Context, j *broadcastJob) {
	promise := func(err error) {
		if err != nil {
			s.reject(j, err)
			return
		}
		j.answer <- &ab.BroadcastResponse{Status: cb.Status_SUCCESS}
	}
	if j.isConfig {
		j.chain.ConfigureAsync(ctx, j.env, j.seq, promise)
	} else {
		j.chain.OrderAsync(ctx, j.env, j.seq, promise)
	}
}

// sendInOrder sends the answers of the jobs of in, in order, each once
// known.
func sendInOrder(ctx context.Context, stream ab.AtomicBroadcast_BroadcastServer, in <-chan *broadcastJob, inFlight <-chan struct{}) error {
	for j := range in {
		var r *ab.BroadcastResponse
		select {
		case r = <-j.answer:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := stream.Send(r); err != nil {
			return err
		}
		<-inFlight
	}
	return ctx.Err()
}
