package atomicbroadcast

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// DeliverAuthorizer is the optional interface of a consensus.ChannelConfig
// that can authorise Deliver requests. consensus.BundleConfig implements
// it (its channelconfig.Bundle checks the Readers policy), and so does
// fabricconfig.Bundle (/Channel/Readers), for a configuration built on it.
// Deliver refuses every request of a channel whose configuration does not
// implement it with FORBIDDEN, and logs the name of this interface.
type DeliverAuthorizer interface {
	// ValidateDeliver checks a Deliver request, a DELIVER_SEEK_INFO
	// envelope: nil when its creator may read the channel's blocks, else
	// an error whose sentinel says why (see StatusOf): typically
	// channelconfig.ErrForbidden or ErrBadSignature, ErrMalformed or
	// ErrWrongChannel.
	ValidateDeliver(env *cb.Envelope) error
}

var (
	_ DeliverAuthorizer = consensus.BundleConfig{}
	_ DeliverAuthorizer = (*fabricconfig.Bundle)(nil)
)

// authorizeDeliver checks env with cfg's DeliverAuthorizer.
func authorizeDeliver(cfg consensus.ChannelConfig, env *cb.Envelope) error {
	a, ok := cfg.(DeliverAuthorizer)
	if !ok {
		return fmt.Errorf("%w: the channel configuration (%T) does not implement atomicbroadcast.DeliverAuthorizer, so no one may read", channelconfig.ErrForbidden, cfg)
	}
	return a.ValidateDeliver(env)
}

// Deliver serves the stream's seek requests one after the other: for each,
// the blocks asked for, then a status. A request's error_response says what
// happens while its chain is errored (cannot consume from Kafka) or halted:
// STRICT, the default, answers SERVICE_UNAVAILABLE, even in the middle of
// the blocks; BEST_EFFORT goes on serving the blocks the ledger holds (and
// waiting for more), which is what another orderer catching up wants. The
// reader is authorised again whenever the channel's configuration changes
// while it is served.
func (s *Server) Deliver(stream ab.AtomicBroadcast_DeliverServer) error {
	release, err := openStream(s.delivers, "Deliver")
	if err != nil {
		return err
	}
	defer release()
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

// errChainErrored is why a STRICT Deliver request is refused or cut.
var errChainErrored = errors.New("chain cannot consume from kafka or has halted")

// deliverOne serves one seek request, sending blocks with send, and
// returns the final status. A non-nil error means the stream broke (or
// ended) and no status can be sent.
func (s *Server) deliverOne(ctx context.Context, env *cb.Envelope, send func(*cb.Block) error) (cb.Status, error) {
	req, st, err := s.checkSeek(ctx, env)
	if err != nil {
		return s.refuse(st, req.channel, err)
	}
	iterCtx, stop, err := strictContext(ctx, req)
	if err != nil {
		return s.refuse(cb.Status_SERVICE_UNAVAILABLE, req.channel, err)
	}
	defer stop()
	cfg := req.ch.Chain.Config()
	if err := authorizeDeliver(cfg, env); err != nil {
		return s.refuse(StatusOf(err), req.channel, err)
	}
	return s.serveBlocks(ctx, iterCtx, req, cfg, send)
}

// refuse logs a refused seek request and returns its status.
func (s *Server) refuse(st cb.Status, channel string, err error) (cb.Status, error) {
	s.log.Warn("rejecting deliver", "channel", channel, "status", st, "err", err)
	return st, nil
}

// seekRequest is a seek request whose headers, binding, channel and
// SeekInfo were read.
type seekRequest struct {
	env     *cb.Envelope
	channel string
	ch      Channel
	info    *ab.SeekInfo
}

// checkSeek reads env's headers, checks its TLS binding, finds its channel
// and decodes its SeekInfo; on error it returns the status to answer.
func (s *Server) checkSeek(ctx context.Context, env *cb.Envelope) (seekRequest, cb.Status, error) {
	req := seekRequest{env: env}
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return req, cb.Status_BAD_REQUEST, err
	}
	req.channel = h.ChannelHeader.GetChannelId()
	if s.binding != BindNone {
		// Fabric checks the binding with the header, before the channel.
		if err := checkBinding(ctx, h.ChannelHeader); err != nil {
			return req, StatusOf(err), err
		}
	}
	ch, ok := s.channels[req.channel]
	if !ok {
		err := fmt.Errorf("%w: %q", ErrChannelNotFound, req.channel)
		return req, StatusOf(err), err
	}
	req.ch, req.info = ch, new(ab.SeekInfo)
	if err := proto.Unmarshal(h.Payload.GetData(), req.info); err != nil {
		return req, cb.Status_BAD_REQUEST, fmt.Errorf("decoding SeekInfo: %w", err)
	}
	return req, cb.Status_SUCCESS, nil
}

// strictContext returns the context the blocks of req are read with: for
// STRICT (the default), which refuses to serve while the chain is errored
// or halted, one that ends when the chain becomes so; for BEST_EFFORT,
// which serves the blocks written whatever the chain's state, as Fabric
// does, ctx itself. An errored chain's STRICT request is refused.
func strictContext(ctx context.Context, req seekRequest) (context.Context, func(), error) {
	if req.info.GetErrorResponse() == ab.SeekInfo_BEST_EFFORT {
		return ctx, func() {}, nil
	}
	errored := req.ch.Chain.Errored()
	select {
	case <-errored:
		return nil, nil, errChainErrored
	default:
	}
	iterCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-errored:
			cancel(errChainErrored)
		case <-iterCtx.Done():
		}
	}()
	return iterCtx, func() { cancel(nil) }, nil
}

// serveBlocks sends the blocks req asks for, read with iterCtx, checking
// the reader's access again at every configuration change, as Fabric
// does; it returns the final status, or an error when the stream broke.
func (s *Server) serveBlocks(ctx, iterCtx context.Context, req seekRequest, cfg consensus.ChannelConfig, send func(*cb.Block) error) (cb.Status, error) {
	l, channel := req.ch.Ledger, req.channel
	start, stop, err := seekRange(req.info, l.Height())
	if err != nil {
		return s.refuse(cb.Status_BAD_REQUEST, channel, err)
	}
	failIfNotReady := req.info.GetBehavior() == ab.SeekInfo_FAIL_IF_NOT_READY
	it := l.Iterator(start)
	defer it.Close()
	seq := cfg.Sequence()
	for n := start; ; n++ {
		if failIfNotReady && n >= l.Height() {
			return s.refuse(cb.Status_NOT_FOUND, channel, fmt.Errorf("block %d not found: height is %d", n, l.Height()))
		}
		b, err := it.Next(iterCtx)
		switch {
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case iterCtx.Err() != nil:
			return s.refuse(cb.Status_SERVICE_UNAVAILABLE, channel, context.Cause(iterCtx))
		case errors.Is(err, ledger.ErrClosed):
			return s.refuse(cb.Status_SERVICE_UNAVAILABLE, channel, err)
		case err != nil:
			return s.refuse(cb.Status_INTERNAL_SERVER_ERROR, channel, err)
		}
		if cfg = req.ch.Chain.Config(); cfg.Sequence() != seq {
			seq = cfg.Sequence()
			if err := authorizeDeliver(cfg, req.env); err != nil {
				return s.refuse(StatusOf(err), channel, err)
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
