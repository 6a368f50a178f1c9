package channelconfig

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Names of the policies every channel defines.
const (
	// ReadersPolicy authorises Deliver requests.
	ReadersPolicy = "Readers"
	// WritersPolicy authorises normal transactions (Broadcast, Order).
	WritersPolicy = "Writers"
	// AdminsPolicy authorises configuration updates.
	AdminsPolicy = "Admins"
)

// ImplicitMetaPolicy returns a Policy of type IMPLICIT_META: rule (ANY, ALL
// or MAJORITY) over the policy named subPolicy of every organisation.
func ImplicitMetaPolicy(subPolicy string, rule cb.ImplicitMetaPolicy_Rule) *cb.Policy {
	return &cb.Policy{
		Type:  int32(cb.Policy_IMPLICIT_META),
		Value: protoutil.MarshalOrPanic(&cb.ImplicitMetaPolicy{SubPolicy: subPolicy, Rule: rule}),
	}
}

// SignaturePolicy returns a Policy of type SIGNATURE holding env.
func SignaturePolicy(env *cb.SignaturePolicyEnvelope) *cb.Policy {
	return &cb.Policy{Type: int32(cb.Policy_SIGNATURE), Value: protoutil.MarshalOrPanic(env)}
}

// DefaultChannelPolicies returns Fabric's default channel policies: Readers
// is ANY Readers, Writers is ANY Writers and Admins is MAJORITY Admins, all
// implicit meta policies over the organisations.
func DefaultChannelPolicies() map[string]*cb.Policy {
	return map[string]*cb.Policy{
		ReadersPolicy: ImplicitMetaPolicy(ReadersPolicy, cb.ImplicitMetaPolicy_ANY),
		WritersPolicy: ImplicitMetaPolicy(WritersPolicy, cb.ImplicitMetaPolicy_ANY),
		AdminsPolicy:  ImplicitMetaPolicy(AdminsPolicy, cb.ImplicitMetaPolicy_MAJORITY),
	}
}

// DefaultOrgPolicies returns Fabric's default policies of organisation
// mspID: Readers and Writers are OR('mspID.member'), Admins is
// OR('mspID.admin').
func DefaultOrgPolicies(mspID string) map[string]*cb.Policy {
	return map[string]*cb.Policy{
		ReadersPolicy: SignaturePolicy(msp.SignedByMSPRole(mspID, mspb.MSPRole_MEMBER)),
		WritersPolicy: SignaturePolicy(msp.SignedByMSPRole(mspID, mspb.MSPRole_MEMBER)),
		AdminsPolicy:  SignaturePolicy(msp.SignedByMSPRole(mspID, mspb.MSPRole_ADMIN)),
	}
}

// NewOrganization returns the organisation defined by m, named m.Name, with
// DefaultOrgPolicies.
func NewOrganization(m *ccpb.MSPConfig) *ccpb.Organization {
	return &ccpb.Organization{MspId: m.GetName(), Msp: m, Policies: DefaultOrgPolicies(m.GetName())}
}

// policy is a decoded channel policy: exactly one field is set.
type policy struct {
	sig  *cb.SignaturePolicyEnvelope
	meta *cb.ImplicitMetaPolicy
}

func decodePolicy(name string, p *cb.Policy, allowMeta bool) (policy, error) {
	if p == nil {
		return policy{}, fmt.Errorf("%w: policy %q is nil", ErrMalformed, name)
	}
	switch cb.Policy_PolicyType(p.GetType()) {
	case cb.Policy_SIGNATURE:
		env := new(cb.SignaturePolicyEnvelope)
		if err := proto.Unmarshal(p.GetValue(), env); err != nil {
			return policy{}, fmt.Errorf("%w: policy %q: %w", ErrMalformed, name, err)
		}
		if err := msp.ValidateSignaturePolicy(env); err != nil {
			return policy{}, fmt.Errorf("%w: policy %q: %w", ErrMalformed, name, err)
		}
		return policy{sig: env}, nil
	case cb.Policy_IMPLICIT_META:
		if !allowMeta {
			return policy{}, fmt.Errorf("%w: policy %q: an organisation policy must be of type SIGNATURE", ErrMalformed, name)
		}
		m := new(cb.ImplicitMetaPolicy)
		if err := proto.Unmarshal(p.GetValue(), m); err != nil {
			return policy{}, fmt.Errorf("%w: policy %q: %w", ErrMalformed, name, err)
		}
		if m.GetSubPolicy() == "" {
			return policy{}, fmt.Errorf("%w: policy %q: implicit meta policy without a sub-policy", ErrMalformed, name)
		}
		if _, ok := cb.ImplicitMetaPolicy_Rule_name[int32(m.GetRule())]; !ok {
			return policy{}, fmt.Errorf("%w: policy %q: unknown implicit meta rule %d", ErrMalformed, name, m.GetRule())
		}
		return policy{meta: m}, nil
	default:
		return policy{}, fmt.Errorf("%w: policy %q has unsupported type %d", ErrMalformed, name, p.GetType())
	}
}

