package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Chain is what the AtomicBroadcast service needs of a channel's chain;
// *consensus.Chain satisfies it.
type Chain interface {
	// Config returns the channel configuration in force.
	Config() consensus.ChannelConfig
	// ProcessNormal and ProcessConfig validate an envelope and return the
	// config sequence to order it at.
	ProcessNormal(env *cb.Envelope) (uint64, error)
	ProcessConfig(env *cb.Envelope) (uint64, error)
	// OrderAsync and ConfigureAsync produce the envelope and call promise
	// once with the outcome.
	OrderAsync(ctx context.Context, env *cb.Envelope, seq uint64, promise consensus.Promise)
	ConfigureAsync(ctx context.Context, env *cb.Envelope, seq uint64, promise consensus.Promise)
	// Errored is closed while the chain cannot consume, and once it has
	// halted.
	Errored() <-chan struct{}
}

var _ Chain = (*consensus.Chain)(nil)

// Channel is a channel the server serves: its chain, and the ledger the
// chain writes, which Deliver reads.
type Channel struct {
	Chain  Chain
	Ledger ledger.Reader
}

// DefaultWindow is how many envelopes of one Broadcast stream may await
// Kafka's acknowledgement at once.
const DefaultWindow = 1000

// Server implements Fabric's orderer.AtomicBroadcast service over a fixed
// set of channels.
//
// Broadcast pipelines each stream: it keeps reading, validating and
// producing envelopes while earlier ones await Kafka's acknowledgement (at
// most Window at once), and answers them in order. Deliver serves the
// requests of a stream one after the other, as Fabric does.
type Server struct {
	ab.UnimplementedAtomicBroadcastServer

	channels   map[string]Channel
	window     int
	log        *slog.Logger
	validators chan struct{} // a token per validation running
}

