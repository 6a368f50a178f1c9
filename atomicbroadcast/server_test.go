package atomicbroadcast

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// quiet discards the server's logs.
var quiet = WithLogger(slog.New(slog.DiscardHandler))

// fakeChain accepts every envelope and hands the promises of OrderAsync to
// the test. Like a consensus.Chain, it refuses envelopes with orderErr
// while that is set, and with ErrNotReady while errored is closed.
type fakeChain struct {
	config   atomic.Pointer[consensus.ChannelConfig] // nil: no configuration
	promises chan consensus.Promise
	orderErr error
	errored  chan struct{}
}

func newFakeChain(cfg consensus.ChannelConfig) *fakeChain {
	f := &fakeChain{promises: make(chan consensus.Promise, 100), errored: make(chan struct{})}
	f.setConfig(cfg)
	return f
}

func (f *fakeChain) setConfig(cfg consensus.ChannelConfig) { f.config.Store(&cfg) }

func (f *fakeChain) Config() consensus.ChannelConfig                { return *f.config.Load() }
func (f *fakeChain) ProcessNormal(env *cb.Envelope) (uint64, error) { return 0, nil }
func (f *fakeChain) ProcessConfig(env *cb.Envelope) (uint64, error) { return 0, nil }
func (f *fakeChain) ProcessConfigUpdate(env *cb.Envelope) (*cb.Envelope, uint64, error) {
	return env, 0, nil
}
func (f *fakeChain) Errored() <-chan struct{} { return f.errored }

func (f *fakeChain) OrderAsync(ctx context.Context, env *cb.Envelope, seq uint64, p consensus.Promise) {
	select {
	case <-f.errored:
		p(fmt.Errorf("%w: cannot consume from kafka", consensus.ErrNotReady))
		return
	default:
	}
	if f.orderErr != nil {
		p(f.orderErr)
		return
	}
	f.promises <- p
}

// nextPromise returns the promise of the next envelope ordered, failing
// the test after a while.
func (f *fakeChain) nextPromise(t *testing.T) consensus.Promise {
	t.Helper()
	select {
	case p := <-f.promises:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no envelope ordered")
		return nil
	}
}

func (f *fakeChain) ConfigureAsync(ctx context.Context, env *cb.Envelope, seq uint64, p consensus.Promise) {
	f.OrderAsync(ctx, env, seq, p)
}

// serve runs a Server of chains, each with an empty ledger, on loopback
// and returns a client.
func serve(t *testing.T, chains map[string]Chain, opts ...Option) ab.AtomicBroadcastClient {
	t.Helper()
	channels := make(map[string]Channel)
	for id, ch := range chains {
		channels[id] = Channel{Chain: ch, Ledger: ledger.NewMemory()}
	}
	return serveChannels(t, channels, opts...)
}

// serveChannels runs a Server of channels on loopback and returns a
// client.
func serveChannels(t *testing.T, channels map[string]Channel, opts ...Option) ab.AtomicBroadcastClient {
	t.Helper()
	return dial(t, listen(t, channels, opts...))
}

// dial returns a plaintext client of the server at addr.
func dial(t *testing.T, addr string) ab.AtomicBroadcastClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return ab.NewAtomicBroadcastClient(conn)
}

// listen runs a Server of channels on loopback until the test ends and
// returns its address.
func listen(t *testing.T, channels map[string]Channel, opts ...Option) string {
	t.Helper()
	srv, err := NewServer(channels, append([]Option{quiet}, opts...)...)
	require.NoError(t, err)
	return serveGRPC(t, srv)
}

// serveGRPC serves srv's AtomicBroadcast service on loopback until the
// test ends and returns its address.
func serveGRPC(t *testing.T, srv ab.AtomicBroadcastServer) string {
	t.Helper()
	gs := grpc.NewServer()
	ab.RegisterAtomicBroadcastServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); wg.Wait() })
	return ln.Addr().String()
}

