package ledger

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// benchBlocks returns n chained blocks of 10 envelopes of 1 KiB each. The
// blocks share their envelope bytes, so that building many costs little
// memory.
func benchBlocks(n int) ([]*cb.Block, int64) {
	data := make([][]byte, 10)
	size := 0
	for i := range data {
		data[i] = make([]byte, 1024)
		rand.Read(data[i])
		size += len(data[i])
	}
	dataHash := protoutil.DataHash(data)
	blocks := make([]*cb.Block, n)
	var prev []byte
	for i := range blocks {
		b := &cb.Block{
			Header:   &cb.BlockHeader{Number: uint64(i), PreviousHash: prev, DataHash: dataHash},
			Data:     &cb.BlockData{Data: data},
			Metadata: &cb.BlockMetadata{Metadata: make([][]byte, protoutil.MetadataSlots)},
		}
		prev = protoutil.HeaderHash(b.Header)
		blocks[i] = b
	}
	return blocks, int64(size)
}

func benchAppend(b *testing.B, l Ledger) {
	blocks, size := benchBlocks(b.N)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for _, blk := range blocks {
		if err := l.Append(blk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAppend(b *testing.B) {
	b.Run("Memory", func(b *testing.B) { benchAppend(b, NewMemory()) })
	for _, p := range []SyncPolicy{SyncEveryBlock, SyncEvery(100), SyncNever} {
		b.Run("File/"+p.String(), func(b *testing.B) {
			l, err := OpenFile(b.TempDir(), WithSync(p), WithLogger(quietLogger()))
			if err != nil {
				b.Fatal(err)
			}
			benchAppend(b, l)
		})
	}
}

// BenchmarkIterateFile reads a file ledger back from the start through an
// iterator, with the cache out of the way.
func BenchmarkIterateFile(b *testing.B) {
	l, err := OpenFile(b.TempDir(), WithSync(SyncNever), WithCacheBlocks(0), WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	blocks, size := benchBlocks(b.N)
	for _, blk := range blocks {
		if err := l.Append(blk); err != nil {
			b.Fatal(err)
		}
	}
	it := l.Iterator(0)
	defer it.Close()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := it.Next(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkFileVsRawWrite measures the file ledger against its baseline, a
// plain file that gets the same bytes with one write per block, side by
// side in alternating rounds (so both see the same machine and disk load),
// for fsync after every block and for no fsync. It reports the ledger's
// blocks/s, the raw file's, and their ratio: what checksums, framing, the
// index and the chain checks cost over the disk itself.
func BenchmarkFileVsRawWrite(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "sync-every-block"
		policy := SyncEveryBlock
		if !sync {
			name, policy = "no-sync", SyncNever
		}
		b.Run(name, func(b *testing.B) {
			l, err := OpenFile(b.TempDir(), WithSync(policy), WithLogger(quietLogger()))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			raw, err := os.Create(filepath.Join(b.TempDir(), "raw"))
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			blocks, size := benchBlocks(b.N)
			payload, err := proto.Marshal(blocks[0])
			if err != nil {
				b.Fatal(err)
			}
			const round = 100
			var ledgerTime, rawTime time.Duration
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += round {
				n := min(round, b.N-done)
				b.StartTimer()
				t := time.Now()
				for _, blk := range blocks[done : done+n] {
					if err := l.Append(blk); err != nil {
						b.Fatal(err)
					}
				}
				ledgerTime += time.Since(t)
				b.StopTimer()
				t = time.Now()
				for range n {
					if _, err := raw.Write(payload); err != nil {
						b.Fatal(err)
					}
					if sync {
						if err := raw.Sync(); err != nil {
							b.Fatal(err)
						}
					}
				}
				rawTime += time.Since(t)
			}
			ledgerRate := float64(b.N) / ledgerTime.Seconds()
			rawRate := float64(b.N) / rawTime.Seconds()
			b.ReportMetric(ledgerRate, "blocks/s")
			b.ReportMetric(rawRate, "raw-blocks/s")
			b.ReportMetric(ledgerRate/rawRate, "ratio-vs-raw")
		})
	}
}
