package msp

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// SignedData is one signature offered to a policy: Signature by the
// serialized identity Identity (a marshalled msp.SerializedIdentity) over
// Data.
type SignedData struct {
	Data      []byte
	Identity  []byte
	Signature []byte
}

// signer is a SignedData that passed deserialization, validation and
// signature verification.
type signer struct {
	id    Identity
	msp   *MSP
	chain []*x509.Certificate
}

// EvaluateSignaturePolicy returns nil when signed satisfies env, and an
// error wrapping ErrPolicyNotSatisfied that names the unsatisfied principals
// and the rejected signatures otherwise (ErrMalformed for an envelope that
// is not well formed).
//
// Each SignedData is first checked: its identity must deserialize with mgr,
// be valid for its MSP and have signed Data. Signatures that fail are
// ignored. An identity counts once however many times it signed (the first
// valid signature is kept). The rule is then evaluated as Fabric's cauthdsl
// does: a SignedBy takes the first unused signer that satisfies its
// principal and marks it used; an n-out-of gate evaluates each sub-rule in
// order on a copy of the used flags and keeps the flags of the sub-rules
// that succeed, so one signer serves at most one principal of a gate.
//
// To evaluate several policies with the same signatures, check them once
// with Manager.CheckSignatures and evaluate each policy with
// CheckedSignatures.Evaluate.
func EvaluateSignaturePolicy(env *cb.SignaturePolicyEnvelope, signed []SignedData, mgr *Manager) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	if mgr == nil {
		return fmt.Errorf("%w: nil Manager", ErrMalformed)
	}
	return mgr.CheckSignatures(signed).evaluate(env)
}

// CheckedSignatures is a list of SignedData whose identities have been
// deserialized and validated and whose signatures have been verified, once,
// by Manager.CheckSignatures. It is immutable and safe for concurrent use.
// Evaluate checks it against any number of signature policies without
// checking the signatures again. Validity is judged when CheckSignatures
// runs, so a CheckedSignatures is meant to be evaluated right away, not
// kept.
type CheckedSignatures struct {
	signers []signer
	errs    []error // per SignedData: nil when accepted
}

// CheckSignatures checks each of signed as EvaluateSignaturePolicy does:
// its identity must deserialize with m, be valid for its MSP and have
// signed Data. Identities are deserialized and validated through the
// caches of m and its MSPs.
func (m *Manager) CheckSignatures(signed []SignedData) *CheckedSignatures {
	cs := &CheckedSignatures{errs: make([]error, len(signed))}
	var seen map[[sha256.Size]byte]bool
	if len(signed) > 1 {
		seen = make(map[[sha256.Size]byte]bool, len(signed))
	}
	for i, sd := range signed {
		s, err := checkSigned(sd, m)
		if err != nil {
			cs.errs[i] = err
			continue
		}
		if seen != nil {
			h := sha256.New()
			h.Write([]byte(s.id.MSPID()))
			h.Write([]byte{0})
			h.Write(s.id.Certificate().Raw)
			var key [sha256.Size]byte
			h.Sum(key[:0])
			if seen[key] {
				continue
			}
			seen[key] = true
		}
		cs.signers = append(cs.signers, s)
	}
	return cs
}

// Len returns the number of SignedData checked.
func (cs *CheckedSignatures) Len() int { return len(cs.errs) }

// Err returns nil when the i-th SignedData was accepted, and why it was
// rejected otherwise. An error wrapping ErrBadSignature means the identity
// is valid but the signature does not verify; any other error concerns
// the identity (ErrMalformed, ErrUnknownMSP, ErrExpired, ErrUntrusted,
// ErrRevoked).
func (cs *CheckedSignatures) Err(i int) error { return cs.errs[i] }

// Evaluate returns nil when the accepted signatures satisfy env, with the
// semantics and errors of EvaluateSignaturePolicy.
func (cs *CheckedSignatures) Evaluate(env *cb.SignaturePolicyEnvelope) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	return cs.evaluate(env)
}