// unsignedEnvelope returns an unsigned envelope of type typ for channel.
func unsignedEnvelope(channel string, typ cb.HeaderType, data []byte) *cb.Envelope {
	return &cb.Envelope{Payload: protoutil.MarshalOrPanic(&cb.Payload{
		Header: &cb.Header{
			ChannelHeader:   protoutil.MarshalOrPanic(&cb.ChannelHeader{Type: int32(typ), ChannelId: channel}),
			SignatureHeader: protoutil.MarshalOrPanic(&cb.SignatureHeader{}),
		},
		Data: data,
	})}
}

func unsignedTx(channel string, data []byte) *cb.Envelope {
	return unsignedEnvelope(channel, cb.HeaderType_ENDORSER_TRANSACTION, data)
}

func unsignedSeek(channel string, info *ab.SeekInfo) *cb.Envelope {
	return unsignedEnvelope(channel, cb.HeaderType_DELIVER_SEEK_INFO, protoutil.MarshalOrPanic(info))
}

// Seek positions.
func seekOldest() *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Oldest{Oldest: &ab.SeekOldest{}}}
}

func seekNext() *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_NextCommit{NextCommit: &ab.SeekNextCommit{}}}
}

// broadcastOne sends one envelope on a fresh stream and returns the answer.
func broadcastOne(t *testing.T, c ab.AtomicBroadcastClient, env *cb.Envelope) *ab.BroadcastResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := BroadcastOne(ctx, c, env)
	require.NoError(t, err)
	return r
}

// deliverBlocks sends one seek request and returns the blocks and status.
func deliverBlocks(t *testing.T, c ab.AtomicBroadcastClient, env *cb.Envelope) ([]*cb.Block, cb.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var blocks []*cb.Block
	st, err := ReadBlocks(ctx, c, env, func(b *cb.Block) error { blocks = append(blocks, b); return nil })
	require.NoError(t, err)
	return blocks, st
}

// numbers returns the numbers of blocks.
func numbers(blocks []*cb.Block) []uint64 {
	var n []uint64
	for _, b := range blocks {
		n = append(n, b.GetHeader().GetNumber())
	}
	return n
}

// readableConfig is a channel configuration at sequence seq under which
// anyone may read (Deliver), or no one when deny is set. It supports
// nothing else.
type readableConfig struct {
	consensus.ChannelConfig
	seq  uint64
	deny bool
}

func (c readableConfig) Sequence() uint64 { return c.seq }

func (c readableConfig) ValidateDeliver(env *cb.Envelope) error {
	if c.deny {
		return fmt.Errorf("%w: not a reader at sequence %d", channelconfig.ErrForbidden, c.seq)
	}
	return nil
}

// opaqueConfig is a channel configuration that does not implement
// DeliverAuthorizer.
type opaqueConfig struct{ consensus.ChannelConfig }

func (opaqueConfig) Sequence() uint64 { return 0 }

// appendBlocks appends n blocks of one envelope each to l.
func appendBlocks(t *testing.T, l *ledger.Memory, n int) {
	t.Helper()
	for range n {
		var prev []byte
		if h := l.Height(); h > 0 {
			last, err := l.Block(h - 1)
			require.NoError(t, err)
			prev = protoutil.HeaderHash(last.GetHeader())
		}
		require.NoError(t, l.Append(protoutil.NewBlock(l.Height(), prev, [][]byte{fmt.Appendf(nil, "tx %d", l.Height())})))
	}
}

