package ledger

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// FuzzOpenFile opens a file ledger whose data file holds the file header
// followed by records framed from the input (each a uvarint length, then
// that many bytes, given a valid length and checksum so that the content
// is what is tested), or, when the input starts with 0, the input's bytes
// as they are. Whatever the file holds, OpenFile returns an error or a
// ledger whose blocks read back with their own numbers, chained by hash,
// and that takes the next block; it never panics.
func FuzzOpenFile(f *testing.F) {
	blocks := makeChain(3)
	var framed []byte
	for _, b := range blocks {
		raw := protoutil.MarshalOrPanic(b)
		framed = binary.AppendUvarint(framed, uint64(len(raw)))
		framed = append(framed, raw...)
	}
	f.Add(framed)
	f.Add(framed[:len(framed)/2])
	dir := f.TempDir()
	l, err := OpenFile(dir, WithLogger(quietLogger()))
	require.NoError(f, err)
	appendAll(f, l, blocks)
	require.NoError(f, l.Close())
	data, err := os.ReadFile(filepath.Join(dir, DataFileName))
	require.NoError(f, err)
	header := data[:headerSize]
	f.Add(append([]byte{0}, data...))

	f.Fuzz(func(t *testing.T, in []byte) {
		var file []byte
		if len(in) > 0 && in[0] == 0 {
			file = in[1:]
		} else {
			file = append(file, header...)
			for len(in) > 0 {
				n, k := binary.Uvarint(in)
				if k <= 0 || n > uint64(len(in)-k) {
					break
				}
				file = append(file, record(in[k:k+int(n)])...)
				in = in[k+int(n):]
			}
		}
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, DataFileName), file, 0o644))
		l, err := OpenFile(dir, WithLogger(quietLogger()))
		if err != nil {
			return
		}
		defer l.Close()
		var prev []byte
		for n := range l.Height() {
			b, err := l.Block(n)
			require.NoError(t, err, "block %d of %d", n, l.Height())
			require.Equal(t, n, b.GetHeader().GetNumber())
			if n > 0 {
				require.Equal(t, prev, b.GetHeader().GetPreviousHash(), "block %d", n)
			}
			prev = protoutil.HeaderHash(b.Header)
		}
		next := nextBlock(nil, "next")
		if h := l.Height(); h > 0 {
			last, err := l.Block(h - 1)
			require.NoError(t, err)
			next = nextBlock(last, "next")
		}
		require.NoError(t, l.Append(next))
	})
}
