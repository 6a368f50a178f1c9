package msp

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

// CouldSatisfy reports whether identities of the manager's MSPs could
// satisfy env at all: nil when they could, or an error wrapping
// ErrPolicyNotSatisfied that names a principal no MSP of the manager can
// ever satisfy (an MSP it does not know, an admin role of an MSP with
// neither listed admins nor an admin NodeOU, a client, peer or orderer role
// without the NodeOU). It judges what the MSPs define, not which
// identities exist: it is the check that keeps a configuration update from
// leaving a policy nobody can satisfy.
func (m *Manager) CouldSatisfy(env *cb.SignaturePolicyEnvelope) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	ok := make([]error, len(env.Identities))
	for i, p := range env.Identities {
		ok[i] = m.couldSatisfy(p)
	}
	if !couldSatisfyRule(env.Rule, ok) {
		for _, err := range ok {
			if err != nil {
				return fmt.Errorf("%w: %w", ErrPolicyNotSatisfied, err)
			}
		}
		return fmt.Errorf("%w: the rule needs more principals than the policy has", ErrPolicyNotSatisfied)
	}
	return nil
}

// couldSatisfyRule reports whether r can be satisfied when principal i can
// be exactly when ok[i] is nil.
func couldSatisfyRule(r *cb.SignaturePolicy, ok []error) bool {
	switch t := r.GetType().(type) {
	case *cb.SignaturePolicy_SignedBy:
		i := int(t.SignedBy)
		return i >= 0 && i < len(ok) && ok[i] == nil
	case *cb.SignaturePolicy_NOutOf_:
		n := 0
		for _, sub := range t.NOutOf.GetRules() {
			if couldSatisfyRule(sub, ok) {
				n++
			}
		}
		return n >= int(t.NOutOf.GetN())
	default:
		return false
	}
}

// couldSatisfy reports why no identity of m's MSPs can satisfy p, or nil.
func (m *Manager) couldSatisfy(p *mspb.MSPPrincipal) error {
	var mspID string
	var role *mspb.MSPRole
	switch p.GetPrincipalClassification() {
	case mspb.MSPPrincipal_ROLE:
		role = new(mspb.MSPRole)
		if err := proto.Unmarshal(p.GetPrincipal(), role); err != nil {
			return fmt.Errorf("%w: decoding MSPRole: %w", ErrMalformed, err)
		}
		mspID = role.GetMspIdentifier()
	case mspb.MSPPrincipal_ORGANIZATION_UNIT:
		ou := new(mspb.OrganizationUnit)
		if err := proto.Unmarshal(p.GetPrincipal(), ou); err != nil {
			return fmt.Errorf("%w: decoding OrganizationUnit: %w", ErrMalformed, err)
		}
		mspID = ou.GetMspIdentifier()
	case mspb.MSPPrincipal_IDENTITY:
		sid := new(mspb.SerializedIdentity)
		if err := proto.Unmarshal(p.GetPrincipal(), sid); err != nil {
			return fmt.Errorf("%w: decoding SerializedIdentity: %w", ErrMalformed, err)
		}
		mspID = sid.GetMspid()
	default:
		return fmt.Errorf("principal of classification %v", p.GetPrincipalClassification())
	}
	x, ok := m.MSP(mspID)
	if !ok {
		return fmt.Errorf("principal of MSP %q, which the configuration does not define", mspID)
	}
	if role == nil {
		return nil
	}
	ous := x.nodeOUs
	switch role.GetRole() {
	case mspb.MSPRole_MEMBER:
		return nil
	case mspb.MSPRole_ADMIN:
		if len(x.admins) > 0 || ous != nil && ous.admin != nil {
			return nil
		}
		return fmt.Errorf("principal %s.admin: MSP %s lists no admin and has no admin NodeOU", mspID, mspID)
	case mspb.MSPRole_CLIENT, mspb.MSPRole_PEER, mspb.MSPRole_ORDERER:
		if ous != nil {
			if want := map[mspb.MSPRole_MSPRoleType]*ouIdentifier{
				mspb.MSPRole_CLIENT: ous.client, mspb.MSPRole_PEER: ous.peer, mspb.MSPRole_ORDERER: ous.orderer,
			}[role.GetRole()]; want != nil {
				return nil
			}
		}
		return fmt.Errorf("principal %s.%s: MSP %s has no NodeOU for it", mspID, strings.ToLower(role.GetRole().String()), mspID)
	default:
		return fmt.Errorf("principal %s: unknown role %d", mspID, role.GetRole())
	}
}
