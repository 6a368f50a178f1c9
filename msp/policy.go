package msp

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// maxPolicyDepth bounds the nesting of gates, in parsed strings and in
// evaluated envelopes, so that hostile input cannot exhaust the stack.
const maxPolicyDepth = 64

// Role names of the policy language.
const (
	RoleMember  = "member"
	RoleAdmin   = "admin"
	RoleClient  = "client"
	RolePeer    = "peer"
	RoleOrderer = "orderer"
)

var principalRE = regexp.MustCompile(`^([[:alnum:].-]+)[.](admin|member|client|peer|orderer)$`)

var roleByName = map[string]mspb.MSPRole_MSPRoleType{
	RoleMember:  mspb.MSPRole_MEMBER,
	RoleAdmin:   mspb.MSPRole_ADMIN,
	RoleClient:  mspb.MSPRole_CLIENT,
	RolePeer:    mspb.MSPRole_PEER,
	RoleOrderer: mspb.MSPRole_ORDERER,
}

// FromString parses a signature policy written in Fabric's policy language
// into a SignaturePolicyEnvelope:
//
//	POLICY    = GATE
//	GATE      = AND(ARG, ...) | OR(ARG, ...) | OutOf(N, ARG, ...)
//	ARG       = GATE | PRINCIPAL
//	PRINCIPAL = 'MSPID.ROLE' or "MSPID.ROLE"
//
// Gate keywords are case-insensitive; ROLE is one of member, admin, client,
// peer and orderer; MSPID is made of letters, digits, '.' and '-'. AND of k
// arguments is OutOf(k, ...), OR is OutOf(1, ...). As in Fabric, N may range
// from 0 to the number of arguments plus one, every principal occurrence
// gets its own entry in identities, and the principals of a gate are
// numbered after those of the gates nested in it, so the envelope is
// byte-for-byte the one Fabric's policydsl.FromString produces. Errors wrap
// ErrMalformed and give the offending position.
func FromString(policy string) (*cb.SignaturePolicyEnvelope, error) {
	p := &policyParser{src: policy}
	root, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("%w: policy %q: %w", ErrMalformed, policy, err)
	}
	env := &cb.SignaturePolicyEnvelope{Version: 0}
	rule, err := root.build(env)
	if err != nil {
		return nil, fmt.Errorf("%w: policy %q: %w", ErrMalformed, policy, err)
	}
	env.Rule = rule
	return env, nil
}

// node is a parsed gate or principal.
type node struct {
	n         int // threshold of a gate
	args      []*node
	principal string // non-empty for a principal
	pos       int
}

func (nd *node) build(env *cb.SignaturePolicyEnvelope) (*cb.SignaturePolicy, error) {
	rules := make([]*cb.SignaturePolicy, len(nd.args))
	for i, a := range nd.args {
		if a.principal != "" {
			continue
		}
		r, err := a.build(env)
		if err != nil {
			return nil, err
		}
		rules[i] = r
	}
	for i, a := range nd.args {
		if a.principal == "" {
			continue
		}
		m := principalRE.FindStringSubmatch(a.principal)
		if m == nil {
			return nil, fmt.Errorf("at %d: principal %q is not MSPID.ROLE with ROLE one of member, admin, client, peer, orderer", a.pos, a.principal)
		}
		rules[i] = SignedBy(int32(len(env.Identities)))
		env.Identities = append(env.Identities, RolePrincipal(m[1], roleByName[m[2]]))
	}
	return NOutOf(int32(nd.n), rules), nil
}

type policyParser struct {
	src   string
	pos   int
	depth int
}

func (p *policyParser) parse() (*node, error) {
	p.skipSpace()
	nd, err := p.gate()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, fmt.Errorf("at %d: unexpected %q after the policy", p.pos, p.src[p.pos:])
	}
	return nd, nil
}

func (p *policyParser) skipSpace() {
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *policyParser) expect(c byte) error {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return fmt.Errorf("at %d: want %q, got end of policy", p.pos, c)
	}
	if p.src[p.pos] != c {
		return fmt.Errorf("at %d: want %q, got %q", p.pos, c, p.src[p.pos])
	}
	p.pos++
	return nil
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func (p *policyParser) gate() (*node, error) {
	start := p.pos
	for p.pos < len(p.src) && isIdentByte(p.src[p.pos]) {
		p.pos++
	}
	word := p.src[start:p.pos]
	if word == "" {
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("at %d: want AND, OR or OutOf, got end of policy", p.pos)
		}
		return nil, fmt.Errorf("at %d: want AND, OR or OutOf, got %q", p.pos, p.src[p.pos])
	}
	kw := strings.ToLower(word)
	if kw != "and" && kw != "or" && kw != "outof" {
		return nil, fmt.Errorf("at %d: unrecognized token %q, want AND, OR or OutOf", start, word)
	}
	if p.depth++; p.depth > maxPolicyDepth {
		return nil, fmt.Errorf("at %d: gates nested deeper than %d", start, maxPolicyDepth)
	}
	defer func() { p.depth-- }()
	if err := p.expect('('); err != nil {
		return nil, err
	}
	nd := &node{pos: start}
	if kw == "outof" {
		p.skipSpace()
		numStart := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		n, err := strconv.Atoi(p.src[numStart:p.pos])
		if err != nil || n > 1<<20 {
			return nil, fmt.Errorf("at %d: OutOf wants a non-negative integer threshold first", numStart)
		}
		nd.n = n
		if err := p.expect(','); err != nil {
			return nil, err
		}
	}
	for {
		p.skipSpace()
		arg, err := p.arg()
		if err != nil {
			return nil, err
		}
		nd.args = append(nd.args, arg)
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		break
	}
	switch kw {
	case "and":
		nd.n = len(nd.args)
	case "or":
		nd.n = 1
	default:
		if nd.n > len(nd.args)+1 {
			return nil, fmt.Errorf("at %d: OutOf(%d, ...) with only %d arguments", start, nd.n, len(nd.args))
		}
	}
	return nd, nil
}

