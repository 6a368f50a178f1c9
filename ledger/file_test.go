package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func openFile(t *testing.T, dir string, opts ...Option) *File {
	t.Helper()
	l, err := OpenFile(dir, append([]Option{WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err)
	return l
}

// writeLedger creates a ledger in a fresh directory holding blocks, closes
// it, and returns the directory and the data file's bytes.
func writeLedger(t *testing.T, blocks []*cb.Block) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	l := openFile(t, dir)
	appendAll(t, l, blocks)
	require.NoError(t, l.Close())
	data, err := os.ReadFile(filepath.Join(dir, DataFileName))
	require.NoError(t, err)
	return dir, data
}

// recordOffsets returns where each record of a data file starts, and the end
// of the last one.
func recordOffsets(t *testing.T, data []byte) []int64 {
	t.Helper()
	offs := []int64{headerSize}
	for off := int64(headerSize); off < int64(len(data)); {
		off += recHeaderSize + int64(binary.LittleEndian.Uint32(data[off:]))
		offs = append(offs, off)
	}
	require.Equal(t, int64(len(data)), offs[len(offs)-1])
	return offs
}

// dirWith returns a fresh directory whose data file holds data.
func dirWith(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, DataFileName), data, 0o644))
	return dir
}

// record frames payload as the file ledger does.
func record(payload []byte) []byte {
	r := make([]byte, recHeaderSize, recHeaderSize+len(payload))
	binary.LittleEndian.PutUint32(r, uint32(len(payload)))
	binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(payload, castagnoli))
	return append(r, payload...)
}

func TestFileReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir)
	appendAll(t, l, makeChain(20))
	require.NoError(t, l.Close())

	l = openFile(t, dir)
	require.Zero(t, l.Recovered())
	requireChain(t, makeChain(20), l)
	// The chain continues where it stopped.
	more := makeChain(21)
	require.ErrorIs(t, l.Append(more[19]), ErrOutOfOrder)
	require.NoError(t, l.Append(more[20]))
	require.NoError(t, l.Close())

	l = openFile(t, dir)
	defer l.Close()
	requireChain(t, makeChain(21), l)
}

func TestFileReopenEmpty(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, openFile(t, dir).Close())
	l := openFile(t, dir)
	defer l.Close()
	require.Zero(t, l.Height())
	require.Zero(t, l.Recovered())
}

func TestFileCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	l := openFile(t, dir)
	defer l.Close()
	require.FileExists(t, filepath.Join(dir, DataFileName))
	require.Equal(t, filepath.Join(dir, DataFileName), l.Path())
}

// TestFileTornTail cuts the file at every byte offset inside the last record,
// as a crash in the middle of its append would, and reopens it.
func TestFileTornTail(t *testing.T) {
	blocks := makeChain(5)
	_, data := writeLedger(t, blocks)
	offs := recordOffsets(t, data)
	start, end := offs[4], offs[5]
	for cut := start; cut < end; cut++ {
		t.Run(fmt.Sprint(cut-start), func(t *testing.T) {
			dir := dirWith(t, data[:cut])
			l := openFile(t, dir)
			require.Equal(t, cut-start, l.Recovered())
			requireChain(t, blocks[:4], l)
			fi, err := os.Stat(filepath.Join(dir, DataFileName))
			require.NoError(t, err)
			require.Equal(t, start, fi.Size(), "the torn record is truncated away")

			// The lost block can be appended again and survives a reopen.
			require.NoError(t, l.Append(makeChain(5)[4]))
			require.NoError(t, l.Close())
			l = openFile(t, dir)
			defer l.Close()
			require.Zero(t, l.Recovered())
			requireChain(t, blocks, l)
		})
	}
}

