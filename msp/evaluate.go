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
func EvaluateSignaturePolicy(env *cb.SignaturePolicyEnvelope, signed []SignedData, mgr *Manager) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	if mgr == nil {
		return fmt.Errorf("%w: nil Manager", ErrMalformed)
	}
	var (
		signers  []signer
		rejected []string
		seen     = make(map[[sha256.Size]byte]bool)
	)
	for i, sd := range signed {
		s, err := checkSigned(sd, mgr)
		if err != nil {
			rejected = append(rejected, fmt.Sprintf("signature %d: %v", i, err))
			continue
		}
		key := sha256.Sum256(append([]byte(s.id.MSPID()+"\x00"), s.id.Certificate().Raw...))
		if seen[key] {
			continue
		}
		seen[key] = true
		signers = append(signers, s)
	}
	e := &evaluation{env: env, signers: signers, cache: make(map[[2]int]bool)}
	used := make([]bool, len(signers))
	if e.eval(env.GetRule(), used) {
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s with %d valid signer(s)", Describe(env), len(signers))
	if len(e.missing) > 0 {
		fmt.Fprintf(&sb, "; unsatisfied: %s", strings.Join(dedupStrings(e.missing), ", "))
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
	env     *cb.SignaturePolicyEnvelope
	signers []signer
	cache   map[[2]int]bool // (signer, principal) → satisfies
	missing []string
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
		e.missing = append(e.missing, describePrincipal(e.env, t.SignedBy))
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
	k := [2]int{signerIdx, principalIdx}
	if v, ok := e.cache[k]; ok {
		return v
	}
	s := e.signers[signerIdx]
	v := s.msp.satisfies(s.id, s.chain, e.env.GetIdentities()[principalIdx]) == nil
	e.cache[k] = v
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
