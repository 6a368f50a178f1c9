// Package ledger stores a channel's chain of blocks for an ordering node:
// the consensus loop appends each block it cuts through a Writer, and
// delivery services read blocks and follow the tip through a Reader.
//
// Two implementations are provided: Memory, for tests and experiments, and
// File, a crash-safe store in a directory. Both are safe for concurrent use
// by one appender and any number of readers and iterators.
//
// # Usage
//
//	l, err := ledger.OpenFile(dir)             // or ledger.NewMemory()
//	if err != nil { ... }                      // *CorruptError, ErrLocked, I/O
//	defer l.Close()
//	resume := l.Height()                       // the next block number to write
//	...
//	err = l.Append(block)                      // block.Header.Number == l.Height()
//
//	it := l.Iterator(from)                     // a delivery service
//	defer it.Close()
//	for {
//		b, err := it.Next(ctx)                 // waits at the tip
//		if err != nil { return err }           // ctx.Err() or ErrClosed
//		send(b)                                // b is shared: do not modify it
//	}
//
// # Invariants
//
// After a successful Append of block n, and only then:
//   - Height() == n+1 and Block(n) returns it (the same *cb.Block for Memory
//     and while it is cached by File, an equal decoded copy otherwise);
//   - block n's number is n, its previous hash is the header hash
//     (protoutil.HeaderHash) of block n-1 (block 0 may carry any previous
//     hash), and its data hash matches its data (protoutil.CheckDataHash).
//
// AppendBuilt is Append for a writer that built the block itself (a
// chain): on Memory and File it skips hashing the block's data again.
//
// A rejected Append changes nothing. Blocks are never removed or replaced:
// readers may cache what they read. Iterators return blocks in order without
// gaps, wait at the tip without a goroutine of their own, and return
// ErrClosed once the ledger or the iterator is closed.
//
// # File format
//
// A File ledger's directory holds LOCK, locked with flock(2) while the ledger
// is open, and blocks.dat. All integers are little-endian. blocks.dat starts
// with a 16-byte header:
//
//	"KCLEDGER" | version uint32 (1) | CRC-32C of the 12 bytes before
//
// followed by one record per block, block 0 first:
//
//	length uint32 | CRC-32C (Castagnoli) of payload uint32 | payload
//
// where payload is the protobuf-marshalled common.Block, between 1 byte and
// MaxBlockBytes long. Each record is written with a single write at the end
// of the file. There is no stored index: OpenFile reads the file once,
// checking every checksum and the chain (numbers, previous hashes, data
// hashes), and keeps the offset of each record in memory (8 bytes a block).
// Block reads a record with one positioned read and checks its checksum
// again; the most recently appended blocks (WithCacheBlocks) are served from
// memory, so iterators that follow the tip do not touch the file.
//
// # Crashes
//
// With SyncEveryBlock (the default), Append returns only after the record is
// on stable storage, and a newly created file and its directory entry are
// synced before OpenFile returns. A crash in the middle of an Append can leave
// an incomplete last record: a short header, a short payload, a bad checksum,
// or zeros where the file grew but its data never reached the disk. OpenFile
// truncates such a tail back to the end of the last whole record, logs it as a
// warning and reports the number of bytes removed by Recovered; the block it
// held was never acknowledged and can be appended again. A damaged record
// that is followed by a valid one cannot be a torn append: OpenFile then
// fails with a *CorruptError naming the file and the record's offset and
// modifies nothing, as it does for a record with a good checksum that does
// not continue the chain. Data is never dropped silently.
//
// With SyncEvery(n) or SyncNever, a process crash loses nothing (the data is
// in the operating system's cache), but a machine crash may lose the blocks
// appended since the last sync, and may leave damage that OpenFile reports
// as a *CorruptError rather than repairs. If a write or fsync fails, Append
// returns the error and the ledger refuses further appends: close it and
// open it again, which re-reads and re-checks the file.
package ledger
