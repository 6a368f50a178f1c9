package channelconfig

import (
	"errors"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
)

// Sentinel errors. Functions of this package wrap them with %w and context;
// test for them with errors.Is. Errors caused by an identity also wrap the
// msp package's error (msp.ErrExpired, msp.ErrUnknownMSP...).
var (
	// ErrWrongChannel reports an envelope or configuration for another
	// channel.
	ErrWrongChannel = errors.New("channelconfig: wrong channel")
	// ErrBadSignature reports an envelope whose signature does not verify
	// with its creator's key. It is msp.ErrBadSignature.
	ErrBadSignature = msp.ErrBadSignature
	// ErrForbidden reports an envelope whose creator is not a valid member
	// or whose signatures do not satisfy the required policy.
	ErrForbidden = errors.New("channelconfig: forbidden")
	// ErrBadSequence reports a configuration update whose sequence is not
	// the current sequence plus one, or a genesis configuration whose
	// sequence is not zero.
	ErrBadSequence = errors.New("channelconfig: bad config sequence")
	// ErrMalformed reports bytes that do not decode, a header type that is
	// not allowed, or a configuration that is not valid.
	ErrMalformed = errors.New("channelconfig: malformed")
)
