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

// serve runs a Server of chains on loopback and returns a client.
func serve(t *testing.T, window int, chains map[string]Chain) ab.AtomicBroadcastClient {
	t.Helper()
	channels := make(map[string]Channel)
	for id, ch := range chains {
		channels[id] = Channel{Chain: ch, Ledger: ledger.NewMemory()}
	}
	gs := grpc.NewServer()
	ab.RegisterAtomicBroadcastServer(gs, NewServer(channels, window, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); gs.Serve(ln) }()
	conn, err := dialOrderer(ln.Addr().String(), insecure.NewCredentials())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(); gs.Stop(); wg.Wait() })
	return ab.NewAtomicBroadcastClient(conn)
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
