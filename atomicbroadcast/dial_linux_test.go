package atomicbroadcast_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
)

// TestDialOptionsStallTimeout checks that a connection dialled with
// DialOptions carries the stall timeout as TCP_USER_TIMEOUT (which gRPC
// sets when keepalive is on), and the system's own (0) with a stall of 0.
func TestDialOptionsStallTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	for _, tc := range []struct {
		name  string
		stall time.Duration
		want  int
	}{
		{"default", atomicbroadcast.DefaultClientStallTimeout, int(atomicbroadcast.DefaultClientStallTimeout / time.Millisecond)},
		{"set", 2500 * time.Millisecond, 2500},
		{"off", 0, 0},
		{"negative", -time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var conns []net.Conn
			dialer := func(ctx context.Context, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return c, err
			}
			opts := append(atomicbroadcast.DialOptions(insecure.NewCredentials(), tc.stall), grpc.WithContextDialer(dialer))
			cc, err := grpc.NewClient(ln.Addr().String(), opts...)
			require.NoError(t, err)
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cc.Connect()
			for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
				require.True(t, cc.WaitForStateChange(ctx, s), "connection not ready: %v", s)
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, conns, 1)
			got, err := testutil.TCPUserTimeout(conns[0])
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	// No server with default limits takes the client's pings for abuse.
	require.GreaterOrEqual(t, atomicbroadcast.ClientKeepaliveTime, atomicbroadcast.DefaultKeepaliveMinTime)
}
