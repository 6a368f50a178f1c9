package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Names of the files a File ledger keeps in its directory.
const (
	// DataFileName is the append-only file holding the blocks.
	DataFileName = "blocks.dat"
	// LockFileName is the file locked while a File ledger has the
	// directory open.
	LockFileName = "LOCK"
)

// On-disk format; see the package documentation.
const (
	fileMagic     = "KCLEDGER"
	fileVersion   = 1
	headerSize    = 16 // magic, version, CRC-32C of the first 12 bytes
	recHeaderSize = 8  // payload length, CRC-32C of the payload

	// MaxBlockBytes is the largest marshalled block a File ledger stores.
	MaxBlockBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func fileHeader() []byte {
	h := make([]byte, headerSize)
	copy(h, fileMagic)
	binary.LittleEndian.PutUint32(h[8:], fileVersion)
	binary.LittleEndian.PutUint32(h[12:], crc32.Checksum(h[:12], castagnoli))
	return h
}

// File is a crash-safe Ledger stored in a directory: blocks are appended as
// checksummed records to one file, and the index from block number to file
// offset is rebuilt by scanning the file when it is opened. See the package
// documentation for the format and for what happens after a crash.
//
// File is safe for concurrent use by one appender and any number of readers
// and iterators. Appends never block readers for the duration of a write or
// fsync.
type File struct {
	path      string
	cfg       fileConfig
	lock      *os.File
	recovered int64

	// appendMu serialises Append and Close, and guards the fields below it.
	appendMu sync.Mutex
	buf      []byte // record being written, reused
	lastHash []byte // header hash of the last block
	unsynced int    // blocks written since the last fsync
	failed   error  // a write or sync failed: the file state is unknown

	// mu guards the fields below it. Readers hold it shared while reading
	// the file so that Close cannot close the file under them.
	mu     sync.RWMutex
	f      *os.File
	offs   []int64     // offs[n] is where block n's record starts; offs[Height()] is the end of the data
	recent []*cb.Block // recently appended blocks, block n at n % len(recent)
	closed bool
	tip    tip
}

var _ Ledger = (*File)(nil)

// OpenFile opens the File ledger in dir, creating dir and an empty ledger if
// needed.
//
// OpenFile reads the whole chain back and checks every record's checksum,
// that the block numbers follow each other from 0, that each block's previous
// hash is the header hash of the block before it, and that each data hash
// matches its data. A damaged last record, which a crash in the middle of an
// Append leaves behind, is truncated away; Recovered reports how many bytes
// that removed, and the logger reports it too. Any other damage is returned
// as a *CorruptError naming the file and the offset of the damaged record,
// and the file is left as it is.
//
// Only one File may have dir open at a time, in any process: OpenFile returns
// an error wrapping ErrLocked otherwise.
func OpenFile(dir string, opts ...Option) (*File, error) {
	cfg := defaultFileConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("ledger: creating directory: %w", err)
		}
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, fmt.Errorf("ledger: syncing parent of %s: %w", dir, err)
		}
	}
	lock, err := lockFile(filepath.Join(dir, LockFileName))
	if err != nil {
		return nil, err
	}
	l := &File{
		path: filepath.Join(dir, DataFileName),
		cfg:  cfg,
		lock: lock,
		tip:  newTip(),
	}
	if cfg.cache > 0 {
		l.recent = make([]*cb.Block, cfg.cache)
	}
	if err := l.open(dir); err != nil {
		if l.f != nil {
			l.f.Close()
		}
		lock.Close()
		return nil, err
	}
	return l, nil
}

// open opens or creates the data file and loads the chain.
func (l *File) open(dir string) error {
	f, err := os.OpenFile(l.path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if f, err = os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
			return fmt.Errorf("ledger: creating %s: %w", l.path, err)
		}
		l.f = f
		if err := l.writeHeader(); err != nil {
			return err
		}
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("ledger: syncing directory %s: %w", dir, err)
		}
		l.offs = []int64{headerSize}
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: opening %s: %w", l.path, err)
	}
	l.f = f
	return l.load()
}

