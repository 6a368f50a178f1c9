package consensus

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// The outcomes of a log check that stop a chain from trusting the log.
// The *LogError a check returns unwraps to one of them; the first three
// also unwrap to ErrInconsistent.
var (
	// ErrLogReplaced reports that the channel's topic is not the one the
	// ledger was cut from: its topic ID differs (the topic was deleted and
	// created again).
	ErrLogReplaced = errors.New("consensus: log replaced")
	// ErrLogTruncated reports that the log ends before the next offset the
	// ledger expects: records the ledger holds are gone from the log.
	ErrLogTruncated = errors.New("consensus: log truncated")
	// ErrLogDiverged reports that the record the ledger's last block was cut
	// from is still in the log but is another record now (an unclean leader
	// election, or a rewritten log).
	ErrLogDiverged = errors.New("consensus: log diverged")
	// ErrRecordsMissing reports that the log no longer holds records the
	// node has not consumed yet (retention or DeleteRecords removed them).
	// A chain with block sources catches up from them; without a source
	// that can serve the missing blocks it halts with this error.
	ErrRecordsMissing = errors.New("consensus: records missing from the log")
)

// LogView is what a node read of its channel's partition, for Core.CheckLog.
type LogView struct {
	// TopicID is the topic's ID as the brokers report it (nil if they do
	// not report topic IDs).
	TopicID []byte
	// Start is the partition's log start offset: its first record.
	Start int64
	// End is the partition's end offset (high watermark): the offset the
	// next record will get.
	End int64
	// Fingerprinted is the first record at or after the offset of the
	// core's fingerprint (see Core.FingerprintOffset), read when that
	// offset lies in [Start, End); nil otherwise.
	Fingerprinted *Record
}

// LogError is the outcome of a log check that found the log cannot be
// trusted as it is. Kind is ErrLogReplaced, ErrLogTruncated, ErrLogDiverged
// or ErrRecordsMissing; use errors.Is on the error itself.
type LogError struct {
	Kind    error
	Channel string
	// Next is the offset the node would consume next (Core.Position).
	Next int64
	// Start and End are the partition's log start and end offsets.
	Start, End int64
	// Detail says what differs (topic IDs, fingerprints).
	Detail string
}

// Error names the outcome, the channel, the offsets and what differs; for
// missing records it names the missing range.
func (e *LogError) Error() string {
	s := fmt.Sprintf("%v: channel %s: next offset %d, log offsets [%d, %d)", e.Kind, e.Channel, e.Next, e.Start, e.End)
	if errors.Is(e.Kind, ErrRecordsMissing) {
		s += fmt.Sprintf(", records %d to %d are gone", e.Next, e.Start-1)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns Kind, and ErrInconsistent for a log that contradicts the
// ledger (replaced, truncated, diverged).
func (e *LogError) Unwrap() []error {
	if errors.Is(e.Kind, ErrRecordsMissing) {
		return []error{e.Kind}
	}
	return []error{e.Kind, ErrInconsistent}
}

// Missing returns the range of offsets the log no longer holds, for an
// ErrRecordsMissing outcome: [from, to].
func (e *LogError) Missing() (from, to int64) { return e.Next, e.Start - 1 }

// FingerprintOffset is the offset of the record the core's last block was
// cut from (its fingerprint), or -1 when it knows none: a log check reads
// the record there (LogView.Fingerprinted).
func (c *Core) FingerprintOffset() int64 {
	if c.cur.set {
		// Records consumed since the last block: the check happens on
		// reconnection, and the last consumed record is the one to find.
		return c.cur.offset
	}
	if c.prev.hash != nil {
		return c.prev.offset
	}
	return -1
}

// TopicID returns the ID of the topic the core's blocks come from, nil
// until a block or a log check told it.
func (c *Core) TopicID() []byte { return c.topicID }

// Position is the offset of the next record the core expects: the one
// after the last record it consumed, or NextOffset before it consumed any.
func (c *Core) Position() int64 {
	if c.cur.set {
		return c.cur.offset + 1
	}
	return c.NextOffset()
}

// CheckLog decides whether the node can consume the log it read (v) from
// its Position: nil when it can, or a *LogError. A replaced, truncated
// or diverged log contradicts the ledger: the node must neither consume
// nor produce. Missing records (the log starts after the next offset) can
// be caught up from other nodes. A core whose blocks carry no topic ID yet
// (a new channel, or blocks written before log identity existed) adopts
// v's, and its next blocks record it.
func (c *Core) CheckLog(v LogView) error {
	next := c.Position()
	fail := func(kind error, detail string) error {
		return &LogError{Kind: kind, Channel: c.channel, Next: next, Start: v.Start, End: v.End, Detail: detail}
	}
	if c.topicID != nil && v.TopicID != nil && !bytes.Equal(c.topicID, v.TopicID) {
		return fail(ErrLogReplaced, fmt.Sprintf("topic ID %s, the ledger's blocks come from %s", hexID(v.TopicID), hexID(c.topicID)))
	}
	if v.End < next {
		return fail(ErrLogTruncated, "")
	}
	if off := c.FingerprintOffset(); off >= 0 && off >= v.Start && off < v.End {
		if err := c.checkFingerprint(v.Fingerprinted); err != nil {
			return fail(ErrLogDiverged, err.Error())
		}
	}
	if v.Start > next {
		return fail(ErrRecordsMissing, "")
	}
	if c.topicID == nil && v.TopicID != nil {
		c.topicID = bytes.Clone(v.TopicID)
	}
	return nil
}

// checkFingerprint compares the record the log holds at the fingerprint's
// offset with the fingerprint.
func (c *Core) checkFingerprint(r *Record) error {
	want := c.cur
	if !want.set {
		want = c.prev
	}
	wantFP := want.proto()
	if r == nil || r.Offset != wantFP.Offset {
		return fmt.Errorf("no record at offset %d any more", wantFP.Offset)
	}
	got := sha256.Sum256(r.Value)
	if r.LeaderEpoch != wantFP.LeaderEpoch || !bytes.Equal(got[:], wantFP.ValueHash) {
		return fmt.Errorf("record %d: leader epoch %d, value hash %x; the ledger has leader epoch %d, value hash %x",
			r.Offset, r.LeaderEpoch, got[:8], wantFP.LeaderEpoch, wantFP.ValueHash[:min(8, len(wantFP.ValueHash))])
	}
	return nil
}

// fingerprintOf returns the fingerprint of r.
func fingerprintOf(r Record) *ab.LogFingerprint {
	f := fingerprinted{offset: r.Offset, epoch: r.LeaderEpoch, value: r.Value, set: true}
	return f.proto()
}

// hexID formats a topic ID as Kafka prints UUIDs' bytes: hex.
func hexID(id []byte) string { return hex.EncodeToString(id) }
