package msp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

func TestFromString(t *testing.T) {
	member := func(id string) *mspb.MSPPrincipal { return msp.RolePrincipal(id, mspb.MSPRole_MEMBER) }
	rules := func(r ...*cb.SignaturePolicy) []*cb.SignaturePolicy { return r }
	sb := msp.SignedBy
	tests := []struct {
		policy string
		rule   *cb.SignaturePolicy
		ids    []*mspb.MSPPrincipal
	}{
		{"OR('A.member', 'B.member')", msp.NOutOf(1, rules(sb(0), sb(1))), []*mspb.MSPPrincipal{member("A"), member("B")}},
		{"AND('A.member', 'B.admin')", msp.NOutOf(2, rules(sb(0), sb(1))), []*mspb.MSPPrincipal{member("A"), msp.RolePrincipal("B", mspb.MSPRole_ADMIN)}},
		{"and('A.client')", msp.NOutOf(1, rules(sb(0))), []*mspb.MSPPrincipal{msp.RolePrincipal("A", mspb.MSPRole_CLIENT)}},
		{`outof(1, "A.peer", 'B.orderer')`, msp.NOutOf(1, rules(sb(0), sb(1))), []*mspb.MSPPrincipal{msp.RolePrincipal("A", mspb.MSPRole_PEER), msp.RolePrincipal("B", mspb.MSPRole_ORDERER)}},
		{"OutOf(2, 'A.member', 'B.member', 'C.member')", msp.NOutOf(2, rules(sb(0), sb(1), sb(2))), []*mspb.MSPPrincipal{member("A"), member("B"), member("C")}},
		// Fabric numbers the principals of nested gates first.
		{"OR('A.member', AND('B.member', 'C.member'))",
			msp.NOutOf(1, rules(sb(2), msp.NOutOf(2, rules(sb(0), sb(1))))),
			[]*mspb.MSPPrincipal{member("B"), member("C"), member("A")}},
		{"OR(AND('A.member', 'B.member'), 'C.member')",
			msp.NOutOf(1, rules(msp.NOutOf(2, rules(sb(0), sb(1))), sb(2))),
			[]*mspb.MSPPrincipal{member("A"), member("B"), member("C")}},
		{"OutOf(1, AND('A.member', OR('B.member', 'C.member')), 'D.member')",
			msp.NOutOf(1, rules(msp.NOutOf(2, rules(sb(2), msp.NOutOf(1, rules(sb(0), sb(1))))), sb(3))),
			[]*mspb.MSPPrincipal{member("B"), member("C"), member("A"), member("D")}},
		// Like Fabric, every occurrence is its own principal.
		{"OR('A.member', 'A.member')", msp.NOutOf(1, rules(sb(0), sb(1))), []*mspb.MSPPrincipal{member("A"), member("A")}},
		{"  Or ( 'org1.example-com.member' )  ", msp.NOutOf(1, rules(sb(0))), []*mspb.MSPPrincipal{member("org1.example-com")}},
		{"OUTOF(0, 'A.member')", msp.NOutOf(0, rules(sb(0))), []*mspb.MSPPrincipal{member("A")}},
		{"OutOf(2, 'A.member')", msp.NOutOf(2, rules(sb(0))), []*mspb.MSPPrincipal{member("A")}},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			env, err := msp.FromString(tt.policy)
			require.NoError(t, err)
			want := &cb.SignaturePolicyEnvelope{Rule: tt.rule, Identities: tt.ids}
			require.True(t, proto.Equal(want, env), "got %v", env)
		})
	}
}

func TestFromStringInvalid(t *testing.T) {
	deep := strings.Repeat("OR(", 100) + "'A.member'" + strings.Repeat(")", 100)
	for _, policy := range []string{
		"",
		"   ",
		"'A.member'",
		"OR()",
		"OR('A.member'",
		"OR('A.member',)",
		"OR('A.member' 'B.member')",
		"OR(A.member)",
		"OR('A.Member')",
		"OR('A.owner')",
		"OR('A')",
		"OR('.member')",
		"OR('A B.member')",
		"OR('')",
		"OR('A.member) ",
		"XOR('A.member')",
		"OutOf('A.member')",
		"OutOf(, 'A.member')",
		"OutOf(1)",
		"OutOf(3, 'A.member')",
		"OutOf(-1, 'A.member')",
		"OutOf(1.5, 'A.member')",
		"OutOf(99999999999999999999, 'A.member')",
		"OR('A.member') AND('B.member')",
		"OR('A.member'))",
		deep,
	} {
		t.Run(policy, func(t *testing.T) {
			_, err := msp.FromString(policy)
			require.ErrorIs(t, err, msp.ErrMalformed)
		})
	}
}

func TestEvaluateSignaturePolicy(t *testing.T) {
	caA := testutil.NewCA(t, "A")
	caB := testutil.NewCA(t, "B")
	caC := testutil.NewCA(t, "C")
	a1, a2 := caA.Issue("a1"), caA.Issue("a2")
	aAdmin := caA.Issue("a-admin", testutil.ListedAdmin())
	b1, bAdmin := caB.Issue("b1"), caB.Issue("b-admin", testutil.ListedAdmin())
	c1 := caC.Issue("c1")
	mgr := testutil.Manager(t, caA, caB, caC) // after ListedAdmin: admins are in the MSP config
	expired := caA.Issue("old", testutil.Expired())
	stranger := testutil.NewCA(t, "Z").Issue("z")

	msg := []byte("message")
	sd := func(id *testutil.Identity) msp.SignedData { return id.SignedData(msg) }
	badSig := func(id *testutil.Identity) msp.SignedData {
		s := id.SignedData([]byte("other"))
		s.Data = msg
		return s
	}
	sigs := func(s ...msp.SignedData) []msp.SignedData { return s }

	tests := []struct {
		name   string
		policy string
		signed []msp.SignedData
		ok     bool
	}{
		{"or one", "OR('A.member')", sigs(sd(a1)), true},
		{"or none", "OR('A.member')", nil, false},
		{"or other org", "OR('A.member')", sigs(sd(b1)), false},
		{"and both", "AND('A.member', 'B.member')", sigs(sd(a1), sd(b1)), true},
		{"and one", "AND('A.member', 'B.member')", sigs(sd(a1)), false},
		{"duplicate identity counts once", "AND('A.member', 'A.member')", sigs(sd(a1), sd(a1)), false},
		{"two identities same org", "AND('A.member', 'A.member')", sigs(sd(a1), sd(a2)), true},
		{"outof 2 of 3", "OutOf(2, 'A.member', 'B.member', 'C.member')", sigs(sd(a1), sd(c1)), true},
		{"outof 1 signer thrice", "OutOf(2, 'A.member', 'B.member', 'C.member')", sigs(sd(a1), sd(a1), sd(a1)), false},
		{"outof all", "OutOf(3, 'A.member', 'B.member', 'C.member')", sigs(sd(c1), sd(b1), sd(a1)), true},
		{"one signature per principal", "AND('A.admin', 'A.member')", sigs(sd(aAdmin)), false},
		{"admin and member", "AND('A.admin', 'A.member')", sigs(sd(aAdmin), sd(a1)), true},
		// Greedy like Fabric's cauthdsl: the admin's signature is taken by
		// the member principal first.
		{"greedy order", "AND('A.member', 'A.admin')", sigs(sd(aAdmin), sd(a1)), false},
		{"greedy order reversed", "AND('A.member', 'A.admin')", sigs(sd(a1), sd(aAdmin)), true},
		{"not admin", "OR('A.admin')", sigs(sd(a1), sd(a2)), false},
		{"nested", "OR('A.admin', AND('B.admin', 'C.member'))", sigs(sd(bAdmin), sd(c1)), true},
		{"nested not admin", "OR('A.admin', AND('B.admin', 'C.member'))", sigs(sd(b1), sd(c1)), false},
		{"expired ignored", "OR('A.member')", sigs(sd(expired)), false},
		{"bad signature ignored", "OR('A.member')", sigs(badSig(a1)), false},
		{"bad then good signature of the same identity", "OR('A.member')", sigs(badSig(a1), sd(a1)), true},
		{"unknown MSP ignored", "OR('A.member', 'Z.member')", sigs(sd(stranger)), false},
		{"garbage identity ignored", "OR('A.member')", sigs(msp.SignedData{Data: msg, Identity: []byte{1, 2}}, sd(a1)), true},
		{"outof zero", "OutOf(0, 'A.member')", nil, true},
		{"outof n+1", "OutOf(2, 'A.member')", sigs(sd(a1), sd(a2)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := msp.FromString(tt.policy)
			require.NoError(t, err)
			check := func(err error) {
				t.Helper()
				if tt.ok {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied)
				}
			}
			check(msp.EvaluateSignaturePolicy(env, tt.signed, mgr))
			// Checked once, evaluated several times: same verdict.
			cs := mgr.CheckSignatures(tt.signed)
			require.Equal(t, len(tt.signed), cs.Len())
			check(cs.Evaluate(env))
			check(cs.Evaluate(env))
		})
	}
}

