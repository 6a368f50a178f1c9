package consensustest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMinLevel(t *testing.T) {
	var buf syncBuffer
	l := slog.New(minLevel{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelWarn})
	l = l.With("node", "node1").WithGroup("g")
	l.Info("chain state", "to", "ready")
	l.Debug("detail")
	require.Empty(t, buf.String())
	l.Warn("cannot consume", "err", "refused")
	require.Contains(t, buf.String(), `level=WARN msg="cannot consume" node=node1 g.err=refused`)
}

// TestClusterQuietByDefault runs a healthy cluster with the default node
// logger: slog.Default() receives nothing.
func TestClusterQuietByDefault(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)

	k, err := StartKafka()
	require.NoError(t, err)
	defer k.Close()
	c, err := NewCluster(k.Addrs(), WithBatchTimeout(10*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))
	for range 5 {
		env, err := c.Envelope(DefaultChannel, []byte("tx"))
		require.NoError(t, err)
		require.NoError(t, c.Order(ctx, DefaultChannel, env))
	}
	require.NoError(t, c.WaitHeight(ctx, DefaultChannel, 2))
	c.Close()
	require.Empty(t, strings.TrimSpace(buf.String()))
}
