package atomicbroadcast

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// scriptedBroadcast is a Broadcast server that answers each stream with
// answer, called with the envelope it received.
type scriptedBroadcast struct {
	ab.UnimplementedAtomicBroadcastServer
	answer func(*cb.Envelope, grpc.BidiStreamingServer[cb.Envelope, ab.BroadcastResponse]) error
}

func (s scriptedBroadcast) Broadcast(stream grpc.BidiStreamingServer[cb.Envelope, ab.BroadcastResponse]) error {
	env, err := stream.Recv()
	if err != nil {
		return err
	}
	return s.answer(env, stream)
}

// serveScripted runs s on loopback until the test ends and returns a
// client.
func serveScripted(t *testing.T, s scriptedBroadcast) ab.AtomicBroadcastClient {
	t.Helper()
	return dial(t, serveGRPC(t, s))
}

// TestBroadcastOne checks BroadcastOne's answers and errors: the server's
// answer whatever its status, an error for a stream that ends without an
// answer or breaks, and for a context that ends first.
func TestBroadcastOne(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := &cb.Envelope{Payload: []byte("payload")}

	echo := serveScripted(t, scriptedBroadcast{answer: func(e *cb.Envelope, s grpc.BidiStreamingServer[cb.Envelope, ab.BroadcastResponse]) error {
		return s.Send(&ab.BroadcastResponse{Status: cb.Status_BAD_REQUEST, Info: string(e.GetPayload())})
	}})
	r, err := BroadcastOne(ctx, echo, env)
	require.NoError(t, err, "a refusal is an answer")
	require.Equal(t, cb.Status_BAD_REQUEST, r.GetStatus())
	require.Equal(t, "payload", r.GetInfo(), "the server received the envelope")

	silent := serveScripted(t, scriptedBroadcast{answer: func(*cb.Envelope, grpc.BidiStreamingServer[cb.Envelope, ab.BroadcastResponse]) error {
		return nil
	}})
	_, err = BroadcastOne(ctx, silent, env)
	require.EqualError(t, err, "stream ended without an answer")

	broken := serveScripted(t, scriptedBroadcast{answer: func(*cb.Envelope, grpc.BidiStreamingServer[cb.Envelope, ab.BroadcastResponse]) error {
		return status.Error(codes.Unavailable, "going away")
	}})
	_, err = BroadcastOne(ctx, broken, env)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	// A server that never answers, and does not end the stream when the
	// client's deadline reaches it either: the client gives up on its own.
	release := make(chan struct{})
	stuck := serveScripted(t, scriptedBroadcast{answer: func(*cb.Envelope, grpc.BidiStreamingServer[cb.Envelope, ab.BroadcastResponse]) error {
		<-release
		return nil
	}})
	t.Cleanup(func() { close(release) }) // before the server stops
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	_, err = BroadcastOne(short, stuck, env)
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
}
