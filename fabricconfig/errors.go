package fabricconfig

import (
	"errors"
	"fmt"
)

// Sentinel errors. Functions of this package wrap channelconfig's sentinels
// (ErrWrongChannel, ErrBadSignature, ErrForbidden,
// ErrBadSequence, ErrMalformed), so that a caller maps this package's
// errors exactly as channelconfig's, and the sentinel below. Errors caused
// by an identity or a signature policy also wrap the msp package's error
// (msp.ErrExpired, msp.ErrPolicyNotSatisfied...).
var (
	// ErrBadUpdate reports a config update that Fabric's configtx
	// rejects: a read set or write set at the wrong versions (also
	// channelconfig.ErrBadSequence), an element whose mod_policy its
	// signatures do not satisfy, an update with no effect or that does not
	// decode (also channelconfig.ErrMalformed), or whose result is not a
	// valid configuration (also channelconfig.ErrMalformed). Fabric answers
	// all of them BAD_REQUEST; none wraps channelconfig.ErrForbidden, which
	// Fabric answers FORBIDDEN only when the envelope's own signer fails the
	// channel's Writers policy.
	ErrBadUpdate = errors.New("fabricconfig: config update rejected")
)

// fabricError is an error whose message is Fabric's wording, without the
// sentinels' own text, and which wraps the sentinels and causes in errs.
type fabricError struct {
	msg  string
	errs []error
}

func (e *fabricError) Error() string   { return e.msg }
func (e *fabricError) Unwrap() []error { return e.errs }

// fabricErrorf returns a fabricError worded format, wrapping wrapped (the
// sentinels and causes, nils skipped).
func fabricErrorf(wrapped []error, format string, args ...any) error {
	var errs []error
	for _, e := range wrapped {
		if e != nil {
			errs = append(errs, e)
		}
	}
	return &fabricError{msg: fmt.Sprintf(format, args...), errs: errs}
}

// withPrefix returns err worded "prefix: err", wrapping err, as Fabric's
// errors.WithMessage does.
func withPrefix(err error, format string, args ...any) error {
	return &fabricError{msg: fmt.Sprintf(format, args...) + ": " + err.Error(), errs: []error{err}}
}

// updateErrorf is a fabricError of a rejected config update: it wraps
// ErrBadUpdate, kind (a channelconfig sentinel or nil) and cause (or nil).
func updateErrorf(kind, cause error, format string, args ...any) error {
	return fabricErrorf([]error{ErrBadUpdate, kind, cause}, format, args...)
}