func (l *File) writeHeader() error {
	if _, err := l.f.WriteAt(fileHeader(), 0); err != nil {
		return fmt.Errorf("ledger: writing header of %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("ledger: syncing %s: %w", l.path, err)
	}
	return nil
}

// load checks the header, scans every record and truncates a torn tail.
func (l *File) load() error {
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	size := fi.Size()
	want := fileHeader()
	got := make([]byte, min(size, headerSize))
	if _, err := l.f.ReadAt(got, 0); err != nil {
		return fmt.Errorf("ledger: reading %s: %w", l.path, err)
	}
	if size < headerSize {
		// A crash while the file was being created: nothing was stored yet.
		if string(got) != string(want[:size]) {
			return &CorruptError{File: l.path, Offset: 0, Reason: "not a ledger file (bad magic)"}
		}
		l.cfg.logger.Warn("ledger: rewriting incomplete file header", "file", l.path, "size", size)
		if err := l.writeHeader(); err != nil {
			return err
		}
		l.offs = []int64{headerSize}
		return nil
	}
	if string(got[:8]) != fileMagic {
		return &CorruptError{File: l.path, Offset: 0, Reason: "not a ledger file (bad magic)"}
	}
	if string(got) != string(want) {
		v := binary.LittleEndian.Uint32(got[8:])
		if crc32.Checksum(got[:12], castagnoli) == binary.LittleEndian.Uint32(got[12:]) {
			return &CorruptError{File: l.path, Offset: 0, Reason: fmt.Sprintf("unsupported format version %d (want %d)", v, fileVersion)}
		}
		return &CorruptError{File: l.path, Offset: 0, Reason: "file header checksum mismatch"}
	}

	end, bad, err := l.scan(size)
	if err != nil {
		return err
	}
	if bad == "" {
		return nil
	}
	// The record at end is damaged. If a whole valid record follows it, it
	// is not the tail of an interrupted append: report it.
	if next, ok, err := findRecord(l.f, end+1, size); err != nil {
		return fmt.Errorf("ledger: reading %s: %w", l.path, err)
	} else if ok {
		return &CorruptError{File: l.path, Offset: end,
			Reason: fmt.Sprintf("block %d: %s (a valid record follows at offset %d)", len(l.offs)-1, bad, next)}
	}
	l.cfg.logger.Warn("ledger: truncating torn tail left by an interrupted append",
		"file", l.path, "offset", end, "truncated_bytes", size-end, "reason", bad, "height", len(l.offs)-1)
	if err := l.f.Truncate(end); err != nil {
		return fmt.Errorf("ledger: truncating %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("ledger: syncing %s: %w", l.path, err)
	}
	l.recovered = size - end
	return nil
}

// scan reads the records from the file header up to size, checking the
// chain, and fills the index, the cache and lastHash. It stops at the first
// record that is incomplete or fails its checksum, returning its offset and
// why; such a record may be a torn tail. A record with a good checksum that
// does not continue the chain is returned as a *CorruptError.
func (l *File) scan(size int64) (end int64, bad string, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(l.f, headerSize, size-headerSize), 1<<20)
	off := int64(headerSize)
	l.offs = []int64{off}
	var hdr [recHeaderSize]byte
	var payload []byte
	for off < size {
		height := uint64(len(l.offs) - 1)
		if size-off < recHeaderSize {
			return off, "incomplete record header", nil
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return 0, "", fmt.Errorf("ledger: reading %s: %w", l.path, err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n == 0 || n > MaxBlockBytes {
			return off, fmt.Sprintf("invalid record length %d", n), nil
		}
		if off+recHeaderSize+n > size {
			return off, fmt.Sprintf("record of %d bytes extends past the end of the file", n), nil
		}
		if int64(cap(payload)) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return 0, "", fmt.Errorf("ledger: reading %s: %w", l.path, err)
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, "record checksum mismatch", nil
		}
		b := new(cb.Block)
		if err := proto.Unmarshal(payload, b); err != nil {
			return 0, "", &CorruptError{File: l.path, Offset: off, Reason: fmt.Sprintf("block %d does not decode: %v", height, err)}
		}
		if err := checkNext(b, height, l.lastHash, true); err != nil {
			return 0, "", &CorruptError{File: l.path, Offset: off, Reason: fmt.Sprintf("chain broken: %v", err)}
		}
		l.lastHash = protoutil.HeaderHash(b.Header)
		off += recHeaderSize + n
		l.offs = append(l.offs, off)
		if len(l.recent) > 0 {
			l.recent[height%uint64(len(l.recent))] = b
		}
	}
	return off, "", nil
}

// findRecord reports the offset of the first whole record with a good
// checksum starting in [from, size) of f.
func findRecord(f *os.File, from, size int64) (int64, bool, error) {
	const chunk = 1 << 20
	buf := make([]byte, chunk+recHeaderSize)
	var payload []byte
	for base := from; base+recHeaderSize <= size; base += chunk {
		m, err := f.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, false, err
		}
		for i := 0; i < chunk && i+recHeaderSize <= m; i++ {
			p := base + int64(i)
			n := int64(binary.LittleEndian.Uint32(buf[i:]))
			if n == 0 || n > MaxBlockBytes || p+recHeaderSize+n > size {
				continue
			}
			sum := binary.LittleEndian.Uint32(buf[i+4:])
			var data []byte
			if int64(i)+recHeaderSize+n <= int64(m) {
				data = buf[i+recHeaderSize : int64(i)+recHeaderSize+n]
			} else {
				if int64(cap(payload)) < n {
					payload = make([]byte, n)
				}
				data = payload[:n]
				if _, err := f.ReadAt(data, p+recHeaderSize); err != nil {
					return 0, false, err
				}
			}
			if crc32.Checksum(data, castagnoli) == sum {
				return p, true, nil
			}
		}
	}
	return 0, false, nil
}

// Recovered returns the number of bytes of a torn last record that OpenFile
// truncated away, or 0 when the file ended with a whole record.
func (l *File) Recovered() int64 { return l.recovered }

// Path returns the path of the data file.
func (l *File) Path() string { return l.path }

// Height returns the number of blocks in the chain.
func (l *File) Height() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return uint64(len(l.offs) - 1)
}

