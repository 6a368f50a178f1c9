package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// fakeChain accepts every envelope and hands the promises of OrderAsync to
// the test.
type fakeChain struct {
	consensus.ChannelConfig // nil: Deliver is refused
	promises                chan consensus.Promise
	orderErr                error
	errored                 chan struct{}
}

func (f *fakeChain) Config() consensus.ChannelConfig                { return f.ChannelConfig }
func (f *fakeChain) ProcessNormal(env *cb.Envelope) (uint64, error) { return 0, nil }
func (f *fakeChain) ProcessConfig(env *cb.Envelope) (uint64, error) { return 0, nil }
func (f *fakeChain) Errored() <-chan struct{}                       { return f.errored }

func (f *fakeChain) OrderAsync(ctx context.Context, env *cb.Envelope, seq uint64, p consensus.Promise) {
	if f.orderErr != nil {
		p(f.orderErr)
		return
	}
	f.promises <- p
}

func (f *fakeChain) ConfigureAsync(ctx context.Context, env *cb.Envelope, seq uint64, p consensus.Promise) {
	f.OrderAsync(ctx, env, seq, p)
}

// serve runs a Server of chains, each with an empty ledger, on loopback
// and returns a client.
func serve(t *testing.T, window int, chains map[string]Chain) ab.AtomicBroadcastClient {
	t.Helper()
	channels := make(map[string]Channel)
	for id, ch := range chains {
		channels[id] = Channel{Chain: ch, Ledger: ledger.NewMemory()}
	}
	return serveChannels(t, window, channels)
}

// serveChannels runs a Server of channels on loopback and returns a
// client.
func serveChannels(t *testing.T, window int, channels map[string]Channel) ab.AtomicBroadcastClient {
	t.Helper()
	conn, err := dialOrderer(listenChannels(t, window, channels), insecure.NewCredentials())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return ab.NewAtomicBroadcastClient(conn)
}

// listenChannels runs a Server of channels on loopback until the test
// ends and returns its address.
func listenChannels(t *testing.T, window int, channels map[string]Channel) string {
	t.Helper()
	gs := grpc.NewServer()
	ab.RegisterAtomicBroadcastServer(gs, NewServer(channels, window, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); wg.Wait() })
	return ln.Addr().String()
}

func unsignedEnvelope(channel string, data []byte) *cb.Envelope {
	return &cb.Envelope{Payload: protoutil.MarshalOrPanic(&cb.Payload{
		Header: &cb.Header{
			ChannelHeader:   protoutil.MarshalOrPanic(&cb.ChannelHeader{Type: int32(cb.HeaderType_ENDORSER_TRANSACTION), ChannelId: channel}),
			SignatureHeader: protoutil.MarshalOrPanic(&cb.SignatureHeader{}),
		},
		Data: data,
	})}
}

func TestBroadcastPipelinesAndAnswersInOrder(t *testing.T) {
	const window = 8
	ch := &fakeChain{promises: make(chan consensus.Promise, 100), errored: make(chan struct{})}
	c := serve(t, window, map[string]Chain{"ch": ch})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Broadcast(ctx)
	require.NoError(t, err)
	const n = 30
	go func() {
		for i := 0; i < n; i++ {
			if stream.Send(unsignedEnvelope("ch", fmt.Appendf(nil, "%d", i))) != nil {
				return
			}
		}
	}()
	// The server orders envelopes before any is acknowledged, but no more
	// than the window.
	var held []consensus.Promise
	for len(held) < window {
		held = append(held, <-ch.promises)
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
			held = append(held, <-ch.promises)
		}
	}
	require.NoError(t, stream.CloseSend())
}

func TestBroadcastNotReady(t *testing.T) {
	errored := make(chan struct{})
	close(errored)
	c := serve(t, 0, map[string]Chain{
		"starting": &fakeChain{orderErr: fmt.Errorf("%w: starting", consensus.ErrNotReady), errored: make(chan struct{})},
		"halted":   &fakeChain{orderErr: consensus.ErrHalted, errored: make(chan struct{})},
		"errored":  &fakeChain{errored: errored},
	})
	for _, id := range []string{"starting", "halted", "errored"} {
		r := broadcastOne(t, c, unsignedEnvelope(id, nil))
		require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), "%s: %s", id, r.GetInfo())
	}
	// Deliver on an errored chain, and on a chain whose configuration
	// cannot authorise readers.
	env := unsignedEnvelope("errored", protoutil.MarshalOrPanic(&ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}))
	_, st := deliverBlocks(t, c, env)
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, st)
	env = unsignedEnvelope("starting", protoutil.MarshalOrPanic(&ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}))
	_, st = deliverBlocks(t, c, env)
	require.Equal(t, cb.Status_FORBIDDEN, st)
}

// readableConfig is a channel configuration under which anyone may read
// (Deliver); it supports nothing else.
type readableConfig struct{ consensus.ChannelConfig }

func (readableConfig) Sequence() uint64                       { return 0 }
func (readableConfig) ValidateDeliver(env *cb.Envelope) error { return nil }

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

// TestDeliverErrorResponse checks SeekInfo.error_response while the chain
// is errored: STRICT (the default) is refused, and cut while it waits for a
// block when the chain errors; BEST_EFFORT serves the ledger's blocks and
// waits for the next ones.
func TestDeliverErrorResponse(t *testing.T) {
	l := ledger.NewMemory()
	appendBlocks(t, l, 3)
	ch := &fakeChain{ChannelConfig: readableConfig{}, errored: make(chan struct{})}
	c := serveChannels(t, 0, map[string]Channel{"ch": {Chain: ch, Ledger: l}})
	seekEnv := func(start, stop *ab.SeekPosition, er ab.SeekInfo_SeekErrorResponse) *cb.Envelope {
		return unsignedEnvelope("ch", protoutil.MarshalOrPanic(&ab.SeekInfo{Start: start, Stop: stop, ErrorResponse: er}))
	}
	numbers := func(blocks []*cb.Block) []uint64 {
		var n []uint64
		for _, b := range blocks {
			n = append(n, b.GetHeader().GetNumber())
		}
		return n
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
