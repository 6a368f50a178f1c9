package atomicbroadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// serveWith runs a Server of channels with a gRPC server of gopts on
// loopback, its listener wrapped by wrap when not nil, until the test ends,
// and returns the server and its address.
func serveWith(t *testing.T, channels map[string]Channel, opts []Option, gopts []grpc.ServerOption, wrap func(net.Listener) net.Listener) (*Server, string) {
	t.Helper()
	srv, err := NewServer(channels, append([]Option{quiet}, opts...)...)
	require.NoError(t, err)
	gs := grpc.NewServer(gopts...)
	ab.RegisterAtomicBroadcastServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); wg.Wait() })
	return srv, addr
}

// recordingChain accepts every envelope, answers it at once, and records
// the calls it gets.
type recordingChain struct {
	cfg       consensus.ChannelConfig
	updateErr error // ProcessConfigUpdate's refusal, when set

	mu      sync.Mutex
	calls   []string
	ordered []*cb.Envelope
}

// configOfUpdate is the CONFIG envelope a recordingChain makes of any
// update.
var configOfUpdate = unsignedEnvelope("ch", cb.HeaderType_CONFIG, []byte("made of an update"))

func (r *recordingChain) record(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
}

// takeCalls returns the calls so far and forgets them.
func (r *recordingChain) takeCalls() ([]string, []*cb.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, o := r.calls, r.ordered
	r.calls, r.ordered = nil, nil
	return c, o
}

func (r *recordingChain) Config() consensus.ChannelConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}
func (r *recordingChain) Errored() <-chan struct{} { return nil }
func (r *recordingChain) ProcessNormal(*cb.Envelope) (uint64, error) {
	r.record("ProcessNormal")
	return 0, nil
}
func (r *recordingChain) ProcessConfig(*cb.Envelope) (uint64, error) {
	r.record("ProcessConfig")
	return 0, nil
}
func (r *recordingChain) ProcessConfigUpdate(*cb.Envelope) (*cb.Envelope, uint64, error) {
	r.record("ProcessConfigUpdate")
	if r.updateErr != nil {
		return nil, 0, r.updateErr
	}
	return configOfUpdate, 0, nil
}
func (r *recordingChain) OrderAsync(_ context.Context, env *cb.Envelope, _ uint64, p consensus.Promise) {
	r.mu.Lock()
	r.calls, r.ordered = append(r.calls, "OrderAsync"), append(r.ordered, env)
	r.mu.Unlock()
	p(nil)
}
func (r *recordingChain) ConfigureAsync(_ context.Context, env *cb.Envelope, _ uint64, p consensus.Promise) {
	r.mu.Lock()
	r.calls, r.ordered = append(r.calls, "ConfigureAsync"), append(r.ordered, env)
	r.mu.Unlock()
	p(nil)
}

// updaterConfig is the configuration of a channel that takes CONFIG_UPDATE
// envelopes (Fabric's format).
type updaterConfig struct{ consensus.ChannelConfig }

func (updaterConfig) ProcessConfigUpdate(*cb.Envelope, consensus.Signer) (*cb.Envelope, error) {
	return nil, errors.New("not called")
}