// Append writes b as the next block with a single write, then syncs the file
// as the SyncPolicy says; see Writer.Append for the checks it makes. If the
// write or the sync fails, Append returns the error and every later Append
// fails too: the ledger must be closed and reopened, which recovers the file.
func (l *File) Append(b *cb.Block) error { return l.append(b, true) }

// AppendBuilt is Append for a block its caller built itself: it makes
// every check but hashing the block's data again (see BuiltAppender).
func (l *File) AppendBuilt(b *cb.Block) error { return l.append(b, false) }

func (l *File) append(b *cb.Block, verifyData bool) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.failed != nil {
		return fmt.Errorf("ledger: an earlier append failed: %w", l.failed)
	}
	l.mu.RLock()
	closed, height, end := l.closed, uint64(len(l.offs)-1), l.offs[len(l.offs)-1]
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if err := checkNext(b, height, l.lastHash, verifyData); err != nil {
		return err
	}

	var room [recHeaderSize]byte
	buf, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(append(l.buf[:0], room[:]...), b)
	if err != nil {
		return fmt.Errorf("%w: block %d does not marshal: %w", ErrInvalidBlock, height, err)
	}
	if cap(buf) <= 4<<20 {
		l.buf = buf
	}
	n := len(buf) - recHeaderSize
	if n > MaxBlockBytes {
		return fmt.Errorf("%w: block %d is %d bytes, more than %d", ErrInvalidBlock, height, n, MaxBlockBytes)
	}
	binary.LittleEndian.PutUint32(buf[0:], uint32(n))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(buf[recHeaderSize:], castagnoli))

	if _, err := l.f.WriteAt(buf, end); err != nil {
		err = fmt.Errorf("ledger: writing block %d to %s: %w", height, l.path, err)
		if terr := l.f.Truncate(end); terr != nil {
			l.failed = err
		}
		return err
	}
	l.unsynced++
	if l.cfg.sync != SyncNever && l.unsynced >= int(l.cfg.sync) {
		if err := l.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages: nothing written since the last good sync can be
			// trusted until the file is read again.
			l.failed = fmt.Errorf("ledger: syncing %s after block %d: %w", l.path, height, err)
			return l.failed
		}
		l.unsynced = 0
	}
	l.lastHash = protoutil.HeaderHash(b.Header)

	l.mu.Lock()
	l.offs = append(l.offs, end+int64(len(buf)))
	if len(l.recent) > 0 {
		l.recent[height%uint64(len(l.recent))] = b
	}
	l.tip.advance()
	l.mu.Unlock()
	return nil
}

// Block returns block n: from the cache of recently appended blocks, or read
// from the file and checked against its checksum.
func (l *File) Block(n uint64) (*cb.Block, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	height := uint64(len(l.offs) - 1)
	if n >= height {
		return nil, fmt.Errorf("%w: block %d, height %d", ErrNotFound, n, height)
	}
	if k := uint64(len(l.recent)); k > 0 && height-n <= k {
		if b := l.recent[n%k]; b != nil && b.Header.Number == n {
			return b, nil
		}
	}
	off, end := l.offs[n], l.offs[n+1]
	rec := make([]byte, end-off)
	if _, err := l.f.ReadAt(rec, off); err != nil {
		return nil, fmt.Errorf("ledger: reading block %d from %s: %w", n, l.path, err)
	}
	corrupt := func(reason string) error {
		return &CorruptError{File: l.path, Offset: off, Reason: fmt.Sprintf("block %d: %s", n, reason)}
	}
	payload := rec[recHeaderSize:]
	if int(binary.LittleEndian.Uint32(rec)) != len(payload) {
		return nil, corrupt("record length changed since the file was opened")
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rec[4:]) {
		return nil, corrupt("record checksum mismatch")
	}
	b := new(cb.Block)
	if err := proto.Unmarshal(payload, b); err != nil {
		return nil, corrupt(fmt.Sprintf("does not decode: %v", err))
	}
	if b.GetHeader().GetNumber() != n {
		return nil, corrupt(fmt.Sprintf("record holds block %d", b.GetHeader().GetNumber()))
	}
	return b, nil
}

// Iterator returns an Iterator starting at block from.
func (l *File) Iterator(from uint64) Iterator { return newIterator(l, from) }

func (l *File) watch(n uint64) (bool, <-chan struct{}, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false, nil, ErrClosed
	}
	return n < uint64(len(l.offs)-1), l.tip.wake, nil
}

// Close syncs blocks not yet synced, closes the file, releases the directory
// lock and wakes waiting iterators with ErrClosed. It waits for an Append in
// progress. A second Close returns nil.
func (l *File) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.recent = nil
	l.tip.advance()

	var errs []error
	if l.unsynced > 0 && l.failed == nil {
		if err := l.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("ledger: syncing %s: %w", l.path, err))
		}
	}
	if err := l.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("ledger: closing %s: %w", l.path, err))
	}
	if err := l.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("ledger: releasing lock: %w", err))
	}
	return errors.Join(errs...)
}
