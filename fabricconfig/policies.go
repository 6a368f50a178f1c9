package fabricconfig

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Names of the policies Fabric's configuration defines in every group.
const (
	// ReadersPolicy authorises Deliver requests.
	ReadersPolicy = "Readers"
	// WritersPolicy authorises normal transactions and config updates'
	// envelopes (Broadcast).
	WritersPolicy = "Writers"
	// AdminsPolicy is the usual mod_policy of configuration elements.
	AdminsPolicy = "Admins"
	// BlockValidationPolicyName is the Orderer group's policy that the
	// signatures of every block must satisfy.
	BlockValidationPolicyName = "BlockValidation"
	// EndorsementPolicy is the application's default endorsement policy.
	EndorsementPolicy = "Endorsement"
	// LifecycleEndorsementPolicy is the application's policy for approving
	// chaincode definitions.
	LifecycleEndorsementPolicy = "LifecycleEndorsement"
)

// Absolute paths of the policies the ordering service evaluates, as
// Fabric's components name them.
const (
	// ChannelReaders is the policy a Deliver request must satisfy.
	ChannelReaders = "/" + ChannelGroupKey + "/" + ReadersPolicy
	// ChannelWriters is the policy a normal transaction, and the envelope
	// of a config update, must satisfy.
	ChannelWriters = "/" + ChannelGroupKey + "/" + WritersPolicy
	// ChannelAdmins is the channel's Admins policy.
	ChannelAdmins = "/" + ChannelGroupKey + "/" + AdminsPolicy
	// OrdererAdmins is the Orderer group's Admins policy.
	OrdererAdmins = "/" + ChannelGroupKey + "/" + OrdererGroupKey + "/" + AdminsPolicy
	// BlockValidation is the policy the SIGNATURES metadata of a block
	// must satisfy.
	BlockValidation = "/" + ChannelGroupKey + "/" + OrdererGroupKey + "/" + BlockValidationPolicyName
)

// policyGroup is the compiled policies of one configuration group, as
// Fabric's policy manager of that group.
type policyGroup struct {
	path     string // "/Channel/Application"
	groups   map[string]*policyGroup
	policies map[string]*policy
}

// policy is a compiled policy: exactly one of sig, meta and missing.
type policy struct {
	path string // "/Channel/Application/Writers"
	sig  *cb.SignaturePolicyEnvelope
	meta *cb.ImplicitMetaPolicy
	// missing marks the placeholder of a sub-group's policy that the
	// sub-group does not define: it is never satisfied.
	missing bool
	// subs are, for meta, the same-named policies of the sub-groups, in
	// sub-group name order; threshold is how many must be satisfied.
	subs      []*policy
	threshold int
}

// compilePolicies compiles the policies of group (at path) and of its
// sub-groups, as Fabric's policy manager does: a SIGNATURE policy is a
// SignaturePolicyEnvelope of version 0; an IMPLICIT_META policy applies
// its rule to the same-named policy of every direct sub-group (ANY: 1,
// ALL: all, MAJORITY: more than half; none needed when there are no
// sub-groups). Other policy types are rejected.
func compilePolicies(group *cb.ConfigGroup, path string) (*policyGroup, error) {
	g := &policyGroup{path: path, groups: make(map[string]*policyGroup), policies: make(map[string]*policy)}
	names := sortedKeys(group.GetGroups())
	for _, name := range names {
		sub, err := compilePolicies(group.GetGroups()[name], path+"/"+name)
		if err != nil {
			return nil, err
		}
		g.groups[name] = sub
	}
	for _, name := range sortedKeys(group.GetPolicies()) {
		p := group.GetPolicies()[name].GetPolicy()
		if p == nil {
			return nil, fmt.Errorf("policy %s at path %s was nil", name, path)
		}
		cp := &policy{path: path + "/" + name}
		switch cb.Policy_PolicyType(p.GetType()) {
		case cb.Policy_SIGNATURE:
			env := new(cb.SignaturePolicyEnvelope)
			if err := proto.Unmarshal(p.GetValue(), env); err != nil {
				return nil, fmt.Errorf("policy %s at path %s did not compile: %w", name, path, err)
			}
			if env.GetVersion() != 0 {
				return nil, fmt.Errorf("policy %s at path %s did not compile: signature policy of version %d, want 0", name, path, env.GetVersion())
			}
			if err := msp.ValidateSignaturePolicy(env); err != nil {
				return nil, fmt.Errorf("policy %s at path %s did not compile: %w", name, path, err)
			}
			cp.sig = env
		case cb.Policy_IMPLICIT_META:
			m := new(cb.ImplicitMetaPolicy)
			if err := proto.Unmarshal(p.GetValue(), m); err != nil {
				return nil, fmt.Errorf("implicit policy %s at path %s did not compile: %w", name, path, err)
			}
			n := len(names)
			switch m.GetRule() {
			case cb.ImplicitMetaPolicy_ANY:
				cp.threshold = min(1, n)
			case cb.ImplicitMetaPolicy_ALL:
				cp.threshold = n
			case cb.ImplicitMetaPolicy_MAJORITY:
				cp.threshold = n/2 + min(1, n)
			default:
				return nil, fmt.Errorf("implicit policy %s at path %s did not compile: unknown rule %d", name, path, m.GetRule())
			}
			cp.meta = m
			for _, sub := range names {
				sp, ok := g.groups[sub].policies[m.GetSubPolicy()]
				if !ok {
					sp = &policy{path: path + "/" + sub + "/" + m.GetSubPolicy(), missing: true}
				}
				cp.subs = append(cp.subs, sp)
			}
		default:
			return nil, fmt.Errorf("policy %s at path %s has unknown policy type: %d", name, path, p.GetType())
		}
		g.policies[name] = cp
	}
	return g, nil
}