// TestBroadcastClassification sends an envelope of every header type, and
// of 9999 and -1, to a channel of this project's format and to one of
// Fabric's, and checks how each is processed and answered.
func TestBroadcastClassification(t *testing.T) {
	own := &recordingChain{}
	fabric := &recordingChain{cfg: updaterConfig{}}
	noUpdates := &recordingChain{updateErr: fmt.Errorf("%w: channel plain: its configuration has no CONFIG_UPDATE processing", consensus.ErrNoConfigUpdates)}
	c := serve(t, map[string]Chain{"own": own, "fabric": fabric, "plain": noUpdates})

	normal := []string{"ProcessNormal", "OrderAsync"}
	types := slices.Sorted(func(yield func(int32) bool) {
		for v := range cb.HeaderType_name {
			if !yield(v) {
				return
			}
		}
	})
	types = append(types, 9999, -1)
	for _, typ := range types {
		for _, channel := range []string{"own", "fabric"} {
			var (
				want  = cb.Status_BAD_REQUEST
				calls []string
				info  string
			)
			switch cb.HeaderType(typ) {
			case cb.HeaderType_MESSAGE, cb.HeaderType_ENDORSER_TRANSACTION, cb.HeaderType_CHAINCODE_PACKAGE:
				want, calls = cb.Status_SUCCESS, normal
			case cb.HeaderType_CONFIG_UPDATE:
				want, calls = cb.Status_SUCCESS, []string{"ProcessConfigUpdate", "ConfigureAsync"}
			case cb.HeaderType_CONFIG:
				if channel == "own" {
					want, calls = cb.Status_SUCCESS, []string{"ProcessConfig", "ConfigureAsync"}
				} else {
					info = "cannot be processed directly"
				}
			case cb.HeaderType_ORDERER_TRANSACTION:
				info = "ORDERER_TRANSACTION on an application channel"
			case cb.HeaderType_DELIVER_SEEK_INFO:
				info = "DELIVER_SEEK_INFO is a Deliver request"
			default:
				info = fmt.Sprintf("unknown header type %d", typ)
			}
			env := unsignedEnvelope(channel, cb.HeaderType(typ), []byte("data"))
			r := broadcastOne(t, c, env)
			name := fmt.Sprintf("%s on %s", cb.HeaderType(typ), channel)
			require.Equal(t, want, r.GetStatus(), "%s: %s", name, r.GetInfo())
			require.Contains(t, r.GetInfo(), info, name)
			if want != cb.Status_SUCCESS {
				require.Contains(t, r.GetInfo(), ErrMessageType.Error(), name)
			}
			chain := map[string]*recordingChain{"own": own, "fabric": fabric}[channel]
			got, ordered := chain.takeCalls()
			require.Equal(t, calls, got, name)
			switch {
			case cb.HeaderType(typ) == cb.HeaderType_CONFIG_UPDATE:
				// The CONFIG envelope made of the update is ordered, not
				// the update.
				require.Equal(t, []*cb.Envelope{configOfUpdate}, ordered, name)
			case want == cb.Status_SUCCESS:
				require.True(t, proto.Equal(env, ordered[0]), name)
			}
		}
	}

	// A channel whose configuration cannot process updates says so.
	r := broadcastOne(t, c, unsignedEnvelope("plain", cb.HeaderType_CONFIG_UPDATE, nil))
	require.Equal(t, cb.Status_BAD_REQUEST, r.GetStatus(), r.GetInfo())
	require.Contains(t, r.GetInfo(), "consensus: config updates not supported: channel plain: its configuration has no CONFIG_UPDATE processing")
	calls, _ := noUpdates.takeCalls()
	require.Equal(t, []string{"ProcessConfigUpdate"}, calls)
}

// sized returns an unsigned envelope of channel whose proto.Size is n.
func sized(t *testing.T, channel string, n int) *cb.Envelope {
	t.Helper()
	env := unsignedTx(channel, nil)
	env.Signature = make([]byte, n-proto.Size(env))
	for proto.Size(env) > n { // the signature's tag and length
		env.Signature = env.Signature[:len(env.Signature)-1]
	}
	require.Equal(t, n, proto.Size(env))
	return env
}