func TestCheckSignatures(t *testing.T) {
	ca := testutil.NewCA(t, "A")
	a, admin := ca.Issue("a"), ca.Issue("admin", testutil.ListedAdmin())
	expired := ca.Issue("old", testutil.Expired())
	mgr := testutil.Manager(t, ca)
	msg := []byte("m")
	bad := a.SignedData([]byte("other"))
	bad.Data = msg
	cs := mgr.CheckSignatures([]msp.SignedData{
		a.SignedData(msg),
		bad,
		expired.SignedData(msg),
		{Data: msg, Identity: []byte("junk")},
		testutil.NewCA(t, "Z").Issue("z").SignedData(msg),
		admin.SignedData(msg),
	})
	require.Equal(t, 6, cs.Len())
	require.NoError(t, cs.Err(0))
	require.ErrorIs(t, cs.Err(1), msp.ErrBadSignature)
	require.ErrorIs(t, cs.Err(2), msp.ErrExpired)
	require.ErrorIs(t, cs.Err(3), msp.ErrMalformed)
	require.ErrorIs(t, cs.Err(4), msp.ErrUnknownMSP)
	for _, i := range []int{2, 3, 4} {
		require.NotErrorIs(t, cs.Err(i), msp.ErrBadSignature, "identity errors are not signature errors")
	}
	require.NoError(t, cs.Err(5))

	member := msp.SignedByMSPRole("A", mspb.MSPRole_MEMBER)
	adm := msp.SignedByMSPRole("A", mspb.MSPRole_ADMIN)
	both, err := msp.FromString("AND('A.member', 'A.admin')")
	require.NoError(t, err)
	require.NoError(t, cs.Evaluate(member))
	require.NoError(t, cs.Evaluate(adm))
	require.NoError(t, cs.Evaluate(both))
	three, err := msp.FromString("OutOf(3, 'A.member', 'A.member', 'A.member')")
	require.NoError(t, err)
	err = cs.Evaluate(three)
	require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied)
	require.Contains(t, err.Error(), "signature 1")
	require.ErrorIs(t, cs.Evaluate(nil), msp.ErrMalformed)
	require.ErrorIs(t, cs.Evaluate(&cb.SignaturePolicyEnvelope{Rule: msp.SignedBy(3)}), msp.ErrMalformed)
}

