package msp

import "errors"

// Sentinel errors. Functions of this package wrap them with %w and context,
// so callers test for them with errors.Is.
var (
	// ErrBadSignature reports a signature that does not verify, is not
	// well-formed ASN.1 DER, or is a high-S ECDSA signature.
	ErrBadSignature = errors.New("msp: bad signature")
	// ErrUnknownMSP reports an identity or principal naming an MSP ID that
	// the Manager does not know, or an identity handed to the wrong MSP.
	ErrUnknownMSP = errors.New("msp: unknown MSP")
	// ErrExpired reports a certificate outside its validity period at the
	// MSP's current time.
	ErrExpired = errors.New("msp: certificate expired or not yet valid")
	// ErrRevoked reports a certificate listed in a CRL of its issuing CA.
	ErrRevoked = errors.New("msp: certificate revoked")
	// ErrUntrusted reports a certificate that does not chain to a root of
	// the MSP, or that the MSP does not accept as an identity (a CA
	// certificate, a missing or ambiguous NodeOU).
	ErrUntrusted = errors.New("msp: certificate not trusted")
	// ErrMalformed reports input that does not decode: a serialized
	// identity, a certificate, a key, a policy or an MSP configuration.
	ErrMalformed = errors.New("msp: malformed input")
	// ErrPrincipal reports an identity that does not satisfy a principal.
	ErrPrincipal = errors.New("msp: principal not satisfied")
	// ErrPolicyNotSatisfied reports a signature policy that the given
	// signatures do not satisfy.
	ErrPolicyNotSatisfied = errors.New("msp: signature policy not satisfied")
)