// TestBroadcastBackpressure checks the byte budgets: a stream is read
// while it and the server hold less than their budgets, each stream
// exceeding the server's by one envelope at most, and bytes come back when
// answers are sent, or when a stream ends.
func TestBroadcastBackpressure(t *testing.T) {
	const size = 1000
	ch := newFakeChain(nil)
	srv, addr := serveWith(t, map[string]Channel{"ch": {Chain: ch, Ledger: ledger.NewMemory()}},
		[]Option{WithStreamBudget(3 * size), WithBudget(4 * size)}, nil, nil)
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(n int) ab.AtomicBroadcast_BroadcastClient {
		stream, err := c.Broadcast(ctx)
		require.NoError(t, err)
		for range n {
			require.NoError(t, stream.Send(sized(t, "ch", size)))
		}
		return stream
	}
	// settled waits until the chain has been handed n envelopes in all,
	// and checks that no more come.
	var promises []consensus.Promise
	settled := func(n int) {
		t.Helper()
		for len(promises) < n {
			promises = append(promises, ch.nextPromise(t))
		}
		time.Sleep(100 * time.Millisecond)
		require.Empty(t, ch.promises, "read beyond the budgets")
	}

	// The stream's budget stops it after 3 envelopes of its 10.
	s1 := open(10)
	settled(3)
	require.Equal(t, int64(3*size), srv.budget.inUse())
	// The server's stops the second stream after 1.
	s2 := open(10)
	settled(4)
	// And a third at once.
	open(1)
	settled(4)
	require.Equal(t, int64(4*size), srv.budget.inUse())

	// An answer sent gives its bytes back: reading goes on, each waiting
	// stream taking at most one envelope beyond the budget.
	promises[0](nil)
	r, err := s1.Recv()
	require.NoError(t, err)
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus())
	promises = promises[1:]
	time.Sleep(100 * time.Millisecond)
	for len(ch.promises) > 0 {
		promises = append(promises, <-ch.promises)
	}
	require.GreaterOrEqual(t, len(promises), 4)
	require.LessOrEqual(t, srv.budget.inUse(), int64(4*size+3*size))

	// Streams that end give back what they held, answered or not.
	s2.CloseSend()
	cancel()
	require.Eventually(t, func() bool { return srv.budget.inUse() == 0 }, 5*time.Second, 10*time.Millisecond)
	for _, p := range promises {
		p(nil) // answers to streams gone
	}
	require.Equal(t, int64(0), srv.budget.inUse())
}

// heapLive returns the bytes of live heap after a full collection.
func heapLive() int64 {
	runtime.GC()
	runtime.GC() // a second cycle empties the sync.Pools (gRPC's buffers)
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestBroadcastMemoryBounded is the attack of a hostile client, scaled
// down: 4 connections, each a Broadcast stream that sends tiny garbage
// envelopes, then large ones of the largest size gRPC accepts, and never
// reads an answer. Without budgets the server would read and hold every
// envelope (256 MiB); with them it holds at most its budget plus one
// envelope per stream, and stops reading: the clients block on gRPC's flow
// control. The heap grows by less than 128 MiB (client and server share
// the process: each blocked client holds one encoded envelope too), and
// comes back when the clients leave.
func TestBroadcastMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 36 MiB or more over loopback")
	}
	const (
		conns   = 4
		tiny    = 2000
		large   = 8
		envSize = 8 << 20
		budget  = 4 << 20
	)
	ch := newFakeChain(nil)
	channels := map[string]Channel{"ch": {Chain: ch, Ledger: ledger.NewMemory()}}
	gopts, err := ServerOptions(GRPCLimits{MaxRecvMsgSize: envSize + consensus.RecordOverhead})
	require.NoError(t, err)
	srv, addr := serveWith(t, channels, []Option{WithStreamBudget(1 << 20), WithBudget(budget)}, gopts,
		func(l net.Listener) net.Listener { return LimitListener(l, conns) })

	before := heapLive()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	payload := make([]byte, envSize-10)
	for i := range payload {
		payload[i] = 0xff // not a Payload: each is refused, once read
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		// The answers fill the client's window, which it does not let
		// grow, and are never read.
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(DefaultWindowSize), grpc.WithInitialConnWindowSize(DefaultWindowSize),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxMessageBytes)))
		require.NoError(t, err)
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, err := ab.NewAtomicBroadcastClient(conn).Broadcast(ctx)
			if err != nil {
				return
			}
			for i := range tiny + large {
				env := &cb.Envelope{Payload: []byte{0xff, 0xff}}
				if i >= tiny {
					env = &cb.Envelope{Payload: payload}
				}
				if stream.Send(env) != nil {
					return
				}
				sent.Add(1)
			}
		}()
	}
	// Wait until the clients are stuck: nothing more is sent or read.
	var last [2]int64
	stable := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Since(stable) < 500*time.Millisecond {
		require.True(t, time.Now().Before(deadline), "the clients did not settle")
		time.Sleep(50 * time.Millisecond)
		if now := [2]int64{sent.Load(), srv.budget.inUse()}; now != last {
			last, stable = now, time.Now()
		}
	}
	require.Less(t, sent.Load(), int64(conns*(tiny+large)), "the server read every envelope")
	require.LessOrEqual(t, srv.budget.inUse(), int64(budget+conns*envSize))
	under := heapLive()
	t.Logf("heap: %d MiB before, %d MiB under attack (%d envelopes sent, %d MiB held)", before>>20, under>>20, sent.Load(), srv.budget.inUse()>>20)
	require.Less(t, under-before, int64(128<<20), "heap growth under attack")

	cancel()
	wg.Wait()
	require.Eventually(t, func() bool { return srv.budget.inUse() == 0 }, 10*time.Second, 10*time.Millisecond)
	payload = nil
	after := heapLive()
	t.Logf("heap: %d MiB after the clients left", after>>20)
	require.Less(t, after-before, int64(16<<20), "heap growth after the clients left")
}

