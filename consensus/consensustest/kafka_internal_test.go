package consensustest

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

func TestKafkaSlogLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slogLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}

	l.Logf(kfake.LogLevelWarn, "partition %d gone", 3)
	require.Contains(t, buf.String(), `level=WARN msg="partition 3 gone" component=kfake`)

	buf.Reset()
	l.Logf(kfake.LogLevelDebug, "filtered by the handler")
	l.Logf(kfake.LogLevelNone, "never logged")
	require.Empty(t, buf.String())
}