func TestFileTornTailGarbage(t *testing.T) {
	blocks := makeChain(3)
	_, data := writeLedger(t, blocks)
	huge := binary.LittleEndian.AppendUint32(nil, 1<<20)
	tests := []struct {
		name string
		tail []byte
	}{
		// The file grew but the data never reached the disk.
		{"zeros", make([]byte, 300)},
		{"length past the end", append(huge, 1, 2, 3, 4, 5, 6)},
		{"length too large", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 9}},
		{"bad checksum", func() []byte {
			r := record([]byte("a block that was never written whole"))
			r[5] ^= 1
			return r
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := dirWith(t, append(bytes.Clone(data), tc.tail...))
			l := openFile(t, dir)
			defer l.Close()
			require.Equal(t, int64(len(tc.tail)), l.Recovered())
			requireChain(t, blocks, l)
		})
	}
}

func TestFileRecoveryIsLogged(t *testing.T) {
	_, data := writeLedger(t, makeChain(2))
	dir := dirWith(t, data[:len(data)-3])
	var logs bytes.Buffer
	l, err := OpenFile(dir, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, uint64(1), l.Height())
	require.Contains(t, logs.String(), "torn tail")
	require.Contains(t, logs.String(), fmt.Sprintf("truncated_bytes=%d", l.Recovered()))
}

// TestFileCorruptMiddle damages a record that is followed by valid ones:
// OpenFile must name the file and the record, and change nothing.
func TestFileCorruptMiddle(t *testing.T) {
	_, data := writeLedger(t, makeChain(5))
	offs := recordOffsets(t, data)
	start, end := offs[2], offs[3]
	tests := []struct {
		name string
		at   int64 // byte offset inside block 2's record
		mask byte
	}{
		{"length low byte", 0, 0x01},
		{"length high byte", 3, 0x80},
		{"length shorter", 0, 0x08},
		{"checksum", 5, 0x10},
		{"payload first byte", recHeaderSize, 0x01},
		{"payload middle", (end - start) / 2, 0x40},
		{"payload last byte", end - start - 1, 0x80},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(data)
			bad[start+tc.at] ^= tc.mask
			dir := dirWith(t, bad)
			_, err := OpenFile(dir, WithLogger(quietLogger()))
			require.ErrorIs(t, err, ErrCorrupt)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, filepath.Join(dir, DataFileName), ce.File)
			require.Equal(t, start, ce.Offset)
			require.Contains(t, err.Error(), fmt.Sprintf("offset %d", start))
			after, rerr := os.ReadFile(filepath.Join(dir, DataFileName))
			require.NoError(t, rerr)
			require.Equal(t, bad, after, "a corrupt file is left untouched")
			// The lock is released: the operator can retry.
			_, err = OpenFile(dir, WithLogger(quietLogger()))
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

// TestFileBrokenChain writes records with good checksums whose blocks do not
// continue the chain.
func TestFileBrokenChain(t *testing.T) {
	blocks := makeChain(3)
	_, data := writeLedger(t, blocks[:2])
	marshal := func(b *cb.Block) []byte { return protoutil.MarshalOrPanic(b) }
	tests := []struct {
		name    string
		payload []byte
		reason  string
	}{
		{"number skips", marshal(protoutil.NewBlock(3, protoutil.HeaderHash(blocks[1].Header), nil)), "out of order"},
		{"number repeats", marshal(blocks[1]), "out of order"},
		{"previous hash", marshal(protoutil.NewBlock(2, []byte("other"), nil)), "hash mismatch"},
		{"data hash", func() []byte {
			b := nextBlock(blocks[1], "x")
			b.Data.Data[0] = []byte("y")
			return marshal(b)
		}(), "data hash"},
		{"not a block", []byte{0xff, 0xff, 0xff}, "does not decode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := dirWith(t, append(bytes.Clone(data), record(tc.payload)...))
			_, err := OpenFile(dir, WithLogger(quietLogger()))
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, int64(len(data)), ce.Offset)
			require.Contains(t, ce.Reason, tc.reason)
		})
	}
}