// TestBroadcastIdleTimeout checks that a stream that neither receives nor
// sends for the idle timeout is closed, and that an active one is not.
func TestBroadcastIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	rec := &recordingChain{}
	_, addr := serveWith(t, map[string]Channel{"ch": {Chain: rec, Ledger: ledger.NewMemory()}}, []Option{WithIdleTimeout(idle)}, nil, nil)
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	silent, err := c.Broadcast(ctx)
	require.NoError(t, err)
	start := time.Now()
	_, err = silent.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "nothing received or sent for 200ms")
	require.GreaterOrEqual(t, time.Since(start), idle)

	busy, err := c.Broadcast(ctx)
	require.NoError(t, err)
	for range 8 { // 8 × idle/2: twice the timeout
		require.NoError(t, busy.Send(unsignedTx("ch", nil)))
		r, err := busy.Recv()
		require.NoError(t, err)
		require.Equal(t, cb.Status_SUCCESS, r.GetStatus())
		time.Sleep(idle / 2)
	}
	_, err = busy.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// TestMaxStreams checks that streams beyond the limits are refused with
// RESOURCE_EXHAUSTED, and that an ended stream frees its place.
func TestMaxStreams(t *testing.T) {
	l := ledger.NewMemory()
	appendBlocks(t, l, 1)
	rec := &recordingChain{cfg: readableConfig{}}
	_, addr := serveWith(t, map[string]Channel{"ch": {Chain: rec, Ledger: l}}, []Option{WithMaxStreams(1, 1)}, nil, nil)
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	first, err := c.Broadcast(ctx)
	require.NoError(t, err)
	require.NoError(t, first.Send(unsignedTx("ch", nil)))
	_, err = first.Recv()
	require.NoError(t, err)
	second, err := c.Broadcast(ctx)
	require.NoError(t, err)
	_, err = second.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "at most 1 Broadcast streams")
	require.NoError(t, first.CloseSend())
	_, err = first.Recv()
	require.ErrorIs(t, err, io.EOF)
	require.Eventually(t, func() bool {
		s, err := c.Broadcast(ctx)
		require.NoError(t, err)
		defer s.CloseSend()
		if s.Send(unsignedTx("ch", nil)) != nil {
			return false
		}
		r, err := s.Recv()
		return err == nil && r.GetStatus() == cb.Status_SUCCESS
	}, 5*time.Second, 10*time.Millisecond)

	// A Deliver stream waiting for block 1 holds the one place.
	waiting, err := c.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, waiting.Send(unsignedSeek("ch", &ab.SeekInfo{Start: seekSpecified(1), Stop: seekSpecified(1)})))
	time.Sleep(50 * time.Millisecond)
	_, err = ReadBlocks(ctx, c, unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}), func(*cb.Block) error { return nil })
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "at most 1 Deliver streams")
}

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := LimitListener(inner, 2)
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		clients = append(clients, c)
	}
	a := <-accepted
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection accepted while two are open")
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, a.Close())
	a.Close() // a second Close gives back nothing
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a closed connection did not free its place")
	}
	// Close ends an Accept waiting for a place, and the loop.
	require.NoError(t, ln.Close())
	select {
	case _, ok := <-accepted:
		require.False(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not end with Close")
	}
}