func (p *policyParser) arg() (*node, error) {
	if p.pos < len(p.src) && (p.src[p.pos] == '\'' || p.src[p.pos] == '"') {
		q := p.src[p.pos]
		start := p.pos
		end := strings.IndexByte(p.src[p.pos+1:], q)
		if end < 0 {
			return nil, fmt.Errorf("at %d: unterminated string", start)
		}
		s := p.src[p.pos+1 : p.pos+1+end]
		p.pos += end + 2
		if s == "" {
			return nil, fmt.Errorf("at %d: empty principal", start)
		}
		return &node{principal: s, pos: start}, nil
	}
	return p.gate()
}

// SignedBy returns the rule satisfied by a signature of the identity at
// index i of the envelope's identities.
func SignedBy(i int32) *cb.SignaturePolicy {
	return &cb.SignaturePolicy{Type: &cb.SignaturePolicy_SignedBy{SignedBy: i}}
}

// NOutOf returns the rule satisfied when n of rules are.
func NOutOf(n int32, rules []*cb.SignaturePolicy) *cb.SignaturePolicy {
	return &cb.SignaturePolicy{Type: &cb.SignaturePolicy_NOutOf_{NOutOf: &cb.SignaturePolicy_NOutOf{N: n, Rules: rules}}}
}

// RolePrincipal returns the ROLE principal of role in MSP mspID.
func RolePrincipal(mspID string, role mspb.MSPRole_MSPRoleType) *mspb.MSPPrincipal {
	return &mspb.MSPPrincipal{
		PrincipalClassification: mspb.MSPPrincipal_ROLE,
		Principal:               protoutil.MarshalOrPanic(&mspb.MSPRole{MspIdentifier: mspID, Role: role}),
	}
}

// SignedByMSPRole returns the envelope of OR('mspID.role'): one signature by
// an identity of mspID in the given role. It is what Fabric's
// SignedByMspMember and SignedByMspAdmin build.
func SignedByMSPRole(mspID string, role mspb.MSPRole_MSPRoleType) *cb.SignaturePolicyEnvelope {
	return &cb.SignaturePolicyEnvelope{
		Rule:       NOutOf(1, []*cb.SignaturePolicy{SignedBy(0)}),
		Identities: []*mspb.MSPPrincipal{RolePrincipal(mspID, role)},
	}
}

// Describe renders env in the policy language, for messages. Principals
// that are not ROLE principals are rendered as <classification #i>.
func Describe(env *cb.SignaturePolicyEnvelope) string {
	var sb strings.Builder
	describeRule(&sb, env, env.GetRule(), 0)
	return sb.String()
}

func describeRule(sb *strings.Builder, env *cb.SignaturePolicyEnvelope, r *cb.SignaturePolicy, depth int) {
	if depth > maxPolicyDepth {
		sb.WriteString("...")
		return
	}
	switch t := r.GetType().(type) {
	case *cb.SignaturePolicy_SignedBy:
		sb.WriteString(describePrincipal(env, t.SignedBy))
	case *cb.SignaturePolicy_NOutOf_:
		rules := t.NOutOf.GetRules()
		n := int(t.NOutOf.GetN())
		switch {
		case n == 1 && len(rules) > 0:
			sb.WriteString("OR(")
		case n == len(rules) && n > 1:
			sb.WriteString("AND(")
		default:
			fmt.Fprintf(sb, "OutOf(%d, ", n)
		}
		for i, sub := range rules {
			if i > 0 {
				sb.WriteString(", ")
			}
			describeRule(sb, env, sub, depth+1)
		}
		sb.WriteString(")")
	default:
		sb.WriteString("<empty rule>")
	}
}

func describePrincipal(env *cb.SignaturePolicyEnvelope, i int32) string {
	ids := env.GetIdentities()
	if i < 0 || int(i) >= len(ids) {
		return fmt.Sprintf("<identity #%d out of range>", i)
	}
	p := ids[i]
	if p.GetPrincipalClassification() == mspb.MSPPrincipal_ROLE {
		role := new(mspb.MSPRole)
		if proto.Unmarshal(p.GetPrincipal(), role) == nil {
			return "'" + role.GetMspIdentifier() + "." + strings.ToLower(role.GetRole().String()) + "'"
		}
	}
	return fmt.Sprintf("<%s #%d>", p.GetPrincipalClassification(), i)
}
