package consensus

import (
	"errors"
	"fmt"
)

var (
	// ErrNotReady reports that the chain cannot order now: it has not
	// started yet, is still connecting to Kafka, or cannot consume.
	ErrNotReady = errors.New("consensus: chain not ready")
	// ErrHalted reports that the chain was halted, by Halt or by a fatal
	// inconsistency (see Chain.Err).
	ErrHalted = errors.New("consensus: chain halted")
	// ErrTooLarge reports an envelope larger than the channel's
	// AbsoluteMaxBytes.
	ErrTooLarge = errors.New("consensus: envelope too large")
	// ErrStaleConfig reports that an envelope was validated against a
	// configuration sequence newer than the chain's, which only a caller
	// error can cause.
	ErrStaleConfig = errors.New("consensus: config sequence ahead of the chain")
	// ErrInconsistent reports that the log contradicts the node's ledger
	// (ErrLogReplaced, ErrLogTruncated, ErrLogDiverged wrap it): the chain
	// halts rather than fork.
	ErrInconsistent = errors.New("consensus: ledger and log are inconsistent")
	// ErrBadConfig reports a configuration update that the channel's
	// configuration may accept but its Kafka topic cannot serve: an
	// AbsoluteMaxBytes whose envelopes would not fit in one record of the
	// topic.
	ErrBadConfig = errors.New("consensus: configuration refused")
	// ErrNotAcknowledged reports that Kafka did not acknowledge an
	// envelope; it may or may not be in the log.
	ErrNotAcknowledged = errors.New("consensus: envelope not acknowledged by kafka")
	// ErrNoSigner reports a chain that needs the node's signing identity
	// (WithSigner) and was not given one: a channel whose configuration
	// is a ConfigReprocessor (Fabric's config tree), whose nodes each sign
	// the config updates they compute again.
	ErrNoSigner = errors.New("consensus: no signing identity")
)

// RecordError describes a problem with one record of a channel's
// partition. It wraps the cause.
type RecordError struct {
	Channel string
	Offset  int64
	Err     error
}

// Error names the channel and offset, then the cause.
func (e *RecordError) Error() string {
	return fmt.Sprintf("channel %s, offset %d: %v", e.Channel, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }
