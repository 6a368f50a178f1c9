package atomicbroadcast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
)

// This file holds what bounds the memory and the connections of a server:
// the byte budgets of Broadcast, the gRPC server's options and the
// listener that bounds connections. The package documentation says what
// bounds what.

// Defaults of the Server's bounds (see the options of the same names).
const (
	// DefaultStreamBudget is the default WithStreamBudget: bytes of
	// envelopes one Broadcast stream may hold between reading and
	// answering.
	DefaultStreamBudget = 4 << 20
	// DefaultBudget is the default WithBudget: bytes of envelopes all
	// Broadcast streams together may hold between reading and answering.
	DefaultBudget = 64 << 20
	// DefaultMaxBroadcastStreams is the default number of Broadcast
	// streams served at once (WithMaxStreams).
	DefaultMaxBroadcastStreams = 1024
	// DefaultMaxDeliverStreams is the default number of Deliver streams
	// served at once (WithMaxStreams).
	DefaultMaxDeliverStreams = 1024
	// DefaultIdleTimeout is the default WithIdleTimeout: a Broadcast
	// stream that neither received an envelope nor sent an answer for
	// that long is closed.
	DefaultIdleTimeout = 2 * time.Minute
)

// Defaults of the transport (GRPCLimits and LimitListener).
const (
	// DefaultMaxConnections is the connection limit a server should give
	// LimitListener, unless its operator knows better.
	DefaultMaxConnections = 1024
	// DefaultMaxConcurrentStreams is the default GRPCLimits.
	// MaxConcurrentStreams: streams one connection may open at once (a
	// client that opens more waits for one to end).
	DefaultMaxConcurrentStreams = 256
	// DefaultWindowSize is the default GRPCLimits.InitialWindowSize: bytes
	// a client may send on a stream before the server reads them.
	DefaultWindowSize = 64 << 10
	// DefaultConnWindowSize is the default GRPCLimits.
	// InitialConnWindowSize.
	DefaultConnWindowSize = 1 << 20
	// DefaultMaxHeaderListSize is the default GRPCLimits.
	// MaxHeaderListSize: bytes of the headers (metadata) of a stream.
	DefaultMaxHeaderListSize = 64 << 10
	// DefaultConnectionTimeout is the default GRPCLimits.
	// ConnectionTimeout: how long a new connection may take to complete
	// its TLS handshake.
	DefaultConnectionTimeout = 10 * time.Second
	// DefaultKeepaliveMinTime is the default GRPCLimits.KeepaliveMinTime.
	DefaultKeepaliveMinTime = 15 * time.Second
	// DefaultKeepaliveTime is the default GRPCLimits.KeepaliveTime.
	DefaultKeepaliveTime = time.Minute
	// DefaultKeepaliveTimeout is the default GRPCLimits.KeepaliveTimeout.
	DefaultKeepaliveTimeout = 20 * time.Second
	// DefaultMaxConnectionIdle is the default GRPCLimits.
	// MaxConnectionIdle.
	DefaultMaxConnectionIdle = 5 * time.Minute
)

// MaxRecvMsgSize returns the largest message the gRPC server of channels
// must accept (grpc.MaxRecvMsgSize, GRPCLimits.MaxRecvMsgSize): the
// largest AbsoluteMaxBytes of the channels' configurations in force, plus
// consensus.RecordOverhead, which covers an envelope's framing. A larger
// envelope would be refused by the channel anyway; refusing it at gRPC
// spares the server reading it. A configuration update that raises a
// channel's AbsoluteMaxBytes needs a server with a larger limit: call it
// again and restart the server, or give the limit the topics allow
// (consensus.TopicSettings.MaxMessageBytes) from the start. Without
// channels it returns consensus.RecordOverhead.
func MaxRecvMsgSize(channels map[string]Channel) int {
	largest := 0
	for _, ch := range channels {
		if ch.Chain == nil {
			continue
		}
		if cfg := ch.Chain.Config(); cfg != nil {
			largest = max(largest, int(cfg.BatchLimits().AbsoluteMaxBytes))
		}
	}
	return largest + consensus.RecordOverhead
}

// GRPCLimits bound what a gRPC server holds for its clients before a
// handler of the Server sees their messages: message sizes, streams per
// connection, flow-control windows, header sizes, and how long a
// connection may stay silent or idle. A zero field means its default
// (Default...). ServerOptions turns them into grpc.ServerOptions.
type GRPCLimits struct {
	// MaxRecvMsgSize is the largest message received: MaxRecvMsgSize of
	// the channels served. Required.
	MaxRecvMsgSize int
	// MaxSendMsgSize is the largest message sent, a block (default
	// MaxMessageBytes).
	MaxSendMsgSize int
	// MaxConcurrentStreams is the number of streams one connection may
	// have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
	MaxConcurrentStreams uint32
	// InitialWindowSize is the HTTP/2 flow-control window of a stream:
	// what a client may send on a stream the server is not reading. A
	// fixed window turns off gRPC's dynamic windows, which grow to 16 MiB
	// per stream. A message the server reads is always let through whole.
	InitialWindowSize int32
	// InitialConnWindowSize is the flow-control window of a connection.
	InitialConnWindowSize int32
	// MaxHeaderListSize bounds the headers of a stream.
	MaxHeaderListSize uint32
	// ConnectionTimeout bounds a new connection's handshake.
	ConnectionTimeout time.Duration
	// KeepaliveMinTime is the shortest interval at which a client may
	// ping; a client that pings more often is disconnected. Clients may
	// ping without streams.
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how long a connection may be silent before the
	// server pings it; KeepaliveTimeout how long the server then waits for
	// the answer before it closes the connection.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// MaxConnectionIdle is how long a connection may stay without streams
	// before the server closes it.
	MaxConnectionIdle time.Duration
}

