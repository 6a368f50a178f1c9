package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Reader reads a channel's chain of blocks.
//
// Blocks returned by a Reader are shared with the ledger and with other
// readers: callers must not modify them.
type Reader interface {
	// Height returns the number of blocks in the chain; the last block is
	// number Height()-1.
	Height() uint64
	// Block returns block n. It returns an error wrapping ErrNotFound when
	// n >= Height(), ErrClosed when the ledger is closed, and a
	// *CorruptError when the stored block cannot be read back intact.
	Block(n uint64) (*cb.Block, error)
	// Iterator returns an Iterator whose first Next returns block from.
	// from may be at or beyond Height(): Next then waits for the block to be
	// appended.
	Iterator(from uint64) Iterator
}

// Iterator returns consecutive blocks of a chain, waiting at the tip for the
// next block to be appended. An Iterator is used by one goroutine at a time;
// Close may be called from any goroutine. Iterators hold no goroutine, so an
// iterator that is never closed leaks nothing, but Close is the way to wake a
// Next that is waiting.
type Iterator interface {
	// Next returns the next block, waiting until it has been appended. It
	// returns ctx.Err() when ctx ends first, and ErrClosed when the ledger
	// or the iterator is closed. After an error the iterator stays at the
	// same block, so Next may be called again with a fresh context.
	Next(ctx context.Context) (*cb.Block, error)
	// Close ends the iterator: a waiting Next and every later Next return
	// ErrClosed. Close is idempotent.
	Close()
}

// Writer appends blocks to a chain. A Writer has a single appender: Append
// must not be called concurrently with itself (the implementations here
// serialise such calls, but the order between them is then unspecified).
type Writer interface {
	// Append adds b as block Height(). It takes ownership of b: the caller
	// must not modify b afterwards, and readers may be handed b itself.
	//
	// Append rejects, leaving the chain unchanged, a block that is
	// malformed (ErrInvalidBlock), whose number is not Height()
	// (ErrOutOfOrder), whose previous hash is not the header hash of the
	// last block or whose data hash does not match its data
	// (ErrHashMismatch). Block 0 may carry any previous hash. Append returns
	// ErrClosed after Close.
	Append(b *cb.Block) error
	// Height returns the number of blocks in the chain.
	Height() uint64
}

// Ledger is a channel's chain: a Reader and a Writer that must be closed.
type Ledger interface {
	Reader
	Writer
	// Close releases the ledger's resources and wakes every waiting
	// Iterator with ErrClosed. Later calls to any method return ErrClosed;
	// a second Close returns nil.
	Close() error
}

var (
	// ErrNotFound reports a block number at or beyond the height of the
	// chain.
	ErrNotFound = errors.New("ledger: block not found")
	// ErrClosed reports use of a closed ledger or iterator.
	ErrClosed = errors.New("ledger: closed")
	// ErrOutOfOrder reports an appended block whose number is not the
	// height of the chain.
	ErrOutOfOrder = errors.New("ledger: block out of order")
	// ErrHashMismatch reports an appended block whose previous hash is not
	// the header hash of the last block, or whose data hash does not match
	// its data.
	ErrHashMismatch = errors.New("ledger: hash mismatch")
	// ErrInvalidBlock reports an appended block that is malformed: nil, with
	// no header, or too large to store.
	ErrInvalidBlock = errors.New("ledger: invalid block")
	// ErrCorrupt is matched, through errors.Is, by every *CorruptError.
	ErrCorrupt = errors.New("ledger: corrupt")
	// ErrLocked reports that another File ledger, in this process or
	// another, already has the directory open.
	ErrLocked = errors.New("ledger: directory in use")
)

// CorruptError reports stored data that cannot be trusted: a record whose
// checksum does not match, a block that does not decode, or a chain whose
// numbers or hashes do not follow, at a given place in a file.
// errors.Is(err, ErrCorrupt) reports whether err is a *CorruptError.
type CorruptError struct {
	// File is the path of the damaged file.
	File string
	// Offset is the byte offset in File of the damaged record (or of the
	// file header when it is 0).
	Offset int64
	// Reason says what is wrong.
	Reason string
}

