package cputime_test

import (
	"crypto/sha256"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/internal/cputime"
)

// TestProcess checks that busy work shows in the process's CPU time and
// sleeping does not (beyond the runtime's own few milliseconds).
func TestProcess(t *testing.T) {
	before := cputime.Process()
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "openbsd", "dragonfly":
		require.Positive(t, before)
	default:
		require.Zero(t, before)
		t.Skipf("the process's CPU time is not read on %s", runtime.GOOS)
	}
	start := time.Now()
	sum := sha256.Sum256(nil)
	for time.Since(start) < 100*time.Millisecond {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
	}
	busy := cputime.Process() - before
	require.GreaterOrEqual(t, busy, 50*time.Millisecond, "100ms of hashing cost %v of CPU", busy)

	before = cputime.Process()
	time.Sleep(100 * time.Millisecond)
	idle := cputime.Process() - before
	require.Less(t, idle, 50*time.Millisecond, "100ms of sleep cost %v of CPU", idle)
}
