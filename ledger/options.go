package ledger

import (
	"fmt"
	"log/slog"
)

// SyncPolicy says when a File ledger forces appended blocks to stable
// storage with fsync. Use SyncEveryBlock, SyncNever or SyncEvery.
type SyncPolicy int

const (
	// SyncEveryBlock makes Append return only once the block is on stable
	// storage: a block acknowledged by Append survives a machine crash.
	// It is the default.
	SyncEveryBlock SyncPolicy = 1
	// SyncNever leaves flushing to the operating system (and to Close).
	// A process crash loses nothing, but a machine crash may lose recently
	// appended blocks or leave them damaged, which OpenFile then reports.
	SyncNever SyncPolicy = -1
)

// SyncEvery returns a policy that syncs after every n appended blocks (and on
// Close); a machine crash may lose up to n-1 acknowledged blocks. SyncEvery(1)
// is SyncEveryBlock. n must be at least 1.
func SyncEvery(n int) SyncPolicy { return SyncPolicy(n) }

// String describes p.
func (p SyncPolicy) String() string {
	switch {
	case p == SyncNever:
		return "SyncNever"
	case p == SyncEveryBlock:
		return "SyncEveryBlock"
	case p > 1:
		return fmt.Sprintf("SyncEvery(%d)", int(p))
	default:
		return fmt.Sprintf("SyncPolicy(%d)", int(p))
	}
}

// Option configures OpenFile.
type Option func(*fileConfig)

type fileConfig struct {
	sync   SyncPolicy
	logger *slog.Logger
	cache  int
}

// DefaultCacheBlocks is the number of recently appended blocks a File keeps
// decoded in memory unless WithCacheBlocks says otherwise.
const DefaultCacheBlocks = 16

func defaultFileConfig() fileConfig {
	return fileConfig{sync: SyncEveryBlock, logger: slog.Default(), cache: DefaultCacheBlocks}
}

func (c *fileConfig) validate() error {
	if c.sync != SyncNever && c.sync < 1 {
		return fmt.Errorf("ledger: invalid sync policy %v: use SyncEveryBlock, SyncNever or SyncEvery(n) with n >= 1", c.sync)
	}
	if c.cache < 0 {
		return fmt.Errorf("ledger: WithCacheBlocks(%d): the cache size cannot be negative", c.cache)
	}
	return nil
}

// WithSync sets when appended blocks are synced to stable storage; the
// default is SyncEveryBlock.
func WithSync(p SyncPolicy) Option { return func(c *fileConfig) { c.sync = p } }

// WithLogger sets the logger that reports recovery on open; nil, like the
// default, means slog.Default(). To discard the messages, pass
// slog.New(slog.DiscardHandler).
func WithLogger(l *slog.Logger) Option {
	return func(c *fileConfig) {
		if l == nil {
			l = slog.Default()
		}
		c.logger = l
	}
}

// WithCacheBlocks sets how many of the most recently appended blocks the
// ledger keeps decoded in memory, so that iterators following the tip do not
// read the file; 0 disables the cache. The default is DefaultCacheBlocks.
func WithCacheBlocks(n int) Option { return func(c *fileConfig) { c.cache = n } }