// limitsConfig is a channel configuration with an AbsoluteMaxBytes.
type limitsConfig struct {
	consensus.ChannelConfig
	abs uint32
}

func (c limitsConfig) BatchLimits() blockcutter.Limits {
	return blockcutter.Limits{MaxMessageCount: 10, AbsoluteMaxBytes: c.abs, PreferredMaxBytes: c.abs}
}

// TestServerOptions checks GRPCLimits: the defaults and their checks, and
// that the receive limit derived from the channels lets through the
// largest envelope they allow, and not what they could never take.
func TestServerOptions(t *testing.T) {
	opts, err := ServerOptions(GRPCLimits{MaxRecvMsgSize: 1 << 20})
	require.NoError(t, err)
	require.Len(t, opts, 9)
	require.Equal(t, GRPCLimits{
		MaxRecvMsgSize: 1 << 20, MaxSendMsgSize: MaxMessageBytes, MaxConcurrentStreams: DefaultMaxConcurrentStreams,
		InitialWindowSize: DefaultWindowSize, InitialConnWindowSize: DefaultConnWindowSize, MaxHeaderListSize: DefaultMaxHeaderListSize,
		ConnectionTimeout: DefaultConnectionTimeout, KeepaliveMinTime: DefaultKeepaliveMinTime, KeepaliveTime: DefaultKeepaliveTime,
		KeepaliveTimeout: DefaultKeepaliveTimeout, MaxConnectionIdle: DefaultMaxConnectionIdle,
	}, GRPCLimits{MaxRecvMsgSize: 1 << 20}.withDefaults())
	for _, tc := range []struct {
		l    GRPCLimits
		want string
	}{
		{GRPCLimits{}, "MaxRecvMsgSize 0: must be positive"},
		{GRPCLimits{MaxRecvMsgSize: 1, InitialWindowSize: 1024}, "InitialWindowSize 1024: must be at least 65535"},
		{GRPCLimits{MaxRecvMsgSize: 1, InitialConnWindowSize: 1024}, "InitialConnWindowSize 1024: must be at least 65535"},
		{GRPCLimits{MaxRecvMsgSize: 1, KeepaliveTime: -time.Second}, "KeepaliveTime -1s: must be positive"},
	} {
		_, err := ServerOptions(tc.l)
		require.ErrorContains(t, err, tc.want)
		require.ErrorContains(t, err, "atomicbroadcast: gRPC limits: ")
	}

	const abs = 100 << 10
	rec := &recordingChain{cfg: limitsConfig{abs: abs}}
	channels := map[string]Channel{
		"ch":    {Chain: rec, Ledger: ledger.NewMemory()},
		"small": {Chain: &recordingChain{cfg: limitsConfig{abs: 1000}}, Ledger: ledger.NewMemory()},
	}
	limit := MaxRecvMsgSize(channels)
	require.Equal(t, abs+consensus.RecordOverhead, limit)
	require.Equal(t, consensus.RecordOverhead, MaxRecvMsgSize(nil))
	gopts, err := ServerOptions(GRPCLimits{MaxRecvMsgSize: limit})
	require.NoError(t, err)
	_, addr := serveWith(t, channels, nil, gopts, nil)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	c := ab.NewAtomicBroadcastClient(conn)
	largest := unsignedTx("ch", nil)
	largest.Signature = make([]byte, abs-len(largest.Payload)) // payload and signature: AbsoluteMaxBytes
	r := broadcastOne(t, c, largest)
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Broadcast(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(sized(t, "ch", limit+1)))
	_, err = stream.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	calls, _ := rec.takeCalls()
	require.Equal(t, []string{"ProcessNormal", "OrderAsync"}, calls, "only the first envelope reached the chain")
}

