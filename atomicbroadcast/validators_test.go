package atomicbroadcast

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestValidatorsBound checks that validators run every function given, on
// at most their number of goroutines at once, and that the goroutines
// exit once idle.
func TestValidatorsBound(t *testing.T) {
	v := newValidators(3)
	v.idle = 20 * time.Millisecond
	var now, most, done atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		require.NoError(t, v.run(context.Background(), func() {
			defer wg.Done()
			n := now.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(100 * time.Microsecond)
			now.Add(-1)
			done.Add(1)
		}))
	}
	wg.Wait()
	require.EqualValues(t, 200, done.Load())
	require.LessOrEqual(t, most.Load(), int64(3))
	require.Eventually(t, func() bool { return len(v.running) == 0 }, 5*time.Second, 5*time.Millisecond, "idle goroutines exit")
}

// TestValidatorsCanceled checks that run gives up when its context ends
// while every goroutine is busy, without running the function.
func TestValidatorsCanceled(t *testing.T) {
	v := newValidators(1)
	release := make(chan struct{})
	require.NoError(t, v.run(context.Background(), func() { <-release }))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ran := false
	require.ErrorIs(t, v.run(ctx, func() { ran = true }), context.DeadlineExceeded)
	close(release)
	require.False(t, ran)
}