// withDefaults returns l with its zero fields set to their defaults.
func (l GRPCLimits) withDefaults() GRPCLimits {
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	set(&l.MaxSendMsgSize, MaxMessageBytes)
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.InitialWindowSize == 0 {
		l.InitialWindowSize = DefaultWindowSize
	}
	if l.InitialConnWindowSize == 0 {
		l.InitialConnWindowSize = DefaultConnWindowSize
	}
	if l.MaxHeaderListSize == 0 {
		l.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	setDur(&l.ConnectionTimeout, DefaultConnectionTimeout)
	setDur(&l.KeepaliveMinTime, DefaultKeepaliveMinTime)
	setDur(&l.KeepaliveTime, DefaultKeepaliveTime)
	setDur(&l.KeepaliveTimeout, DefaultKeepaliveTimeout)
	setDur(&l.MaxConnectionIdle, DefaultMaxConnectionIdle)
	return l
}

// minWindowSize is the smallest flow-control window gRPC takes: HTTP/2's
// default. A smaller one would silently turn the dynamic windows back on.
const minWindowSize = 64<<10 - 1

// ServerOptions returns the grpc.ServerOptions that apply l (its zero
// fields set to their defaults): the message sizes, MaxConcurrentStreams,
// fixed flow-control windows, MaxHeaderListSize, ConnectionTimeout and
// keepalive enforcement (keepalive.EnforcementPolicy and
// keepalive.ServerParameters). It fails when a field is out of range. Add
// the transport credentials, and bound connections with LimitListener.
func ServerOptions(l GRPCLimits) ([]grpc.ServerOption, error) {
	l = l.withDefaults()
	var errs []error
	if l.MaxRecvMsgSize <= 0 {
		errs = append(errs, fmt.Errorf("MaxRecvMsgSize %d: must be positive (see MaxRecvMsgSize)", l.MaxRecvMsgSize))
	}
	if l.MaxSendMsgSize < 0 {
		errs = append(errs, fmt.Errorf("MaxSendMsgSize %d: must be positive", l.MaxSendMsgSize))
	}
	if l.InitialWindowSize < minWindowSize {
		errs = append(errs, fmt.Errorf("InitialWindowSize %d: must be at least %d", l.InitialWindowSize, minWindowSize))
	}
	if l.InitialConnWindowSize < minWindowSize {
		errs = append(errs, fmt.Errorf("InitialConnWindowSize %d: must be at least %d", l.InitialConnWindowSize, minWindowSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ConnectionTimeout", l.ConnectionTimeout}, {"KeepaliveMinTime", l.KeepaliveMinTime},
		{"KeepaliveTime", l.KeepaliveTime}, {"KeepaliveTimeout", l.KeepaliveTimeout},
		{"MaxConnectionIdle", l.MaxConnectionIdle},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("atomicbroadcast: gRPC limits: %w", errors.Join(errs...))
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(l.MaxSendMsgSize),
		grpc.MaxConcurrentStreams(l.MaxConcurrentStreams),
		grpc.InitialWindowSize(l.InitialWindowSize),
		grpc.InitialConnWindowSize(l.InitialConnWindowSize),
		grpc.MaxHeaderListSize(l.MaxHeaderListSize),
		grpc.ConnectionTimeout(l.ConnectionTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.MaxConnectionIdle,
			Time:              l.KeepaliveTime,
			Timeout:           l.KeepaliveTimeout,
		}),
	}, nil
}

// LimitListener returns a listener that has at most n of l's connections
// open at once (n at least 1): when n are open, Accept waits for one to
// close, and new connections wait in the kernel's backlog. Closing the
// listener ends a waiting Accept.
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, max(n, 1)), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{} // a token per open connection
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its listener's slot back when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// budget is a number of bytes that holders take and give back. take never
// blocks: waitRoom is how a reader waits until the budget is not spent,
// and then takes what it read, so that the budget is exceeded by at most
// one message per reader.
type budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	room  chan struct{} // closed when used falls below limit; nil when no one waits
}

func newBudget(limit int64) *budget { return &budget{limit: limit} }

// waitRoom returns once used is below the limit, or with ctx's error.
func (b *budget) waitRoom(ctx context.Context) error {
	for {
		b.mu.Lock()
		if b.used < b.limit {
			b.mu.Unlock()
			return nil
		}
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room := b.room
		b.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take adds n bytes to what is used.
func (b *budget) take(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// give returns n bytes, waking the waiters once there is room.
func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	if b.room != nil && b.used < b.limit {
		close(b.room)
		b.room = nil
	}
	b.mu.Unlock()
}

// inUse returns the bytes in use.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