func TestNewServer(t *testing.T) {
	ch := Channel{Chain: newFakeChain(nil), Ledger: ledger.NewMemory()}
	srv, err := NewServer(map[string]Channel{"ch": ch})
	require.NoError(t, err)
	require.Equal(t, DefaultWindow, srv.window)
	require.Equal(t, int64(DefaultStreamBudget), srv.streamBudget)
	require.Equal(t, int64(DefaultBudget), srv.budget.limit)
	require.Equal(t, DefaultMaxBroadcastStreams, cap(srv.broadcasts))
	require.Equal(t, DefaultMaxDeliverStreams, cap(srv.delivers))
	require.Equal(t, DefaultIdleTimeout, srv.idleTimeout)
	require.Equal(t, BindNone, srv.binding)
	require.Nil(t, srv.throttle)
	require.Equal(t, slog.Default(), srv.log)
	srv, err = NewServer(nil, WithWindow(3), WithLogger(nil))
	require.NoError(t, err)
	require.Equal(t, 3, srv.window)
	require.Equal(t, slog.Default(), srv.log)

	for _, tc := range []struct {
		name     string
		channels map[string]Channel
		opts     []Option
		want     string
	}{
		{"window 0", nil, []Option{WithWindow(0)}, "window 0: must be at least 1"},
		{"stream budget 0", nil, []Option{WithStreamBudget(0)}, "stream budget 0: must be at least 1"},
		{"budget below the stream's", nil, []Option{WithStreamBudget(10), WithBudget(9)}, "budget 9: must be at least the stream budget 10"},
		{"no streams", nil, []Option{WithMaxStreams(0, 1)}, "max streams 0 and 1: must be at least 1"},
		{"idle timeout 0", nil, []Option{WithIdleTimeout(0)}, "idle timeout 0s: must be positive"},
		{"unknown binding", nil, []Option{WithTLSBinding(7)}, "TLS binding 7: unknown"},
		{"negative rate", nil, []Option{WithThrottle(Throttle{OrgRate: -1})}, "rates must not be negative"},
		{"no chain", map[string]Channel{"a": {Ledger: ledger.NewMemory()}}, nil, `channel "a": Chain and Ledger are required`},
		{"no ledger", map[string]Channel{"b": {Chain: ch.Chain}}, nil, `channel "b": Chain and Ledger are required`},
	} {
		_, err := NewServer(tc.channels, tc.opts...)
		require.ErrorContains(t, err, tc.want, tc.name)
		require.ErrorContains(t, err, "atomicbroadcast: ", tc.name)
	}

	// The server keeps its own copy of the channels.
	channels := map[string]Channel{"ch": ch}
	srv, err = NewServer(channels)
	require.NoError(t, err)
	delete(channels, "ch")
	require.Contains(t, srv.channels, "ch")
}

func TestBroadcastPipelinesAndAnswersInOrder(t *testing.T) {
	const window = 8
	ch := newFakeChain(nil)
	c := serve(t, map[string]Chain{"ch": ch}, WithWindow(window))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Broadcast(ctx)
	require.NoError(t, err)
	const n = 30
	go func() {
		for i := 0; i < n; i++ {
			if stream.Send(unsignedTx("ch", fmt.Appendf(nil, "%d", i))) != nil {
				return
			}
		}
	}()
	// The server orders envelopes before any is acknowledged, but no more
	// than the window.
	var held []consensus.Promise
	for len(held) < window {
		held = append(held, ch.nextPromise(t))
	}
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, window, len(held)+len(ch.promises))
	// Acknowledge out of order: answers still come in order; fail the
	// even ones.
	answered := 0
	for answered < n {
		for i := len(held) - 1; i >= 0; i-- {
			if (answered+i)%2 == 0 {
				held[i](consensus.ErrNotAcknowledged)
			} else {
				held[i](nil)
			}
		}
		for range held {
			r, err := stream.Recv()
			require.NoError(t, err)
			want := cb.Status_SUCCESS
			if answered%2 == 0 {
				want = cb.Status_INTERNAL_SERVER_ERROR
			}
			require.Equal(t, want, r.GetStatus(), "answer %d", answered)
			answered++
		}
		held = held[:0]
		for len(held) < min(window, n-answered) {
			held = append(held, ch.nextPromise(t))
		}
	}
	require.NoError(t, stream.CloseSend())
}