// evaluate evaluates env, which checkEnvelope accepted.
func (cs *CheckedSignatures) evaluate(env *cb.SignaturePolicyEnvelope) error {
	n := len(cs.signers)
	e := &evaluation{env: env, signers: cs.signers, nPrincipals: len(env.GetIdentities())}
	if n > 0 {
		e.cache = make([]int8, n*e.nPrincipals)
	}
	used := make([]bool, n)
	if e.eval(env.GetRule(), used) {
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s with %d valid signer(s)", Describe(env), n)
	if len(e.missing) > 0 {
		missing := make([]string, len(e.missing))
		for i, p := range e.missing {
			missing[i] = describePrincipal(env, p)
		}
		fmt.Fprintf(&sb, "; unsatisfied: %s", strings.Join(dedupStrings(missing), ", "))
	}
	var rejected []string
	for i, err := range cs.errs {
		if err != nil {
			rejected = append(rejected, fmt.Sprintf("signature %d: %v", i, err))
		}
	}
	if len(rejected) > 0 {
		fmt.Fprintf(&sb, "; rejected: %s", strings.Join(rejected, "; "))
	}
	return fmt.Errorf("%w: %s", ErrPolicyNotSatisfied, sb.String())
}

func checkSigned(sd SignedData, mgr *Manager) (signer, error) {
	id, err := mgr.Deserialize(sd.Identity)
	if err != nil {
		return signer{}, err
	}
	m, _ := mgr.MSP(id.MSPID())
	chain, err := m.validate(id)
	if err != nil {
		return signer{}, err
	}
	if err := id.Verify(sd.Data, sd.Signature); err != nil {
		return signer{}, err
	}
	return signer{id: id, msp: m, chain: chain}, nil
}

// ValidateSignaturePolicy returns an error wrapping ErrMalformed when env
// cannot be evaluated: no rule, an empty rule, a negative threshold, an
// identity index out of range or gates nested too deep.
func ValidateSignaturePolicy(env *cb.SignaturePolicyEnvelope) error {
	return checkEnvelope(env)
}

func checkEnvelope(env *cb.SignaturePolicyEnvelope) error {
	if env == nil || env.GetRule() == nil {
		return fmt.Errorf("%w: signature policy without a rule", ErrMalformed)
	}
	var walk func(r *cb.SignaturePolicy, depth int) error
	walk = func(r *cb.SignaturePolicy, depth int) error {
		if depth > maxPolicyDepth {
			return fmt.Errorf("%w: signature policy nested deeper than %d", ErrMalformed, maxPolicyDepth)
		}
		switch t := r.GetType().(type) {
		case *cb.SignaturePolicy_SignedBy:
			if t.SignedBy < 0 || int(t.SignedBy) >= len(env.GetIdentities()) {
				return fmt.Errorf("%w: signature policy refers to identity %d of %d", ErrMalformed, t.SignedBy, len(env.GetIdentities()))
			}
			if env.GetIdentities()[t.SignedBy] == nil {
				return fmt.Errorf("%w: signature policy identity %d is nil", ErrMalformed, t.SignedBy)
			}
		case *cb.SignaturePolicy_NOutOf_:
			if t.NOutOf == nil || t.NOutOf.GetN() < 0 {
				return fmt.Errorf("%w: signature policy gate with a negative threshold", ErrMalformed)
			}
			for _, sub := range t.NOutOf.GetRules() {
				if err := walk(sub, depth+1); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%w: signature policy with an empty rule", ErrMalformed)
		}
		return nil
	}
	return walk(env.GetRule(), 0)
}

type evaluation struct {
	env         *cb.SignaturePolicyEnvelope
	signers     []signer
	nPrincipals int
	cache       []int8  // [signer*nPrincipals+principal]: 0 unknown, 1 satisfies, -1 does not
	missing     []int32 // the principals of the SignedBys that failed, described if the policy fails
}

func (e *evaluation) eval(r *cb.SignaturePolicy, used []bool) bool {
	switch t := r.GetType().(type) {
	case *cb.SignaturePolicy_SignedBy:
		for i := range e.signers {
			if used[i] || !e.satisfies(i, int(t.SignedBy)) {
				continue
			}
			used[i] = true
			return true
		}
		e.missing = append(e.missing, t.SignedBy)
		return false
	case *cb.SignaturePolicy_NOutOf_:
		verified := int32(0)
		tmp := make([]bool, len(used))
		for _, sub := range t.NOutOf.GetRules() {
			copy(tmp, used)
			if e.eval(sub, tmp) {
				verified++
				copy(used, tmp)
			}
		}
		return verified >= t.NOutOf.GetN()
	}
	return false
}

func (e *evaluation) satisfies(signerIdx, principalIdx int) bool {
	k := signerIdx*e.nPrincipals + principalIdx
	if v := e.cache[k]; v != 0 {
		return v > 0
	}
	s := e.signers[signerIdx]
	v := s.msp.satisfies(s.id, s.chain, e.env.GetIdentities()[principalIdx], false) == nil
	e.cache[k] = -1
	if v {
		e.cache[k] = 1
	}
	return v
}

func dedupStrings(in []string) []string {
	seen := make(map[string]bool, len(in))
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