func TestFileHeader(t *testing.T) {
	_, data := writeLedger(t, nil)
	require.Len(t, data, headerSize)

	// A crash while creating the file leaves a prefix of the header.
	for n := range headerSize {
		dir := dirWith(t, data[:n])
		l := openFile(t, dir)
		require.Zero(t, l.Height())
		require.NoError(t, l.Append(makeChain(1)[0]))
		require.NoError(t, l.Close())
		l = openFile(t, dir)
		require.Equal(t, uint64(1), l.Height())
		require.NoError(t, l.Close())
	}

	v2 := bytes.Clone(data)
	binary.LittleEndian.PutUint32(v2[8:], 2)
	binary.LittleEndian.PutUint32(v2[12:], crc32.Checksum(v2[:12], castagnoli))
	badSum := bytes.Clone(data)
	badSum[13] ^= 1
	tests := []struct {
		name, data, reason string
	}{
		{"not a ledger", "hello, world, this is text", "bad magic"},
		{"short and not a ledger", "KCX", "bad magic"},
		{"newer version", string(v2), "unsupported format version 2"},
		{"header checksum", string(badSum), "header checksum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenFile(dirWith(t, []byte(tc.data)), WithLogger(quietLogger()))
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			require.Zero(t, ce.Offset)
			require.Contains(t, ce.Reason, tc.reason)
		})
	}
}

func TestFileBlockDetectsLaterDamage(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, WithCacheBlocks(0))
	defer l.Close()
	appendAll(t, l, makeChain(3))
	data, err := os.ReadFile(l.Path())
	require.NoError(t, err)
	offs := recordOffsets(t, data)

	f, err := os.OpenFile(l.Path(), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{data[offs[1]+10] ^ 0xff}, offs[1]+10)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, err = l.Block(1)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, offs[1], ce.Offset)
	_, err = l.Block(0)
	require.NoError(t, err)
}

func TestFileLocked(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir)
	_, err := OpenFile(dir)
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, l.Close())
	l = openFile(t, dir)
	require.NoError(t, l.Close())
}

func TestFileOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
		err  string
	}{
		{"SyncEvery(0)", WithSync(SyncEvery(0)), "invalid sync policy"},
		{"zero policy", WithSync(SyncPolicy(0)), "invalid sync policy"},
		{"negative cache", WithCacheBlocks(-1), "cannot be negative"},
		{"SyncEvery(3)", WithSync(SyncEvery(3)), ""},
		{"SyncNever", WithSync(SyncNever), ""},
		{"nil logger", WithLogger(nil), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := OpenFile(dir, tc.opt)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			appendAll(t, l, makeChain(5))
			require.NoError(t, l.Close())
			l = openFile(t, dir)
			defer l.Close()
			require.Equal(t, uint64(5), l.Height())
		})
	}
	require.Equal(t, "SyncEveryBlock", SyncEveryBlock.String())
	require.Equal(t, "SyncNever", SyncNever.String())
	require.Equal(t, "SyncEvery(4)", SyncEvery(4).String())
	require.Equal(t, SyncEveryBlock, SyncEvery(1))
}

func TestCorruptError(t *testing.T) {
	err := fmt.Errorf("opening: %w", &CorruptError{File: "/x/blocks.dat", Offset: 42, Reason: "record checksum mismatch"})
	require.ErrorIs(t, err, ErrCorrupt)
	require.NotErrorIs(t, err, ErrClosed)
	require.True(t, strings.HasSuffix(err.Error(), "/x/blocks.dat corrupt at offset 42: record checksum mismatch"), err.Error())
}

// TestFileLargeRecords damages records larger than the chunks in which
// OpenFile looks for a valid record after a damaged one.
func TestFileLargeRecords(t *testing.T) {
	big := strings.Repeat("x", 1536<<10)
	var blocks []*cb.Block
	var prev *cb.Block
	for i := range 3 {
		prev = nextBlock(prev, big, fmt.Sprint(i))
		blocks = append(blocks, prev)
	}
	_, data := writeLedger(t, blocks)
	offs := recordOffsets(t, data)

	bad := bytes.Clone(data)
	bad[offs[1]+3] ^= 0x01 // length of block 1 now runs past the end
	_, err := OpenFile(dirWith(t, bad), WithLogger(quietLogger()))
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, offs[1], ce.Offset)

	l := openFile(t, dirWith(t, data[:offs[3]-1]))
	defer l.Close()
	require.Equal(t, offs[3]-1-offs[2], l.Recovered())
	requireChain(t, blocks[:2], l)
}
