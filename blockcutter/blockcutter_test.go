package blockcutter

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// step is one call on a Cutter: Ordered with an envelope of the given size
// (split between payload and signature), or Cut when cut is set. Envelopes
// are named by the index of the step that ordered them.
type step struct {
	limits *Limits // when set, the limits in force from this step on
	size   int
	sig    int // part of size carried by the signature
	cut    bool

	want        [][]int // batches expected, as step indexes
	wantPending bool
	wantCount   int    // Pending() afterwards
	wantBytes   uint64 // PendingBytes() afterwards
}

func lim(count, preferred uint32) *Limits {
	return &Limits{MaxMessageCount: count, AbsoluteMaxBytes: 1 << 30, PreferredMaxBytes: preferred}
}

func envelope(size, sig int) *cb.Envelope {
	return &cb.Envelope{Payload: make([]byte, size-sig), Signature: make([]byte, sig)}
}

func TestOrdered(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"below both limits stays pending", []step{
			{limits: lim(10, 100), size: 10, wantPending: true, wantCount: 1, wantBytes: 10},
			{size: 20, wantPending: true, wantCount: 2, wantBytes: 30},
		}},
		{"reaching MaxMessageCount cuts", []step{
			{limits: lim(3, 100), size: 1, wantPending: true, wantCount: 1, wantBytes: 1},
			{size: 1, wantPending: true, wantCount: 2, wantBytes: 2},
			{size: 1, want: [][]int{{0, 1, 2}}},
			{size: 1, wantPending: true, wantCount: 1, wantBytes: 1},
		}},
		{"limits of one", []step{
			{limits: lim(1, 1), size: 1, want: [][]int{{0}}},
			{size: 0, want: [][]int{{1}}},
			{size: 2, want: [][]int{{2}}},
			{size: 1, sig: 1, want: [][]int{{3}}},
		}},
		{"MaxMessageCount one cuts every envelope alone", []step{
			{limits: lim(1, 100), size: 50, want: [][]int{{0}}},
			{size: 50, want: [][]int{{1}}},
		}},
		{"PreferredMaxBytes one", []step{
			{limits: lim(10, 1), size: 1, wantPending: true, wantCount: 1, wantBytes: 1},
			{size: 1, want: [][]int{{0}}, wantPending: true, wantCount: 1, wantBytes: 1},
			{size: 0, wantPending: true, wantCount: 2, wantBytes: 1},
			{size: 2, want: [][]int{{1, 2}, {3}}},
		}},
		{"pending exactly equals preferred", []step{
			{limits: lim(10, 20), size: 10, wantPending: true, wantCount: 1, wantBytes: 10},
			{size: 10, wantPending: true, wantCount: 2, wantBytes: 20},
			{size: 0, wantPending: true, wantCount: 3, wantBytes: 20},
			{size: 1, want: [][]int{{0, 1, 2}}, wantPending: true, wantCount: 1, wantBytes: 1},
		}},
		{"one byte over preferred cuts pending first", []step{
			{limits: lim(10, 20), size: 10, wantPending: true, wantCount: 1, wantBytes: 10},
			{size: 11, want: [][]int{{0}}, wantPending: true, wantCount: 1, wantBytes: 11},
		}},
		{"envelope of exactly preferred is not oversized", []step{
			{limits: lim(10, 20), size: 20, wantPending: true, wantCount: 1, wantBytes: 20},
			{size: 20, want: [][]int{{0}}, wantPending: true, wantCount: 1, wantBytes: 20},
		}},
		{"oversized without pending", []step{
			{limits: lim(10, 20), size: 21, want: [][]int{{0}}},
			{size: 1, wantPending: true, wantCount: 1, wantBytes: 1},
		}},
		{"oversized with pending gives two batches", []step{
			{limits: lim(10, 20), size: 5, wantPending: true, wantCount: 1, wantBytes: 5},
			{size: 5, wantPending: true, wantCount: 2, wantBytes: 10},
			{size: 21, want: [][]int{{0, 1}, {2}}},
			{size: 5, wantPending: true, wantCount: 1, wantBytes: 5},
		}},
		{"oversized above AbsoluteMaxBytes is still isolated", []step{
			{limits: &Limits{MaxMessageCount: 10, AbsoluteMaxBytes: 8, PreferredMaxBytes: 4}, size: 9, want: [][]int{{0}}},
			{size: 6, want: [][]int{{1}}},
			{size: 4, wantPending: true, wantCount: 1, wantBytes: 4},
		}},
		{"signature bytes count", []step{
			{limits: lim(10, 10), size: 10, sig: 6, wantPending: true, wantCount: 1, wantBytes: 10},
			{size: 11, sig: 11, want: [][]int{{0}, {1}}},
			{size: 6, sig: 3, wantPending: true, wantCount: 1, wantBytes: 6},
			{size: 5, sig: 5, want: [][]int{{2}}, wantPending: true, wantCount: 1, wantBytes: 5},
		}},
		{"overflow then count gives two batches", []step{
			{limits: lim(3, 20), size: 15, wantPending: true, wantCount: 1, wantBytes: 15},
			{limits: lim(1, 20), size: 10, want: [][]int{{0}, {1}}},
		}},
		{"count cut with bytes exactly at preferred", []step{
			{limits: lim(2, 20), size: 10, wantPending: true, wantCount: 1, wantBytes: 10},
			{size: 10, want: [][]int{{0, 1}}},
		}},
		{"MaxMessageCount zero cuts every envelope", []step{
			{limits: lim(0, 20), size: 5, want: [][]int{{0}}},
			{size: 0, want: [][]int{{1}}},
			{size: 21, want: [][]int{{2}}},
		}},
		{"PreferredMaxBytes zero keeps empty envelopes", []step{
			{limits: lim(3, 0), size: 0, wantPending: true, wantCount: 1},
			{size: 1, want: [][]int{{0}, {1}}},
			{size: 0, wantPending: true, wantCount: 1},
			{size: 0, wantPending: true, wantCount: 2},
			{size: 0, want: [][]int{{2, 3, 4}}},
		}},
		{"Cut returns pending and resets", []step{
			{limits: lim(10, 20), size: 15, wantPending: true, wantCount: 1, wantBytes: 15},
			{size: 5, wantPending: true, wantCount: 2, wantBytes: 20},
			{cut: true, want: [][]int{{0, 1}}},
			{size: 20, wantPending: true, wantCount: 1, wantBytes: 20},
		}},
		{"Cut on empty returns nil", []step{
			{limits: lim(10, 20), cut: true},
			{size: 21, want: [][]int{{1}}},
			{cut: true},
		}},
		{"preferred shrinking cuts on next envelope", []step{
			{limits: lim(10, 100), size: 30, wantPending: true, wantCount: 1, wantBytes: 30},
			{limits: lim(10, 20), size: 10, want: [][]int{{0}}, wantPending: true, wantCount: 1, wantBytes: 10},
		}},
		{"preferred shrinking below the envelope isolates it", []step{
			{limits: lim(10, 100), size: 5, wantPending: true, wantCount: 1, wantBytes: 5},
			{limits: lim(10, 3), size: 4, want: [][]int{{0}, {1}}},
		}},
		{"preferred growing keeps pending", []step{
			{limits: lim(10, 20), size: 15, wantPending: true, wantCount: 1, wantBytes: 15},
			{limits: lim(10, 40), size: 25, wantPending: true, wantCount: 2, wantBytes: 40},
		}},
		{"count shrinking below pending cuts on next envelope", []step{
			{limits: lim(10, 100), size: 1, wantPending: true, wantCount: 1, wantBytes: 1},
			{size: 1, wantPending: true, wantCount: 2, wantBytes: 2},
			{size: 1, wantPending: true, wantCount: 3, wantBytes: 3},
			{limits: lim(2, 100), cut: false, size: 1, want: [][]int{{0, 1, 2, 3}}},
		}},
		{"count growing keeps pending", []step{
			{limits: lim(2, 100), size: 1, wantPending: true, wantCount: 1, wantBytes: 1},
			{limits: lim(3, 100), size: 1, wantPending: true, wantCount: 2, wantBytes: 2},
			{size: 1, want: [][]int{{0, 1, 2}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var limits Limits
			c := New(func() Limits { return limits })
			envs := make([]*cb.Envelope, len(tt.steps))
			for i, s := range tt.steps {
				if s.limits != nil {
					limits = *s.limits
				}
				var got [][]*cb.Envelope
				var pending bool
				if s.cut {
					if b := c.Cut(); b != nil {
						got = [][]*cb.Envelope{b}
					}
				} else {
					envs[i] = envelope(s.size, s.sig)
					got, pending = c.Ordered(envs[i])
				}
				if len(s.want) == 0 && got != nil {
					t.Errorf("step %d: got %d batches, want nil", i, len(got))
				}
				if g, w := names(envs, got), fmt.Sprint(s.want); g != w && len(s.want) > 0 {
					t.Errorf("step %d: batches %s, want %s", i, g, w)
				}
				if pending != s.wantPending {
					t.Errorf("step %d: pending %v, want %v", i, pending, s.wantPending)
				}
				if n := c.Pending(); n != s.wantCount {
					t.Errorf("step %d: Pending() = %d, want %d", i, n, s.wantCount)
				}
				if n := c.PendingBytes(); n != s.wantBytes {
					t.Errorf("step %d: PendingBytes() = %d, want %d", i, n, s.wantBytes)
				}
			}
		})
	}
}