// Error describes the damage with its file and offset.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("ledger: %s corrupt at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// checkNext reports why b cannot follow a chain of the given height whose
// last header hashes to prevHash.
func checkNext(b *cb.Block, height uint64, prevHash []byte, verifyData bool) error {
	if b == nil || b.Header == nil {
		return fmt.Errorf("%w: block has no header", ErrInvalidBlock)
	}
	if n := b.Header.Number; n != height {
		return fmt.Errorf("%w: block %d appended at height %d", ErrOutOfOrder, n, height)
	}
	if height > 0 && string(b.Header.PreviousHash) != string(prevHash) {
		return fmt.Errorf("%w: block %d previous hash %x, header hash of block %d is %x",
			ErrHashMismatch, height, b.Header.PreviousHash, height-1, prevHash)
	}
	if !verifyData {
		return nil
	}
	if err := protoutil.CheckDataHash(b); err != nil {
		return fmt.Errorf("%w: %w", ErrHashMismatch, err)
	}
	return nil
}

// BuiltAppender is the optional interface of a Writer that can append a
// block its caller built itself (with protoutil.NewBlock, which computed
// the block's data hash from its data) without hashing the data again,
// which costs as much as building the block did. Memory and File implement
// it; a wrapper of a Writer can implement it by forwarding. A wrapper that
// embeds a Memory or File and overrides Append must override AppendBuilt
// too, or the chain's appends bypass its Append.
type BuiltAppender interface {
	// AppendBuilt makes every check of Append except recomputing the data
	// hash. A block that breaks the caller's promise is stored as it is,
	// and makes a File ledger fail to reopen with a *CorruptError.
	AppendBuilt(b *cb.Block) error
}

// AppendBuilt appends b, a block its caller built itself, to w: with w's
// AppendBuilt when w is a BuiltAppender, else with Append.
func AppendBuilt(w Writer, b *cb.Block) error {
	if ba, ok := w.(BuiltAppender); ok {
		return ba.AppendBuilt(b)
	}
	return w.Append(b)
}

// tip is the part of a ledger's state that iterators wait on: a channel that
// is closed, and replaced, whenever the chain grows or the ledger closes.
// Its fields are guarded by the owning ledger's mutex.
type tip struct {
	wake chan struct{}
}

func newTip() tip { return tip{wake: make(chan struct{})} }

// advance wakes every waiter. The caller holds the ledger's write lock.
func (t *tip) advance() {
	close(t.wake)
	t.wake = make(chan struct{})
}

// source is what an iterator reads from.
type source interface {
	// watch reports whether block n exists; if not, it returns a channel
	// that is closed when the chain grows or the ledger closes. It returns
	// ErrClosed when the ledger is closed.
	watch(n uint64) (ok bool, wake <-chan struct{}, err error)
	Block(n uint64) (*cb.Block, error)
}

type iterator struct {
	src       source
	next      uint64
	done      chan struct{}
	closeOnce sync.Once
}

func newIterator(src source, from uint64) *iterator {
	return &iterator{src: src, next: from, done: make(chan struct{})}
}

func (it *iterator) Next(ctx context.Context) (*cb.Block, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-it.done:
			return nil, ErrClosed
		default:
		}
		ok, wake, err := it.src.watch(it.next)
		if err != nil {
			return nil, err
		}
		if ok {
			b, err := it.src.Block(it.next)
			if err != nil {
				return nil, err
			}
			it.next++
			return b, nil
		}
		select {
		case <-wake:
		case <-it.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (it *iterator) Close() { it.closeOnce.Do(func() { close(it.done) }) }

var (
	_ BuiltAppender = (*Memory)(nil)
	_ BuiltAppender = (*File)(nil)
)