// TestBroadcastNotReady checks that the chain's refusals are answered
// SERVICE_UNAVAILABLE: the server has no availability check of its own (an
// errored chain refuses through its promise, as consensus.Chain does).
func TestBroadcastNotReady(t *testing.T) {
	errored := newFakeChain(nil)
	close(errored.errored)
	starting := newFakeChain(nil)
	starting.orderErr = fmt.Errorf("%w: starting", consensus.ErrNotReady)
	halted := newFakeChain(nil)
	halted.orderErr = consensus.ErrHalted
	c := serve(t, map[string]Chain{"starting": starting, "halted": halted, "errored": errored})
	for id, info := range map[string]string{"starting": "chain not ready: starting", "halted": "chain halted", "errored": "chain not ready: cannot consume"} {
		r := broadcastOne(t, c, unsignedTx(id, nil))
		require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), "%s: %s", id, r.GetInfo())
		require.Contains(t, r.GetInfo(), info, id)
	}
	// A config envelope takes the same path.
	r := broadcastOne(t, c, unsignedEnvelope("errored", cb.HeaderType_CONFIG, nil))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), r.GetInfo())
	// Deliver on an errored chain is refused (STRICT).
	_, st := deliverBlocks(t, c, unsignedSeek("errored", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, st)
}

// TestBroadcastRefusals checks the statuses of envelopes refused before
// they reach a chain, and of the chain's own refusals.
func TestBroadcastRefusals(t *testing.T) {
	refusing := &refusingChain{fakeChain: newFakeChain(nil), err: fmt.Errorf("channel ch: %w", consensus.ErrTooLarge)}
	c := serve(t, map[string]Chain{"ch": refusing})
	for _, tc := range []struct {
		name string
		env  *cb.Envelope
		want cb.Status
		info string
	}{
		{"garbage payload", &cb.Envelope{Payload: []byte{0xff, 0xff, 0xff}}, cb.Status_BAD_REQUEST, "bad envelope"},
		{"no header", &cb.Envelope{Payload: protoutil.MarshalOrPanic(&cb.Payload{Data: []byte("x")})}, cb.Status_BAD_REQUEST, "bad envelope"},
		{"unknown channel", unsignedTx("other", nil), cb.Status_NOT_FOUND, `atomicbroadcast: channel not found: "other"`},
		{"refused by the chain", unsignedTx("ch", nil), cb.Status_REQUEST_ENTITY_TOO_LARGE, "channel ch: consensus: envelope too large"},
	} {
		r := broadcastOne(t, c, tc.env)
		require.Equal(t, tc.want, r.GetStatus(), "%s: %s", tc.name, r.GetInfo())
		require.Contains(t, r.GetInfo(), tc.info, tc.name)
	}
}

// refusingChain refuses every envelope at validation.
type refusingChain struct {
	*fakeChain
	err error
}

func (r *refusingChain) ProcessNormal(env *cb.Envelope) (uint64, error) { return 0, r.err }

// TestDeliverErrorResponse checks SeekInfo.error_response while the chain
// is errored: STRICT (the default) is refused, and cut while it waits for a
// block when the chain errors; BEST_EFFORT serves the ledger's blocks and
// waits for the next ones.
func TestDeliverErrorResponse(t *testing.T) {
	l := ledger.NewMemory()
	appendBlocks(t, l, 3)
	ch := newFakeChain(readableConfig{})
	c := serveChannels(t, map[string]Channel{"ch": {Chain: ch, Ledger: l}})
	seekEnv := func(start, stop *ab.SeekPosition, er ab.SeekInfo_SeekErrorResponse) *cb.Envelope {
		return unsignedSeek("ch", &ab.SeekInfo{Start: start, Stop: stop, ErrorResponse: er})
	}

	// A ready chain serves both.
	for _, er := range []ab.SeekInfo_SeekErrorResponse{ab.SeekInfo_STRICT, ab.SeekInfo_BEST_EFFORT} {
		blocks, st := deliverBlocks(t, c, seekEnv(seekOldest(), seekNewest(), er))
		require.Equal(t, cb.Status_SUCCESS, st, er)
		require.Equal(t, []uint64{0, 1, 2}, numbers(blocks), er)
	}

	// A STRICT request waiting for block 3 is cut when the chain errors.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	strict, err := c.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, strict.Send(seekEnv(seekSpecified(2), seekSpecified(3), ab.SeekInfo_STRICT)))
	r, err := strict.Recv()
	require.NoError(t, err)
	require.Equal(t, uint64(2), r.GetBlock().GetHeader().GetNumber(), "%v", r)
	close(ch.errored)
	r, err = strict.Recv()
	require.NoError(t, err)
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), "%v", r)

	// While errored, STRICT is refused and BEST_EFFORT served.
	blocks, st := deliverBlocks(t, c, seekEnv(seekOldest(), seekNewest(), ab.SeekInfo_STRICT))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, st)
	require.Empty(t, blocks)
	blocks, st = deliverBlocks(t, c, seekEnv(seekOldest(), seekNewest(), ab.SeekInfo_BEST_EFFORT))
	require.Equal(t, cb.Status_SUCCESS, st)
	require.Equal(t, []uint64{0, 1, 2}, numbers(blocks))

	// A BEST_EFFORT request waits for the next block while errored.
	bestEffort, err := c.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, bestEffort.Send(seekEnv(seekSpecified(3), seekSpecified(3), ab.SeekInfo_BEST_EFFORT)))
	time.Sleep(20 * time.Millisecond) // let the server wait at the ledger's tip
	appendBlocks(t, l, 1)
	r, err = bestEffort.Recv()
	require.NoError(t, err)
	require.Equal(t, uint64(3), r.GetBlock().GetHeader().GetNumber(), "%v", r)
	r, err = bestEffort.Recv()
	require.NoError(t, err)
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), "%v", r)
}