// threshold is how many of n organisations an implicit meta rule needs:
// ANY one, ALL every one, MAJORITY more than half.
func threshold(rule cb.ImplicitMetaPolicy_Rule, n int) int {
	switch rule {
	case cb.ImplicitMetaPolicy_ANY:
		return 1
	case cb.ImplicitMetaPolicy_ALL:
		return n
	default:
		return n/2 + 1
	}
}

// EvaluatePolicy returns nil when signed satisfies the channel policy name
// ("Readers", "Writers", "Admins" or another channel policy), and an error
// wrapping ErrForbidden (and msp.ErrPolicyNotSatisfied) naming what was
// not satisfied otherwise. A SIGNATURE policy is evaluated as
// msp.EvaluateSignaturePolicy does. An IMPLICIT_META policy evaluates the
// sub-policy of every organisation (application and orderer organisations
// together, each MSP ID once): ANY needs one, ALL needs all, MAJORITY needs
// strictly more than half; an organisation without that sub-policy counts
// as not satisfied, and with no organisations at all the policy is
// satisfied, as in Fabric.
//
// The signatures are checked (deserialized, validated, verified) once,
// however many organisation policies are evaluated.
func (b *Bundle) EvaluatePolicy(name string, signed []msp.SignedData) error {
	if _, ok := b.policies[name]; !ok {
		return fmt.Errorf("%w: channel %s has no policy %q", ErrForbidden, b.ChannelID(), name)
	}
	return b.evaluatePolicy(name, b.mgr.CheckSignatures(signed))
}

// evaluatePolicy is EvaluatePolicy with signatures checked by b.mgr.
func (b *Bundle) evaluatePolicy(name string, signed *msp.CheckedSignatures) error {
	p, ok := b.policies[name]
	if !ok {
		return fmt.Errorf("%w: channel %s has no policy %q", ErrForbidden, b.ChannelID(), name)
	}
	if p.sig != nil {
		if err := signed.Evaluate(p.sig); err != nil {
			return fmt.Errorf("%w: channel %s: policy %s: %w", ErrForbidden, b.ChannelID(), name, err)
		}
		return nil
	}
	n, threshold := len(b.orgs), threshold(p.meta.GetRule(), len(b.orgs))
	if n == 0 {
		return nil
	}
	satisfied, failures := b.countOrgs(p.meta, threshold, signed.Evaluate)
	if satisfied >= threshold {
		return nil
	}
	reasons := make([]string, len(failures))
	for i, f := range failures {
		reasons[i] = f.Error()
	}
	return fmt.Errorf("%w: channel %s: policy %s (%s %s): %d of %d organisations satisfied, need %d: %w: %s",
		ErrForbidden, b.ChannelID(), name, p.meta.GetRule(), p.meta.GetSubPolicy(), satisfied, n, threshold,
		msp.ErrPolicyNotSatisfied, strings.Join(reasons, "; "))
}

// orgFailure is why one organisation did not count towards an implicit
// meta policy: err from its sub-policy, or nil when it has none. It is
// formatted only when the policy as a whole fails, so that satisfying
// policies allocate no messages.
type orgFailure struct {
	org, policy string
	err         error
}

func (f orgFailure) Error() string {
	if f.err == nil {
		return fmt.Sprintf("%s has no policy %s", f.org, f.policy)
	}
	return fmt.Sprintf("%s: %v", f.org, f.err)
}

func (f orgFailure) Unwrap() error { return f.err }

// countOrgs applies pass to each organisation's policy named by meta's
// sub-policy, in order, until need of them passed. It returns how many
// passed and, for each organisation that did not, why.
func (b *Bundle) countOrgs(meta *cb.ImplicitMetaPolicy, need int, pass func(*cb.SignaturePolicyEnvelope) error) (int, []error) {
	passed := 0
	var failures []error
	for _, o := range b.orgs {
		if passed >= need {
			break
		}
		sub, ok := o.policies[meta.GetSubPolicy()]
		if !ok {
			failures = append(failures, orgFailure{org: o.id, policy: meta.GetSubPolicy()})
			continue
		}
		if err := pass(sub); err != nil {
			failures = append(failures, orgFailure{org: o.id, policy: meta.GetSubPolicy(), err: err})
			continue
		}
		passed++
	}
	return passed, failures
}