// withCreator returns an unsigned normal envelope of channel whose creator
// is an identity of mspID named by id.
func withCreator(channel, mspID, id string) *cb.Envelope {
	creator := protoutil.MarshalOrPanic(&mspb.SerializedIdentity{Mspid: mspID, IdBytes: []byte(id)})
	return &cb.Envelope{Payload: protoutil.MarshalOrPanic(&cb.Payload{
		Header: &cb.Header{
			ChannelHeader:   protoutil.MarshalOrPanic(&cb.ChannelHeader{Type: int32(cb.HeaderType_ENDORSER_TRANSACTION), ChannelId: channel}),
			SignatureHeader: protoutil.MarshalOrPanic(&cb.SignatureHeader{Creator: creator}),
		},
	})}
}

// fakeClock is a clock that tests move.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestThrottler(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	id := func(msp, name string) []byte {
		return protoutil.MarshalOrPanic(&mspb.SerializedIdentity{Mspid: msp, IdBytes: []byte(name)})
	}
	a1, a2, b1 := id("A", "1"), id("A", "2"), id("B", "1")
	th := newThrottler(Throttle{ClientRate: 2, OrgRate: 3}, clock.Now)
	// A client has a second's worth at once, then its rate.
	require.NoError(t, th.allow(a1))
	require.NoError(t, th.allow(a1))
	err := th.allow(a1)
	require.ErrorIs(t, err, ErrThrottled)
	require.ErrorContains(t, err, "a client of A over 2 envelopes/s")
	// Its organisation has one more for another client, then none.
	require.NoError(t, th.allow(a2))
	err = th.allow(a2)
	require.ErrorContains(t, err, "organisation A over 3 envelopes/s")
	// Another organisation is not affected.
	require.NoError(t, th.allow(b1))
	// Half a second refills one of a1's tokens, and 1.5 of A's.
	clock.Add(500 * time.Millisecond)
	require.NoError(t, th.allow(a1))
	require.ErrorIs(t, th.allow(a2), ErrThrottled, "A has half a token")
	// A refused envelope is not charged.
	clock.Add(250 * time.Millisecond)
	require.NoError(t, th.allow(a2))

	// A rate under one still lets one envelope through; an opaque creator
	// is a client of no organisation.
	th = newThrottler(Throttle{ClientRate: 0.5}, clock.Now)
	require.NoError(t, th.allow([]byte("opaque")))
	require.ErrorIs(t, th.allow([]byte("opaque")), ErrThrottled)
	clock.Add(2 * time.Second)
	require.NoError(t, th.allow([]byte("opaque")))

	// The buckets of clients gone quiet are forgotten.
	th = newThrottler(Throttle{ClientRate: 10}, clock.Now)
	for i := range 5000 {
		require.NoError(t, th.allow(id("A", fmt.Sprint(i))))
		clock.Add(time.Millisecond)
	}
	require.Less(t, len(th.clients.m), 2100)
}

