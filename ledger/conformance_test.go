package ledger

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// ledgerKinds are the implementations the conformance suite runs against.
var ledgerKinds = []struct {
	name string
	open func(t *testing.T) Ledger
}{
	{"Memory", func(t *testing.T) Ledger { return NewMemory() }},
	{"File", func(t *testing.T) Ledger {
		l, err := OpenFile(t.TempDir(), WithLogger(quietLogger()))
		require.NoError(t, err)
		return l
	}},
	{"FileNoCacheSyncNever", func(t *testing.T) Ledger {
		l, err := OpenFile(t.TempDir(), WithLogger(quietLogger()), WithCacheBlocks(0), WithSync(SyncNever))
		require.NoError(t, err)
		return l
	}},
}

func TestConformance(t *testing.T) {
	for _, kind := range ledgerKinds {
		t.Run(kind.name, func(t *testing.T) {
			for _, tc := range conformanceTests {
				t.Run(tc.name, func(t *testing.T) {
					l := kind.open(t)
					defer func() { require.NoError(t, l.Close()) }()
					tc.run(t, l)
				})
			}
		})
	}
}

var conformanceTests = []struct {
	name string
	run  func(t *testing.T, l Ledger)
}{
	{"Empty", testEmpty},
	{"AppendAndRead", testAppendAndRead},
	{"RejectsBadBlocks", testRejectsBadBlocks},
	{"GenesisAnyPreviousHash", testGenesisAnyPreviousHash},
	{"IteratorReadsExisting", testIteratorReadsExisting},
	{"IteratorWaitsForAppend", testIteratorWaitsForAppend},
	{"IteratorContextEnds", testIteratorContextEnds},
	{"IteratorClose", testIteratorClose},
	{"CloseWakesIterators", testCloseWakesIterators},
	{"UseAfterClose", testUseAfterClose},
	{"ConcurrentReadersAndIterators", testConcurrentReadersAndIterators},
}

func testEmpty(t *testing.T, l Ledger) {
	require.Zero(t, l.Height())
	_, err := l.Block(0)
	require.ErrorIs(t, err, ErrNotFound)
}

func testAppendAndRead(t *testing.T, l Ledger) {
	blocks := makeChain(10)
	for i, b := range blocks {
		require.NoError(t, l.Append(b))
		require.Equal(t, uint64(i+1), l.Height())
	}
	requireChain(t, makeChain(10), l)
	_, err := l.Block(10)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, "block 10")
}

func testRejectsBadBlocks(t *testing.T, l Ledger) {
	blocks := makeChain(3)
	appendAll(t, l, blocks[:2])
	good := blocks[2]
	tests := []struct {
		name  string
		block *cb.Block
		want  error
	}{
		{"nil block", nil, ErrInvalidBlock},
		{"no header", &cb.Block{Data: good.Data}, ErrInvalidBlock},
		{"number too high", protoutil.NewBlock(3, good.Header.PreviousHash, nil), ErrOutOfOrder},
		{"number already used", nextBlock(blocks[0], "again"), ErrOutOfOrder},
		{"previous hash of another block", protoutil.NewBlock(2, protoutil.HeaderHash(blocks[0].Header), nil), ErrHashMismatch},
		{"no previous hash", protoutil.NewBlock(2, nil, nil), ErrHashMismatch},
		{"data hash does not match data", func() *cb.Block {
			b := nextBlock(blocks[1], "x")
			b.Data.Data[0] = []byte("y")
			return b
		}(), ErrHashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Append(tc.block)
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, uint64(2), l.Height(), "a rejected block leaves the chain unchanged")
		})
	}
	require.NoError(t, l.Append(good))
	requireChain(t, makeChain(3), l)
}

func testGenesisAnyPreviousHash(t *testing.T, l Ledger) {
	g := protoutil.NewBlock(0, []byte("whatever came before"), [][]byte{[]byte("genesis")})
	require.NoError(t, l.Append(g))
	require.NoError(t, l.Append(nextBlock(g, "tx")))
	require.Equal(t, uint64(2), l.Height())
}

func testIteratorReadsExisting(t *testing.T, l Ledger) {
	appendAll(t, l, makeChain(5))
	want := makeChain(5)
	it := l.Iterator(2)
	defer it.Close()
	for _, b := range want[2:] {
		got, err := it.Next(context.Background())
		require.NoError(t, err)
		requireBlock(t, b, got)
	}
}