// TestDeliverReauthorizes follows a channel while its configuration
// changes: a new configuration that still admits the reader lets the
// blocks flow; one that revokes it ends the request with FORBIDDEN before
// the next block.
func TestDeliverReauthorizes(t *testing.T) {
	l := ledger.NewMemory()
	appendBlocks(t, l, 2)
	ch := newFakeChain(readableConfig{seq: 0})
	c := serveChannels(t, map[string]Channel{"ch": {Chain: ch, Ledger: l}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekSpecified(10)})))
	next := func() *ab.DeliverResponse {
		t.Helper()
		r, err := stream.Recv()
		require.NoError(t, err)
		return r
	}
	require.Equal(t, uint64(0), next().GetBlock().GetHeader().GetNumber())
	require.Equal(t, uint64(1), next().GetBlock().GetHeader().GetNumber())

	ch.setConfig(readableConfig{seq: 1}) // still a reader
	appendBlocks(t, l, 1)
	require.Equal(t, uint64(2), next().GetBlock().GetHeader().GetNumber())

	ch.setConfig(readableConfig{seq: 2, deny: true}) // no longer
	appendBlocks(t, l, 1)
	r := next()
	require.Nil(t, r.GetBlock(), "block %d served after the reader was revoked", r.GetBlock().GetHeader().GetNumber())
	require.Equal(t, cb.Status_FORBIDDEN, r.GetStatus())

	// Later requests are refused at once.
	blocks, st := deliverBlocks(t, c, unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}))
	require.Equal(t, cb.Status_FORBIDDEN, st)
	require.Empty(t, blocks)
}