// names renders batches as the step indexes of their envelopes.
func names(envs []*cb.Envelope, batches [][]*cb.Envelope) string {
	out := make([][]int, len(batches))
	for i, b := range batches {
		out[i] = []int{}
		for _, e := range b {
			out[i] = append(out[i], slices.Index(envs, e))
		}
	}
	return fmt.Sprint(out)
}

func TestCutEmpty(t *testing.T) {
	c := New(func() Limits { return *lim(10, 10) })
	if b := c.Cut(); b != nil {
		t.Fatalf("Cut on a new Cutter = %v, want nil", b)
	}
	c.Ordered(envelope(1, 0))
	if b := c.Cut(); len(b) != 1 {
		t.Fatalf("Cut = %d envelopes, want 1", len(b))
	}
	if b := c.Cut(); b != nil {
		t.Fatalf("second Cut = %v, want nil", b)
	}
	if c.Pending() != 0 || c.PendingBytes() != 0 {
		t.Fatalf("after Cut: Pending %d, PendingBytes %d, want 0, 0", c.Pending(), c.PendingBytes())
	}
}

func TestLimitsReadOncePerOrdered(t *testing.T) {
	calls := 0
	c := New(func() Limits { calls++; return *lim(2, 10) })
	for i, size := range []int{1, 1, 11, 5, 6} {
		c.Ordered(envelope(size, 0))
		if calls != i+1 {
			t.Fatalf("after %d Ordered calls, limits read %d times", i+1, calls)
		}
	}
	c.Cut()
	if calls != 5 {
		t.Fatalf("Cut read the limits: %d reads, want 5", calls)
	}
}

func TestNewNilLimitsPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(nil) did not panic")
		}
	}()
	New(nil)
}

// TestReturnedBatchesOwnedByCaller checks that the Cutter never writes into
// a batch it has returned, and that a caller appending to a returned batch
// does not change what the Cutter holds.
func TestReturnedBatchesOwnedByCaller(t *testing.T) {
	c := New(func() Limits { return *lim(3, 100) })
	a, b, x := envelope(1, 0), envelope(1, 0), envelope(1, 0)
	c.Ordered(a)
	c.Ordered(b)
	batch := c.Cut()
	_ = append(batch, x) // may write into spare capacity
	c.Ordered(b)
	c.Ordered(a)
	if batch[0] != a || batch[1] != b || len(batch) != 2 {
		t.Fatalf("returned batch changed: %v", batch)
	}
	got, _ := c.Ordered(x)
	if len(got) != 1 || len(got[0]) != 3 || got[0][0] != b || got[0][1] != a || got[0][2] != x {
		t.Fatalf("pending batch changed by the caller: %v", got)
	}
}

func TestOrderedAllocations(t *testing.T) {
	env := envelope(100, 10)
	t.Run("no cut", func(t *testing.T) {
		c := New(func() Limits { return *lim(1<<20, 1<<30) })
		c.Ordered(env) // reserves the pending batch
		if n := testing.AllocsPerRun(100, func() { c.Ordered(env) }); n != 0 {
			t.Fatalf("Ordered without a cut allocates %v times, want 0", n)
		}
	})
	t.Run("cut by count", func(t *testing.T) {
		c := New(func() Limits { return *lim(1, 1<<30) })
		// The returned batch list and the one-envelope batch.
		if n := testing.AllocsPerRun(100, func() { c.Ordered(env) }); n > 2 {
			t.Fatalf("Ordered cutting a batch allocates %v times, want at most 2", n)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		c := New(func() Limits { return *lim(10, 1) })
		if n := testing.AllocsPerRun(100, func() { c.Ordered(env) }); n > 2 {
			t.Fatalf("Ordered isolating an envelope allocates %v times, want at most 2", n)
		}
	})
}

// TestOrderedInvariants orders random envelopes under randomly changing
// limits and checks what every caller relies on: order is kept, at most two
// batches, none empty, and batches respect the limits read when they were
// cut.
func TestOrderedInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var limits Limits
	c := New(func() Limits { return limits })
	var in, out []*cb.Envelope
	// bound is the largest MaxMessageCount in force while the pending batch
	// was filling: a batch may exceed the current MaxMessageCount when that
	// shrank meanwhile.
	var bound uint32
	for i := 0; i < 20000; i++ {
		if i%100 == 0 {
			limits = *lim(uint32(1+r.IntN(8)), uint32(r.IntN(64)))
		}
		if r.IntN(50) == 0 {
			if b := c.Cut(); b != nil {
				out = append(out, b...)
			}
			continue
		}
		size := r.IntN(80)
		env := envelope(size, r.IntN(size+1))
		in = append(in, env)
		if c.Pending() == 0 {
			bound = 0
		}
		bound = max(bound, limits.MaxMessageCount, 1)
		batches, pending := c.Ordered(env)
		if len(batches) > 2 {
			t.Fatalf("step %d: %d batches", i, len(batches))
		}
		for _, b := range batches {
			if len(b) == 0 {
				t.Fatalf("step %d: empty batch", i)
			}
			if uint32(len(b)) > bound {
				t.Fatalf("step %d: batch of %d envelopes, MaxMessageCount at most %d", i, len(b), bound)
			}
			out = append(out, b...)
		}
		if pending != (c.Pending() > 0) {
			t.Fatalf("step %d: pending %v with %d envelopes pending", i, pending, c.Pending())
		}
		if c.PendingBytes() > uint64(limits.PreferredMaxBytes) {
			t.Fatalf("step %d: %d bytes pending, PreferredMaxBytes %d", i, c.PendingBytes(), limits.PreferredMaxBytes)
		}
		if uint32(c.Pending()) >= limits.MaxMessageCount && c.Pending() > 0 {
			t.Fatalf("step %d: %d envelopes pending, MaxMessageCount %d", i, c.Pending(), limits.MaxMessageCount)
		}
	}
	out = append(out, c.Cut()...)
	if !slices.Equal(in, out) {
		t.Fatalf("batches do not hold the %d envelopes in order (got %d)", len(in), len(out))
	}
}

func BenchmarkOrdered(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits Limits
		size   int
	}{
		{"count", Limits{MaxMessageCount: 500, AbsoluteMaxBytes: 10 << 20, PreferredMaxBytes: 2 << 20}, 1024},
		{"bytes", Limits{MaxMessageCount: 500, AbsoluteMaxBytes: 10 << 20, PreferredMaxBytes: 512 << 10}, 4096},
		{"oversized", Limits{MaxMessageCount: 500, AbsoluteMaxBytes: 10 << 20, PreferredMaxBytes: 512 << 10}, 1 << 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			env := envelope(bc.size, 64)
			c := New(func() Limits { return bc.limits })
			b.ReportAllocs()
			for b.Loop() {
				c.Ordered(env)
			}
		})
	}
}