func testIteratorWaitsForAppend(t *testing.T, l Ledger) {
	blocks := makeChain(4)
	appendAll(t, l, blocks[:1])
	// Start beyond the tip: Next waits for blocks 1, 2 and then returns 3.
	it := l.Iterator(3)
	defer it.Close()
	got := make(chan *cb.Block)
	errc := make(chan error, 1)
	go func() {
		b, err := it.Next(context.Background())
		errc <- err
		got <- b
	}()
	for _, b := range blocks[1:3] {
		require.NoError(t, l.Append(b))
		select {
		case err := <-errc:
			t.Fatalf("Next returned before block 3 was appended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.NoError(t, l.Append(blocks[3]))
	select {
	case err := <-errc:
		require.NoError(t, err)
		requireBlock(t, makeChain(4)[3], <-got)
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after the block was appended")
	}
}

func testIteratorContextEnds(t *testing.T, l Ledger) {
	blocks := makeChain(1)
	it := l.Iterator(0)
	defer it.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := it.Next(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = it.Next(ctx)
	require.ErrorIs(t, err, context.Canceled)

	// The iterator has not moved: with a live context it returns block 0.
	require.NoError(t, l.Append(blocks[0]))
	b, err := it.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(0), b.Header.Number)
}

func testIteratorClose(t *testing.T, l Ledger) {
	appendAll(t, l, makeChain(1))
	it := l.Iterator(1)
	errc := make(chan error, 1)
	go func() {
		_, err := it.Next(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	it.Close()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Next")
	}
	it.Close() // idempotent
	_, err := it.Next(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	// The ledger itself is still usable.
	require.Equal(t, uint64(1), l.Height())
}

func testCloseWakesIterators(t *testing.T, l Ledger) {
	appendAll(t, l, makeChain(2))
	const waiters = 5
	errc := make(chan error, waiters)
	for range waiters {
		it := l.Iterator(2)
		defer it.Close()
		go func() {
			_, err := it.Next(context.Background())
			errc <- err
		}()
	}
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, l.Close())
	for range waiters {
		select {
		case err := <-errc:
			require.ErrorIs(t, err, ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake every iterator")
		}
	}
}

func testUseAfterClose(t *testing.T, l Ledger) {
	blocks := makeChain(2)
	appendAll(t, l, blocks[:1])
	it := l.Iterator(0)
	defer it.Close()
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "a second Close returns nil")
	require.ErrorIs(t, l.Append(blocks[1]), ErrClosed)
	_, err := l.Block(0)
	require.ErrorIs(t, err, ErrClosed)
	_, err = it.Next(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	_, err = l.Iterator(0).Next(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}

// testConcurrentReadersAndIterators appends while iterators follow the tip
// and readers fetch random blocks; run it with -race.
func testConcurrentReadersAndIterators(t *testing.T, l Ledger) {
	const n = 200
	blocks := makeChain(n)
	want := makeChain(n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for i := range 4 {
		it := l.Iterator(uint64(i * 10))
		wg.Go(func() {
			defer it.Close()
			var prev *cb.Block
			for k := i * 10; k < n; k++ {
				b, err := it.Next(ctx)
				if !assert.NoError(t, err) {
					return
				}
				if !assert.Equal(t, uint64(k), b.Header.Number) {
					return
				}
				if prev != nil {
					assert.Equal(t, protoutil.HeaderHash(prev.Header), b.Header.PreviousHash)
				}
				assert.NoError(t, protoutil.CheckDataHash(b))
				prev = b
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for k := uint64(r); ; k += 7 {
				select {
				case <-stop:
					return
				default:
				}
				h := l.Height()
				if h == 0 {
					continue
				}
				b, err := l.Block(k % h)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, want[k%h].Header.DataHash, b.Header.DataHash)
				_, err = l.Block(^uint64(0))
				assert.True(t, errors.Is(err, ErrNotFound))
			}
		})
	}
	appendAll(t, l, blocks)
	wg.Wait()
	close(stop)
	readers.Wait()
	requireChain(t, want, l)
}

// TestAppendBuilt checks that AppendBuilt makes every check of Append but
// the data hash on a BuiltAppender (Memory, File, a wrapper that embeds
// one), and is a plain Append on any other Writer (a wrapper that hides
// the optional interface).
func TestAppendBuilt(t *testing.T) {
	type embedding struct{ *Memory }
	type hiding struct{ Ledger }
	for name, open := range map[string]func(t *testing.T) (Ledger, bool){
		"Memory": func(t *testing.T) (Ledger, bool) { return NewMemory(), false },
		"File": func(t *testing.T) (Ledger, bool) {
			l, err := OpenFile(t.TempDir(), WithLogger(quietLogger()))
			require.NoError(t, err)
			return l, false
		},
		"Memory embedded": func(t *testing.T) (Ledger, bool) { return embedding{NewMemory()}, false },
		"Memory hidden":   func(t *testing.T) (Ledger, bool) { return hiding{NewMemory()}, true },
	} {
		t.Run(name, func(t *testing.T) {
			l, verifies := open(t)
			defer l.Close()
			g := protoutil.NewBlock(0, nil, [][]byte{[]byte("g")})
			require.NoError(t, AppendBuilt(l, g))
			require.ErrorIs(t, AppendBuilt(l, protoutil.NewBlock(5, protoutil.HeaderHash(g.Header), nil)), ErrOutOfOrder)
			require.ErrorIs(t, AppendBuilt(l, protoutil.NewBlock(1, []byte("x"), nil)), ErrHashMismatch)
			bad := protoutil.NewBlock(1, protoutil.HeaderHash(g.Header), [][]byte{[]byte("a")})
			bad.Data.Data[0] = []byte("b")
			require.ErrorIs(t, l.Append(bad), ErrHashMismatch, "Append checks the data hash")
			if verifies {
				require.ErrorIs(t, AppendBuilt(l, bad), ErrHashMismatch)
				return
			}
			require.NoError(t, AppendBuilt(l, protoutil.NewBlock(1, protoutil.HeaderHash(g.Header), [][]byte{[]byte("a")})))
			require.EqualValues(t, 2, l.Height())
		})
	}
}