// TestDeliverAuthorizer checks the declared interface: a configuration
// that implements DeliverAuthorizer decides; one that does not refuses
// every reader with FORBIDDEN and an error naming the interface.
func TestDeliverAuthorizer(t *testing.T) {
	err := authorizeDeliver(opaqueConfig{}, unsignedSeek("ch", &ab.SeekInfo{}))
	require.ErrorIs(t, err, channelconfig.ErrForbidden)
	require.ErrorContains(t, err, "atomicbroadcast.DeliverAuthorizer")
	require.ErrorContains(t, err, "atomicbroadcast.opaqueConfig")
	require.NoError(t, authorizeDeliver(readableConfig{}, nil))

	l := ledger.NewMemory()
	appendBlocks(t, l, 1)
	var logs bytes.Buffer
	c := serveChannels(t, map[string]Channel{
		"custom": {Chain: newFakeChain(readableConfig{}), Ledger: l},
		"opaque": {Chain: newFakeChain(opaqueConfig{}), Ledger: l},
	}, WithLogger(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))))
	blocks, st := deliverBlocks(t, c, unsignedSeek("custom", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}))
	require.Equal(t, cb.Status_SUCCESS, st)
	require.Len(t, blocks, 1)
	blocks, st = deliverBlocks(t, c, unsignedSeek("opaque", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}))
	require.Equal(t, cb.Status_FORBIDDEN, st)
	require.Empty(t, blocks)
	require.Contains(t, logs.String(), "does not implement atomicbroadcast.DeliverAuthorizer")
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestDeliverSeekRequests checks the statuses of seek requests against a
// ledger of three blocks, and several requests on one stream.
func TestDeliverSeekRequests(t *testing.T) {
	l := ledger.NewMemory()
	appendBlocks(t, l, 3)
	c := serveChannels(t, map[string]Channel{"ch": {Chain: newFakeChain(readableConfig{}), Ledger: l}})
	failIfNotReady := ab.SeekInfo_FAIL_IF_NOT_READY
	for _, tc := range []struct {
		name   string
		env    *cb.Envelope
		want   cb.Status
		blocks []uint64
	}{
		{"oldest", unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}), cb.Status_SUCCESS, []uint64{0}},
		{"all", unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekNewest()}), cb.Status_SUCCESS, []uint64{0, 1, 2}},
		{"beyond height, fail if not ready", unsignedSeek("ch", &ab.SeekInfo{Start: seekSpecified(9), Stop: seekSpecified(9), Behavior: failIfNotReady}), cb.Status_NOT_FOUND, nil},
		{"stop beyond height, fail if not ready", unsignedSeek("ch", &ab.SeekInfo{Start: seekSpecified(1), Stop: seekSpecified(9), Behavior: failIfNotReady}), cb.Status_NOT_FOUND, []uint64{1, 2}},
		{"stop before start", unsignedSeek("ch", &ab.SeekInfo{Start: seekSpecified(2), Stop: seekSpecified(1)}), cb.Status_BAD_REQUEST, nil},
		{"no stop", unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest()}), cb.Status_BAD_REQUEST, nil},
		{"not a SeekInfo", unsignedEnvelope("ch", cb.HeaderType_DELIVER_SEEK_INFO, []byte{0xff, 0xff}), cb.Status_BAD_REQUEST, nil},
		{"garbage", &cb.Envelope{Payload: []byte{0xff, 0x01}}, cb.Status_BAD_REQUEST, nil},
		{"unknown channel", unsignedSeek("other", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}), cb.Status_NOT_FOUND, nil},
	} {
		blocks, st := deliverBlocks(t, c, tc.env)
		require.Equal(t, tc.want, st, tc.name)
		require.Equal(t, tc.blocks, numbers(blocks), tc.name)
	}

	// Requests on one stream are served one after the other; a
	// BLOCK_UNTIL_READY request waits for its block.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()})))
	require.NoError(t, stream.Send(unsignedSeek("ch", &ab.SeekInfo{Start: seekSpecified(9), Stop: seekSpecified(9), Behavior: failIfNotReady})))
	require.NoError(t, stream.Send(unsignedSeek("ch", &ab.SeekInfo{Start: seekNext(), Stop: seekNext()})))
	expect := func(block int64, st cb.Status) {
		t.Helper()
		r, err := stream.Recv()
		require.NoError(t, err)
		if block >= 0 {
			require.Equal(t, uint64(block), r.GetBlock().GetHeader().GetNumber(), "%v", r)
		} else {
			require.Equal(t, st, r.GetStatus(), "%v", r)
		}
	}
	expect(0, 0)
	expect(-1, cb.Status_SUCCESS)
	expect(-1, cb.Status_NOT_FOUND)
	time.Sleep(20 * time.Millisecond) // let the server wait for block 3
	appendBlocks(t, l, 1)
	expect(3, 0)
	expect(-1, cb.Status_SUCCESS)
	require.NoError(t, stream.CloseSend())
}