// NewServer returns a server of channels (by channel ID). A window below 1
// means DefaultWindow; a nil logger discards.
func NewServer(channels map[string]Channel, window int, log *slog.Logger) *Server {
	if window < 1 {
		window = DefaultWindow
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{channels: channels, window: window, log: log, validators: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// Broadcast answers each envelope of the stream with a BroadcastResponse,
// in order. It is a pipeline: the handler reads envelopes; each is
// validated on its own goroutine (signature checks are the costly part,
// and at most GOMAXPROCS run at once per server); a dispatcher hands the
// valid ones to the chain in stream order, so that they keep their order in
// the log; a sender returns the answers in stream order as Kafka
// acknowledges them. At most Window envelopes are between reading and
// answering.
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
	chain     Chain
	seq       uint64
	isConfig  bool
	answer    chan *ab.BroadcastResponse // the answer, once known
}

// reject answers j with st.
func (s *Server) reject(j *broadcastJob, st cb.Status, err error) {
	s.log.Warn("rejecting broadcast", "channel", j.channel, "status", st, "err", err)
	j.answer <- &ab.BroadcastResponse{Status: st, Info: err.Error()}
}

// validate decodes and validates j's envelope against its channel's
// configuration, answering j if it is refused.
func (s *Server) validate(j *broadcastJob) {
	h, err := protoutil.EnvelopeHeaders(j.env)
	if err != nil {
		s.reject(j, cb.Status_BAD_REQUEST, fmt.Errorf("bad envelope: %w", err))
		return
	}
	j.channel = h.ChannelHeader.GetChannelId()
	ch, ok := s.channels[j.channel]
	if !ok {
		s.reject(j, cb.Status_NOT_FOUND, fmt.Errorf("channel %q not found", j.channel))
		return
	}
	j.isConfig = cb.HeaderType(h.ChannelHeader.GetType()) == cb.HeaderType_CONFIG
	if j.isConfig {
		j.seq, err = ch.Chain.ProcessConfig(j.env)
	} else {
		j.seq, err = ch.Chain.ProcessNormal(j.env)
	}
	if err != nil {
		s.reject(j, statusOf(err), err)
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
// acknowledgement.
func (s *Server) order(ctx context.Context, j *broadcastJob) {
	select {
	case <-j.chain.Errored():
		s.reject(j, cb.Status_SERVICE_UNAVAILABLE, fmt.Errorf("%w: channel %s cannot consume from kafka", consensus.ErrNotReady, j.channel))
		return
	default:
	}
	promise := func(err error) {
		if err != nil {
			s.reject(j, statusOf(err), err)
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

// statusOf maps an error of validation or ordering to Fabric's Broadcast
// and Deliver statuses.
func statusOf(err error) cb.Status {
	switch {
	case errors.Is(err, consensus.ErrTooLarge):
		return cb.Status_REQUEST_ENTITY_TOO_LARGE
	case errors.Is(err, channelconfig.ErrForbidden), errors.Is(err, channelconfig.ErrBadSignature):
		// Fabric checks signatures in its policy evaluation and answers a
		// missing or bad one as a permission failure.
		return cb.Status_FORBIDDEN
	case errors.Is(err, channelconfig.ErrMalformed),
		errors.Is(err, channelconfig.ErrWrongChannel), errors.Is(err, channelconfig.ErrBadSequence):
		return cb.Status_BAD_REQUEST
	case errors.Is(err, consensus.ErrNotReady), errors.Is(err, consensus.ErrHalted),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return cb.Status_SERVICE_UNAVAILABLE
	case errors.Is(err, consensus.ErrNotAcknowledged), errors.Is(err, consensus.ErrStaleConfig):
		return cb.Status_INTERNAL_SERVER_ERROR
	default:
		return cb.Status_BAD_REQUEST
	}
}

// Deliver serves the stream's seek requests one after the other: for each,
// the blocks asked for, then a status. A request's error_response says what
// happens while its chain is errored (cannot consume from Kafka) or halted:
// STRICT, the default, answers SERVICE_UNAVAILABLE, even in the middle of
// the blocks; BEST_EFFORT goes on serving the blocks the ledger holds (and
// waiting for more), which is what another orderer catching up wants.
func (s *Server) Deliver(stream ab.AtomicBroadcast_DeliverServer) error {
	for {
		env, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		st, err := s.deliverOne(stream.Context(), env, func(b *cb.Block) error {
			return stream.Send(&ab.DeliverResponse{Type: &ab.DeliverResponse_Block{Block: b}})
		})
		if err != nil {
			return err
		}
		if err := stream.Send(&ab.DeliverResponse{Type: &ab.DeliverResponse_Status{Status: st}}); err != nil {
			return err
		}
	}
}

// deliverValidator is what a channel configuration needs to authorise a
// Deliver request; consensus.BundleConfig has it from its
// channelconfig.Bundle.
type deliverValidator interface {
	ValidateDeliver(env *cb.Envelope) error
}

// authorizeDeliver checks env against the Readers policy of cfg.
func authorizeDeliver(cfg consensus.ChannelConfig, env *cb.Envelope) error {
	v, ok := cfg.(deliverValidator)
	if !ok {
		return fmt.Errorf("%w: the channel configuration (%T) cannot authorise Deliver", channelconfig.ErrForbidden, cfg)
	}
	return v.ValidateDeliver(env)
}

// deliverOne serves one seek request, sending blocks with send, and
// returns the final status. A non-nil error means the stream broke (or
// ended) and no status can be sent.
func (s *Server) deliverOne(ctx context.Context, env *cb.Envelope, send func(*cb.Block) error) (cb.Status, error) {
	fail := func(st cb.Status, channel string, err error) (cb.Status, error) {
		s.log.Warn("rejecting deliver", "channel", channel, "status", st, "err", err)
		return st, nil
	}
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return fail(cb.Status_BAD_REQUEST, "", err)
	}
	channel := h.ChannelHeader.GetChannelId()
	ch, ok := s.channels[channel]
	if !ok {
		return fail(cb.Status_NOT_FOUND, channel, fmt.Errorf("channel %q not found", channel))
	}
	info := new(ab.SeekInfo)
	if err := proto.Unmarshal(h.Payload.GetData(), info); err != nil {
		return fail(cb.Status_BAD_REQUEST, channel, fmt.Errorf("decoding SeekInfo: %w", err))
	}
	// STRICT (the default) refuses to serve while the chain is errored or
	// halted, and stops serving when it becomes so; BEST_EFFORT serves the
	// blocks written whatever the chain's state, as Fabric does.
	iterCtx := ctx
	if info.GetErrorResponse() != ab.SeekInfo_BEST_EFFORT {
		errored := ch.Chain.Errored()
		select {
		case <-errored:
			return fail(cb.Status_SERVICE_UNAVAILABLE, channel, errChainErrored)
		default:
		}
		var cancel context.CancelCauseFunc
		iterCtx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		go func() {
			select {
			case <-errored:
				cancel(errChainErrored)
			case <-iterCtx.Done():
			}
		}()
	}
	cfg := ch.Chain.Config()
	if err := authorizeDeliver(cfg, env); err != nil {
		return fail(statusOf(err), channel, err)
	}
	start, stop, err := seekRange(info, ch.Ledger.Height())
	if err != nil {
		return fail(cb.Status_BAD_REQUEST, channel, err)
	}
	failIfNotReady := info.GetBehavior() == ab.SeekInfo_FAIL_IF_NOT_READY
	it := ch.Ledger.Iterator(start)
	defer it.Close()
	seq := cfg.Sequence()
	for n := start; ; n++ {
		if failIfNotReady && n >= ch.Ledger.Height() {
			return fail(cb.Status_NOT_FOUND, channel, fmt.Errorf("block %d not found: height is %d", n, ch.Ledger.Height()))
		}
		b, err := it.Next(iterCtx)
		switch {
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case iterCtx.Err() != nil:
			return fail(cb.Status_SERVICE_UNAVAILABLE, channel, context.Cause(iterCtx))
		case errors.Is(err, ledger.ErrClosed):
			return fail(cb.Status_SERVICE_UNAVAILABLE, channel, err)
		case err != nil:
			return fail(cb.Status_INTERNAL_SERVER_ERROR, channel, err)
		}
		// A configuration change may revoke the reader's access: check
		// again, as Fabric does.
		if cfg = ch.Chain.Config(); cfg.Sequence() != seq {
			seq = cfg.Sequence()
			if err := authorizeDeliver(cfg, env); err != nil {
				return fail(statusOf(err), channel, err)
			}
		}
		if err := send(b); err != nil {
			return 0, err
		}
		if n == stop {
			return cb.Status_SUCCESS, nil
		}
	}
}

// errChainErrored is why a STRICT Deliver request is refused or cut.
var errChainErrored = errors.New("chain cannot consume from kafka or has halted")

// seekRange returns the first and last block numbers a SeekInfo asks for on
// a ledger of the given height, with Fabric's rules: oldest is 0, newest is
// the last block, next_commit the block to be written next; a stop at
// oldest stops at the start; a stop before the start is an error.
func seekRange(info *ab.SeekInfo, height uint64) (start, stop uint64, err error) {
	if info.GetStart() == nil || info.GetStop() == nil {
		return 0, 0, errors.New("SeekInfo without start or stop")
	}
	last := uint64(0)
	if height > 0 {
		last = height - 1
	}
	switch p := info.GetStart().GetType().(type) {
	case *ab.SeekPosition_Oldest:
		start = 0
	case *ab.SeekPosition_Newest:
		start = last
	case *ab.SeekPosition_Specified:
		start = p.Specified.GetNumber()
	case *ab.SeekPosition_NextCommit:
		start = height
	default:
		return 0, 0, errors.New("SeekInfo start of unknown type")
	}
	switch p := info.GetStop().GetType().(type) {
	case *ab.SeekPosition_Oldest:
		stop = start
	case *ab.SeekPosition_Newest:
		stop = last
		if proto.Equal(info.GetStart(), info.GetStop()) {
			stop = start
		}
	case *ab.SeekPosition_Specified:
		stop = p.Specified.GetNumber()
	case *ab.SeekPosition_NextCommit:
		stop = start
		if height > start {
			stop = height
		}
	default:
		return 0, 0, errors.New("SeekInfo stop of unknown type")
	}
	if stop < start {
		return 0, 0, fmt.Errorf("SeekInfo stop %d is before start %d", stop, start)
	}
	return start, stop, nil
}
