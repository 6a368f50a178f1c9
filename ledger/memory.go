package ledger

import (
	"fmt"
	"sync"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Memory is a Ledger held in memory, for tests, experiments and nodes that
// rebuild their chain from elsewhere on restart. It keeps every appended
// block and hands the same *cb.Block to every reader. It is safe for
// concurrent use.
type Memory struct {
	mu       sync.RWMutex
	blocks   []*cb.Block
	lastHash []byte // header hash of the last block
	closed   bool
	tip      tip
}

var _ Ledger = (*Memory)(nil)

// NewMemory returns an empty in-memory ledger.
func NewMemory() *Memory {
	return &Memory{tip: newTip()}
}

// Height returns the number of blocks in the chain.
func (m *Memory) Height() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return uint64(len(m.blocks))
}

// Append adds b as the next block; see Writer.Append for the checks it makes
// and the errors it returns.
func (m *Memory) Append(b *cb.Block) error { return m.append(b, true) }

// AppendBuilt is Append for a block its caller built itself: it makes
// every check but hashing the block's data again (see BuiltAppender).
func (m *Memory) AppendBuilt(b *cb.Block) error { return m.append(b, false) }

func (m *Memory) append(b *cb.Block, verifyData bool) error {
	m.mu.RLock()
	closed, height, prev := m.closed, uint64(len(m.blocks)), m.lastHash
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	// Hashing happens outside the lock so that readers are not held up.
	if err := checkNext(b, height, prev, verifyData); err != nil {
		return err
	}
	h := protoutil.HeaderHash(b.Header)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if uint64(len(m.blocks)) != height {
		return fmt.Errorf("%w: block %d appended concurrently with another", ErrOutOfOrder, b.Header.Number)
	}
	m.blocks = append(m.blocks, b)
	m.lastHash = h
	m.tip.advance()
	return nil
}

// Block returns block n, shared with the ledger.
func (m *Memory) Block(n uint64) (*cb.Block, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if n >= uint64(len(m.blocks)) {
		return nil, fmt.Errorf("%w: block %d, height %d", ErrNotFound, n, len(m.blocks))
	}
	return m.blocks[n], nil
}

// Iterator returns an Iterator starting at block from.
func (m *Memory) Iterator(from uint64) Iterator { return newIterator(m, from) }

func (m *Memory) watch(n uint64) (bool, <-chan struct{}, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false, nil, ErrClosed
	}
	return n < uint64(len(m.blocks)), m.tip.wake, nil
}

// Close drops the blocks and wakes waiting iterators with ErrClosed. It
// always returns nil.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.blocks = nil
	m.tip.advance()
	return nil
}