// get returns the policy named id from g, as Fabric's policy manager of g
// resolves it: an absolute id ("/Channel/Orderer/Admins") must lie under
// g; a relative one ("Admins", "Org1MSP/Admins") is resolved from g down
// through sub-groups.
func (g *policyGroup) get(id string) (*policy, bool) {
	if id == "" {
		return nil, false
	}
	rel := id
	if strings.HasPrefix(id, "/") {
		var ok bool
		if rel, ok = strings.CutPrefix(id, g.path+"/"); !ok {
			return nil, false
		}
	}
	parts := strings.Split(rel, "/")
	for _, name := range parts[:len(parts)-1] {
		sub, ok := g.groups[name]
		if !ok {
			return nil, false
		}
		g = sub
	}
	p, ok := g.policies[parts[len(parts)-1]]
	return p, ok
}

// policyError is a policy evaluation failure worded as Fabric words it,
// wrapping msp.ErrPolicyNotSatisfied and the failures of its parts.
type policyError struct {
	path   string
	msg    string
	causes []error
}

func (e *policyError) Error() string { return e.msg }

func (e *policyError) Unwrap() []error {
	return append([]error{msp.ErrPolicyNotSatisfied}, e.causes...)
}

// detail lists the policies that failed at the leaves of e (signature
// policies, missing sub-policies), each with its path and why.
func (e *policyError) detail() []string {
	var out []string
	for _, c := range e.causes {
		if pe, ok := c.(*policyError); ok {
			out = append(out, pe.detail()...)
		} else {
			out = append(out, e.path+": "+c.Error())
		}
	}
	return out
}

// evaluate reports whether the signatures checked in cs satisfy p, with
// Fabric's evaluation (see compilePolicies) and wording.
func (p *policy) evaluate(cs *msp.CheckedSignatures) error {
	switch {
	case p.missing:
		name := p.path[strings.LastIndex(p.path, "/")+1:]
		return &policyError{path: p.path, msg: fmt.Sprintf("no such policy: '%s'", name),
			causes: []error{errors.New("the group defines no such policy")}}
	case p.sig != nil:
		if err := cs.Evaluate(p.sig); err != nil {
			return &policyError{path: p.path, msg: "signature set did not satisfy policy", causes: []error{err}}
		}
		return nil
	}
	remaining := p.threshold
	if remaining == 0 {
		return nil
	}
	var failures []error
	for _, sub := range p.subs {
		if err := sub.evaluate(cs); err != nil {
			failures = append(failures, err)
			continue
		}
		if remaining--; remaining == 0 {
			return nil
		}
	}
	return &policyError{
		path: p.path,
		msg: fmt.Sprintf("implicit policy evaluation failed - %d sub-policies were satisfied, but this policy requires %d of the '%s' sub-policies to be satisfied",
			p.threshold-remaining, p.threshold, p.meta.GetSubPolicy()),
		causes: failures,
	}
}

// couldSatisfy reports whether identities of mgr's MSPs could satisfy p
// at all (see msp.Manager.CouldSatisfy).
func (p *policy) couldSatisfy(mgr *msp.Manager) error {
	switch {
	case p.missing:
		return fmt.Errorf("%s is not defined", p.path)
	case p.sig != nil:
		if err := mgr.CouldSatisfy(p.sig); err != nil {
			return fmt.Errorf("%s: %w", p.path, err)
		}
		return nil
	}
	could := 0
	var errs []error
	for _, sub := range p.subs {
		if err := sub.couldSatisfy(mgr); err != nil {
			errs = append(errs, err)
			continue
		}
		could++
	}
	if could < p.threshold {
		return fmt.Errorf("%s: %d sub-policies could be satisfied, %d needed: %w", p.path, could, p.threshold, errors.Join(errs...))
	}
	return nil
}

// EvaluatePolicy returns nil when signed satisfies the policy at path, an
// absolute policy path such as ChannelWriters ("/Channel/Writers") or
// "/Channel/Application/Org1MSP/Admins", or one relative to the channel
// group ("Writers", "Application/Org1MSP/Admins"), and an error wrapping
// channelconfig.ErrForbidden (and msp.ErrPolicyNotSatisfied when the policy
// exists) otherwise. Policies are evaluated as Fabric's are (see the
// package documentation); the signatures are checked once however many
// policies the evaluation reaches.
func (b *Bundle) EvaluatePolicy(path string, signed []msp.SignedData) error {
	if _, ok := b.policies.get(path); !ok {
		return fmt.Errorf("%w: channel %s has no policy %s", channelconfig.ErrForbidden, b.channelID, path)
	}
	return b.evaluate(path, b.mgr.CheckSignatures(signed))
}

// evaluate is EvaluatePolicy with signatures checked by b.mgr.
func (b *Bundle) evaluate(path string, cs *msp.CheckedSignatures) error {
	p, ok := b.policies.get(path)
	if !ok {
		return fmt.Errorf("%w: channel %s has no policy %s", channelconfig.ErrForbidden, b.channelID, path)
	}
	err := p.evaluate(cs)
	if err == nil {
		return nil
	}
	var detail string
	if pe, ok := err.(*policyError); ok {
		if d := pe.detail(); len(d) > 0 {
			detail = " [" + strings.Join(d, "; ") + "]"
		}
	}
	return fmt.Errorf("%w: channel %s: policy %s: %w%s", channelconfig.ErrForbidden, b.channelID, path, err, detail)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