// TestBroadcastThrottled checks that Broadcast answers SERVICE_UNAVAILABLE
// to a client over its rate, and orders the others' envelopes.
func TestBroadcastThrottled(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	rec := &recordingChain{}
	c := serve(t, map[string]Chain{"ch": rec}, WithThrottle(Throttle{ClientRate: 1}), withClock(clock.Now))
	require.Equal(t, cb.Status_SUCCESS, broadcastOne(t, c, withCreator("ch", "Org1MSP", "alice")).GetStatus())
	r := broadcastOne(t, c, withCreator("ch", "Org1MSP", "alice"))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), r.GetInfo())
	require.Contains(t, r.GetInfo(), "channel ch: atomicbroadcast: rate limit exceeded: a client of Org1MSP over 1 envelopes/s")
	require.Equal(t, cb.Status_SUCCESS, broadcastOne(t, c, withCreator("ch", "Org1MSP", "bob")).GetStatus())
	clock.Add(time.Second)
	require.Equal(t, cb.Status_SUCCESS, broadcastOne(t, c, withCreator("ch", "Org1MSP", "alice")).GetStatus())
	_, ordered := rec.takeCalls()
	require.Len(t, ordered, 3, "the throttled envelope was not ordered")
}

// silentChain accepts every envelope and never answers it.
type silentChain struct {
	recordingChain
	mu       sync.Mutex
	promises []consensus.Promise
}

func (s *silentChain) OrderAsync(_ context.Context, _ *cb.Envelope, _ uint64, p consensus.Promise) {
	s.mu.Lock()
	s.promises = append(s.promises, p)
	s.mu.Unlock()
}

// TestBroadcastDisconnects checks that clients that go away in the middle
// of their streams, with envelopes read and unanswered, leave no
// goroutine behind and give their bytes back.
func TestBroadcastDisconnects(t *testing.T) {
	ch := &silentChain{}
	srv, addr := serveWith(t, map[string]Channel{"ch": {Chain: ch, Ledger: ledger.NewMemory()}}, nil, nil, nil)
	c := dial(t, addr)
	// Connect before counting: the connection's goroutines stay.
	_, err := ReadBlocks(context.Background(), c, unsignedSeek("none", &ab.SeekInfo{}), func(*cb.Block) error { return nil })
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := range 300 {
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := c.Broadcast(ctx)
		require.NoError(t, err)
		for range 1 + i%5 {
			require.NoError(t, stream.Send(unsignedTx("ch", make([]byte, 100))))
		}
		if i%2 == 0 {
			// Wait until the server has read them.
			require.Eventually(t, func() bool { return srv.budget.inUse() > 0 }, 5*time.Second, time.Millisecond)
		}
		cancel()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.budget.inUse() != 0 || runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d bytes held, %d goroutines (%d before):\n%s", srv.budget.inUse(), runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	require.NotEmpty(t, ch.promises)
	for _, p := range ch.promises {
		p(nil) // late answers to streams gone
	}
}

// TestBroadcastManyStreams checks that the default limits serve 1000
// concurrent streams of 20 envelopes on one connection: the streams beyond
// a connection's 256 wait on the client, and every envelope is ordered.
func TestBroadcastManyStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 envelopes")
	}
	rec := &recordingChain{}
	channels := map[string]Channel{"ch": {Chain: rec, Ledger: ledger.NewMemory()}}
	gopts, err := ServerOptions(GRPCLimits{MaxRecvMsgSize: 1 << 20})
	require.NoError(t, err)
	_, addr := serveWith(t, channels, nil, gopts, func(l net.Listener) net.Listener { return LimitListener(l, DefaultMaxConnections) })
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const streams, per = 1000, 20
	var ok atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, err := c.Broadcast(ctx)
			if err != nil {
				errs <- err
				return
			}
			for range per {
				if err := stream.Send(unsignedTx("ch", []byte("tx"))); err != nil {
					errs <- err
					return
				}
			}
			stream.CloseSend()
			for range per {
				r, err := stream.Recv()
				if err != nil {
					errs <- err
					return
				}
				if r.GetStatus() == cb.Status_SUCCESS {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(streams*per), ok.Load())
}