func TestEvaluateSignaturePolicyErrors(t *testing.T) {
	ca := testutil.NewCA(t, "A")
	mgr := testutil.Manager(t, ca)
	a := ca.Issue("a")

	env, err := msp.FromString("AND('A.member', 'A.admin')")
	require.NoError(t, err)
	err = msp.EvaluateSignaturePolicy(env, []msp.SignedData{a.SignedData([]byte("m")), {Identity: []byte("junk")}}, mgr)
	require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied)
	require.Contains(t, err.Error(), "AND('A.member', 'A.admin')")
	require.Contains(t, err.Error(), "unsatisfied: 'A.admin'")
	require.Contains(t, err.Error(), "signature 1")

	for name, env := range map[string]*cb.SignaturePolicyEnvelope{
		"nil":          nil,
		"no rule":      {},
		"empty rule":   {Rule: &cb.SignaturePolicy{}},
		"out of range": {Rule: msp.SignedBy(1), Identities: []*mspb.MSPPrincipal{msp.RolePrincipal("A", mspb.MSPRole_MEMBER)}},
		"negative":     {Rule: msp.SignedBy(-1)},
		"negative n":   {Rule: msp.NOutOf(-1, nil)},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, msp.EvaluateSignaturePolicy(env, nil, mgr), msp.ErrMalformed)
		})
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		"OR('A.member', 'B.member')",
		"AND('A.member', OR('B.admin', 'C.peer'))",
		"OutOf(2, 'A.member', 'B.member', 'C.member')",
		`outof(1, "A.client", AND('B.orderer'))`,
		"OR('A.member'",
		"OutOf(3, 'A.member')",
		"",
		"OR(OR(OR('x.member')))",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, err := msp.FromString(s)
		if err != nil {
			require.ErrorIs(t, err, msp.ErrMalformed)
			return
		}
		require.NoError(t, msp.ValidateSignaturePolicy(env))
		// Describe renders the same policy: parsing it again gives the
		// same envelope.
		again, err := msp.FromString(msp.Describe(env))
		require.NoError(t, err, msp.Describe(env))
		require.True(t, proto.Equal(env, again), "%q -> %q", s, msp.Describe(env))
	})
}

func FuzzDeserialize(f *testing.F) {
	ca := testutil.NewCA(f, "Org1MSP", testutil.WithNodeOUs())
	mgr := testutil.Manager(f, ca)
	good := ca.Issue("alice", testutil.WithOU(testutil.OUClient))
	f.Add(good.Serialized())
	f.Add(ca.Issue("ed", testutil.Ed25519Key()).Serialized())
	f.Add(testutil.NewCA(f, "Org2MSP").Issue("bob").Serialized())
	f.Add(good.Serialized()[:40])
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x07, 'O', 'r', 'g', '1', 'M', 'S', 'P', 0x12, 0x03, '-', '-', '-'})
	principal := msp.RolePrincipal("Org1MSP", mspb.MSPRole_CLIENT)
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := mgr.Deserialize(b)
		if err != nil {
			return
		}
		_ = mgr.Validate(id)
		_ = mgr.SatisfiesPrincipal(id, principal)
		_ = id.Verify([]byte("m"), b)
		ser, err := id.Serialize()
		require.NoError(t, err)
		id2, err := mgr.Deserialize(ser)
		require.NoError(t, err)
		require.True(t, id.Certificate().Equal(id2.Certificate()))
	})
}

// ExampleFromString parses a policy in Fabric's language and evaluates it
// against signatures of two organisations.
func ExampleFromString() {
	org1 := testutil.NewCA(nil, "Org1MSP")
	org2 := testutil.NewCA(nil, "Org2MSP")
	alice := org1.Issue("alice")
	bob := org2.Issue("bob")
	mgr, _ := msp.NewManager(org1.MSP(), org2.MSP())

	policy, err := msp.FromString("AND('Org1MSP.member', 'Org2MSP.member')")
	if err != nil {
		panic(err)
	}
	fmt.Println(msp.Describe(policy), "over", len(policy.Identities), "principals")

	msg := []byte("transaction")
	err = msp.EvaluateSignaturePolicy(policy, []msp.SignedData{alice.SignedData(msg)}, mgr)
	fmt.Println("alice alone:", err == nil)
	err = msp.EvaluateSignaturePolicy(policy, []msp.SignedData{alice.SignedData(msg), bob.SignedData(msg)}, mgr)
	fmt.Println("alice and bob:", err == nil)
	// Output:
	// AND('Org1MSP.member', 'Org2MSP.member') over 2 principals
	// alice alone: false
	// alice and bob: true
}