func TestSeekRange(t *testing.T) {
	for _, tc := range []struct {
		start, stop         *ab.SeekPosition
		wantStart, wantStop uint64
		wantErr             bool
	}{
		{seekOldest(), seekOldest(), 0, 0, false},
		{seekOldest(), seekNewest(), 0, 9, false},
		{seekNewest(), seekNewest(), 9, 9, false},
		{seekSpecified(3), seekSpecified(7), 3, 7, false},
		{seekSpecified(3), seekOldest(), 3, 3, false},
		{seekSpecified(3), seekNewest(), 3, 9, false},
		{seekSpecified(12), seekSpecified(20), 12, 20, false},
		{seekSpecified(12), seekNewest(), 0, 0, true},
		{seekNext(), seekNext(), 10, 10, false},
		{seekSpecified(4), seekNext(), 4, 10, false},
		{seekSpecified(5), seekSpecified(4), 0, 0, true},
		{nil, seekOldest(), 0, 0, true},
		{seekOldest(), nil, 0, 0, true},
		{&ab.SeekPosition{}, seekOldest(), 0, 0, true},
		{seekOldest(), &ab.SeekPosition{}, 0, 0, true},
	} {
		start, stop, err := seekRange(&ab.SeekInfo{Start: tc.start, Stop: tc.stop}, 10)
		if tc.wantErr {
			require.Error(t, err, "%v %v", tc.start, tc.stop)
			continue
		}
		require.NoError(t, err, "%v %v", tc.start, tc.stop)
		require.Equal(t, [2]uint64{tc.wantStart, tc.wantStop}, [2]uint64{start, stop}, "%v %v", tc.start, tc.stop)
	}
	// An empty ledger: newest is block 0, next_commit too.
	start, stop, err := seekRange(&ab.SeekInfo{Start: seekNewest(), Stop: seekNext()}, 0)
	require.NoError(t, err)
	require.Equal(t, [2]uint64{0, 0}, [2]uint64{start, stop})
}

// fabricUpdateError is shaped as fabricconfig's errors of a refused config
// update: it wraps ErrBadUpdate beside a signature failure.
type fabricUpdateError struct{}

func (fabricUpdateError) Error() string { return "mod_policy not satisfied" }
func (fabricUpdateError) Unwrap() []error {
	return []error{fabricconfig.ErrBadUpdate, channelconfig.ErrBadSignature}
}

func TestStatusOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("channel ch: %w", err) }
	for _, tc := range []struct {
		err  error
		want cb.Status
	}{
		{wrap(ErrChannelNotFound), cb.Status_NOT_FOUND},
		{wrap(consensus.ErrTooLarge), cb.Status_REQUEST_ENTITY_TOO_LARGE},
		{wrap(fabricconfig.ErrBadUpdate), cb.Status_BAD_REQUEST},
		{fabricUpdateError{}, cb.Status_BAD_REQUEST},
		{wrap(channelconfig.ErrForbidden), cb.Status_FORBIDDEN},
		{wrap(channelconfig.ErrBadSignature), cb.Status_FORBIDDEN},
		{wrap(channelconfig.ErrMalformed), cb.Status_BAD_REQUEST},
		{wrap(channelconfig.ErrWrongChannel), cb.Status_BAD_REQUEST},
		{wrap(channelconfig.ErrBadSequence), cb.Status_BAD_REQUEST},
		{wrap(consensus.ErrNotReady), cb.Status_SERVICE_UNAVAILABLE},
		{wrap(consensus.ErrHalted), cb.Status_SERVICE_UNAVAILABLE},
		{fmt.Errorf("%w: %w", consensus.ErrHalted, errors.New("disk full")), cb.Status_SERVICE_UNAVAILABLE},
		{wrap(context.Canceled), cb.Status_SERVICE_UNAVAILABLE},
		{wrap(context.DeadlineExceeded), cb.Status_SERVICE_UNAVAILABLE},
		{wrap(consensus.ErrNotAcknowledged), cb.Status_INTERNAL_SERVER_ERROR},
		{wrap(consensus.ErrStaleConfig), cb.Status_INTERNAL_SERVER_ERROR},
		{errors.New("something else"), cb.Status_BAD_REQUEST},
		{nil, cb.Status_BAD_REQUEST},
	} {
		require.Equal(t, tc.want, StatusOf(tc.err), "%v", tc.err)
	}
}
