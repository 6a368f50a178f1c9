package msp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// validateCase is an identity, the options of the MSP of org1 that
// validates it, and the error that validation must wrap (nil: valid).
type validateCase struct {
	name string
	id   *testutil.Identity
	opts []msp.Option
	want error
}

// validateCases returns the validation table and org1, the CA whose MSP
// validates its identities.
func validateCases(t *testing.T) (*testutil.CA, []validateCase) {
	org1 := testutil.NewCA(t, "Org1MSP")
	ica := org1.NewIntermediate()
	other := testutil.NewCA(t, "Org1MSP") // same MSP ID, different root
	org2 := testutil.NewCA(t, "Org2MSP")
	p384CA := testutil.NewCA(t, "Org1MSP", testutil.WithCACurve(elliptic.P384()))

	revoked := org1.Issue("revoked")
	org1.Revoke(revoked.Cert)
	icaRevoked := ica.Issue("ica-revoked")
	ica.Revoke(icaRevoked.Cert)
	revokedICA := org1.NewIntermediate()
	underRevokedICA := revokedICA.Issue("under-revoked-ica")
	org1.Revoke(revokedICA.Cert)

	return org1, []validateCase{
		{name: "valid", id: org1.Issue("alice")},
		{name: "ed25519", id: org1.Issue("ed", testutil.Ed25519Key())},
		{name: "p384 key", id: org1.Issue("p384", testutil.P384Key())},
		{name: "via intermediate", id: ica.Issue("bob")},
		{name: "expired", id: org1.Issue("old", testutil.Expired()), want: msp.ErrExpired},
		{name: "not yet valid", id: org1.Issue("future"), opts: []msp.Option{msp.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })}, want: msp.ErrExpired},
		{name: "after expiry by clock", id: org1.Issue("later"), opts: []msp.Option{msp.WithClock(func() time.Time { return time.Now().Add(48 * time.Hour) })}, want: msp.ErrExpired},
		{name: "wrong CA", id: other.Issue("mallory"), want: msp.ErrUntrusted},
		{name: "wrong CA with P-384 root", id: p384CA.Issue("eve"), want: msp.ErrUntrusted},
		{name: "revoked by root CRL", id: revoked, want: msp.ErrRevoked},
		{name: "revoked by intermediate CRL", id: icaRevoked, want: msp.ErrRevoked},
		{name: "issued by revoked intermediate", id: underRevokedICA, want: msp.ErrRevoked},
		{name: "CA certificate as identity", id: org1.Issue("subca", testutil.AsCA()), want: msp.ErrUntrusted},
		{name: "wrong MSP ID", id: org2.Issue("carol"), want: msp.ErrUnknownMSP},
		{name: "nil identity", id: nil, want: msp.ErrMalformed},
	}
}

// checkVerdict requires err to be the verdict want.
func checkVerdict(t *testing.T, want, err error) {
	t.Helper()
	if want == nil {
		require.NoError(t, err)
		return
	}
	require.ErrorIs(t, err, want)
}

// asIdentity avoids a non-nil msp.Identity holding a nil *testutil.Identity.
func asIdentity(id *testutil.Identity) msp.Identity {
	if id == nil {
		return nil
	}
	return id
}

func TestValidate(t *testing.T) {
	org1, tests := validateCases(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := org1.MSP(tt.opts...)
			checkVerdict(t, tt.want, m.Validate(asIdentity(tt.id)))
		})
	}
}

func TestValidateP384Root(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP", testutil.WithCACurve(elliptic.P384()))
	id := ca.Issue("alice", testutil.P384Key())
	require.NoError(t, ca.MSP().Validate(id))
}

func TestValidateNodeOUs(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP", testutil.WithNodeOUs())
	m := ca.MSP()
	require.True(t, m.NodeOUsEnabled())
	require.NoError(t, m.Validate(ca.Issue("c", testutil.WithOU(testutil.OUClient))))
	require.ErrorIs(t, m.Validate(ca.Issue("none")), msp.ErrUntrusted)
	require.ErrorIs(t, m.Validate(ca.Issue("two", testutil.WithOU(testutil.OUClient, testutil.OUPeer))), msp.ErrUntrusted)
}

// TestValidateOrganizationalUnits checks Fabric's organisational unit
// identifiers: an identity must carry one of the listed OUs, issued directly
// by the CA the identifier names.
func TestValidateOrganizationalUnits(t *testing.T) {
	root := testutil.NewCA(t, "Org1MSP")
	ica := root.NewIntermediate()
	cfg := root.MSPConfig()
	cfg.OrganizationalUnitIdentifiers = []*ccpb.FabricOUIdentifier{
		{Certificate: root.CertPEM, OrganizationalUnitIdentifier: "sales"},
		{Certificate: ica.CertPEM, OrganizationalUnitIdentifier: "ops"},
	}
	m, err := msp.New(cfg)
	require.NoError(t, err)
	tests := []struct {
		name string
		id   *testutil.Identity
		want error
	}{
		{"OU of its issuer", root.Issue("a", testutil.WithOU("sales")), nil},
		{"one of several OUs", root.Issue("b", testutil.WithOU("x", "sales")), nil},
		{"OU of the intermediate", ica.Issue("c", testutil.WithOU("ops")), nil},
		{"no OU", root.Issue("d"), msp.ErrUntrusted},
		{"unlisted OU", root.Issue("e", testutil.WithOU("x")), msp.ErrUntrusted},
		{"OU bound to another CA", root.Issue("f", testutil.WithOU("ops")), msp.ErrUntrusted},
		{"OU of the root under the intermediate", ica.Issue("g", testutil.WithOU("sales")), msp.ErrUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, tt.want, m.Validate(tt.id))
		})
	}
}

func sign(t *testing.T, id msp.SigningIdentity, msg []byte) []byte {
	t.Helper()
	sig, err := id.Sign(msg)
	require.NoError(t, err)
	return sig
}

// highS returns the other valid ECDSA signature (r, N-s) of a low-S one.
func highS(t *testing.T, curve elliptic.Curve, sig []byte) []byte {
	t.Helper()
	var rs struct{ R, S *big.Int }
	_, err := asn1.Unmarshal(sig, &rs)
	require.NoError(t, err)
	rs.S = new(big.Int).Sub(curve.Params().N, rs.S)
	out, err := asn1.Marshal(rs)
	require.NoError(t, err)
	return out
}

func TestVerify(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP")
	p256 := ca.Issue("p256")
	p384 := ca.Issue("p384", testutil.P384Key())
	ed := ca.Issue("ed", testutil.Ed25519Key())
	msg := []byte("hello")

	// The high-S variant is a mathematically valid ECDSA signature: only
	// the low-S rule rejects it.
	hs := highS(t, elliptic.P256(), sign(t, p256, msg))
	digest := sha256.Sum256(msg)
	require.True(t, ecdsa.VerifyASN1(p256.Key.Public().(*ecdsa.PublicKey), digest[:], hs))

	tests := []struct {
		name string
		id   msp.Identity
		msg  []byte
		sig  []byte
		ok   bool
	}{
		{"p256", p256, msg, sign(t, p256, msg), true},
		{"p384", p384, msg, sign(t, p384, msg), true},
		{"ed25519", ed, msg, sign(t, ed, msg), true},
		{"p256 other message", p256, []byte("other"), sign(t, p256, msg), false},
		{"p256 other key", p256, msg, sign(t, p384, msg), false},
		{"p256 high-S", p256, msg, hs, false},
		{"p384 high-S", p384, msg, highS(t, elliptic.P384(), sign(t, p384, msg)), false},
		{"p256 garbage", p256, msg, []byte{0x30, 0x01, 0x00}, false},
		{"p256 trailing bytes", p256, msg, append(sign(t, p256, msg), 0), false},
		{"p256 empty", p256, msg, nil, false},
		{"ed25519 other message", ed, []byte("other"), sign(t, ed, msg), false},
		{"ed25519 short", ed, msg, []byte{1, 2, 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.Verify(tt.msg, tt.sig)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, msp.ErrBadSignature)
			}
		})
	}
}

func TestSignIsLowS(t *testing.T) {
	id := testutil.NewCA(t, "Org1MSP").Issue("alice")
	half := new(big.Int).Rsh(elliptic.P256().Params().N, 1)
	for i := range 50 {
		var rs struct{ R, S *big.Int }
		_, err := asn1.Unmarshal(sign(t, id, []byte{byte(i)}), &rs)
		require.NoError(t, err)
		require.LessOrEqual(t, rs.S.Cmp(half), 0)
	}
}

func TestNewSigningIdentityKeyMismatch(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP")
	a, b := ca.Issue("a"), ca.Issue("b")
	_, err := msp.NewSigningIdentity("Org1MSP", a.CertPEM, b.Key)
	require.ErrorIs(t, err, msp.ErrMalformed)
	_, err = msp.NewSigningIdentity("Org1MSP", []byte("not pem"), a.Key)
	require.ErrorIs(t, err, msp.ErrMalformed)
}

func TestManagerDeserialize(t *testing.T) {
	org1, org2 := testutil.NewCA(t, "Org1MSP"), testutil.NewCA(t, "Org2MSP")
	mgr := testutil.Manager(t, org1, org2)
	require.Equal(t, []string{"Org1MSP", "Org2MSP"}, mgr.MSPIDs())
	alice := org1.Issue("alice")
	stranger := testutil.NewCA(t, "Org3MSP").Issue("stranger")

	id, err := mgr.Deserialize(alice.Serialized())
	require.NoError(t, err)
	require.Equal(t, "Org1MSP", id.MSPID())
	require.True(t, id.Certificate().Equal(alice.Cert))
	ser, err := id.Serialize()
	require.NoError(t, err)
	require.Equal(t, alice.Serialized(), ser)
	require.NoError(t, mgr.Validate(id))
	require.NoError(t, id.Verify([]byte("m"), sign(t, alice, []byte("m"))))

	_, err = mgr.Deserialize(stranger.Serialized())
	require.ErrorIs(t, err, msp.ErrUnknownMSP)
	_, err = mgr.Deserialize([]byte{0xff, 0xff})
	require.ErrorIs(t, err, msp.ErrMalformed)
	_, err = mgr.Deserialize(protoutil.MarshalOrPanic(&mspb.SerializedIdentity{Mspid: "Org1MSP", IdBytes: alice.Cert.Raw}))
	require.ErrorIs(t, err, msp.ErrMalformed)
	_, err = mgr.Deserialize(protoutil.MarshalOrPanic(&mspb.SerializedIdentity{Mspid: "Org1MSP", IdBytes: alice.KeyPEM}))
	require.ErrorIs(t, err, msp.ErrMalformed)

	_, err = msp.NewManager(org1.MSP(), org1.MSP())
	require.ErrorIs(t, err, msp.ErrMalformed)
}

func TestSatisfiesPrincipal(t *testing.T) {
	plain := testutil.NewCA(t, "Org1MSP")
	plainAdmin := plain.Issue("admin", testutil.ListedAdmin())
	plainUser := plain.Issue("user")
	ous := testutil.NewCA(t, "Org2MSP", testutil.WithNodeOUs())
	ouAdmin := ous.Issue("admin", testutil.WithOU(testutil.OUAdmin))
	ouClient := ous.Issue("client", testutil.WithOU(testutil.OUClient, "dept1"))
	ouPeer := ous.Issue("peer", testutil.WithOU(testutil.OUPeer))
	ouOrderer := ous.Issue("orderer", testutil.WithOU(testutil.OUOrderer))
	mgr := testutil.Manager(t, plain, ous)

	role := msp.RolePrincipal
	identity := func(id *testutil.Identity) *mspb.MSPPrincipal {
		return &mspb.MSPPrincipal{PrincipalClassification: mspb.MSPPrincipal_IDENTITY, Principal: id.Serialized()}
	}
	ou := func(mspID, name string, certifiers []byte) *mspb.MSPPrincipal {
		return &mspb.MSPPrincipal{
			PrincipalClassification: mspb.MSPPrincipal_ORGANIZATION_UNIT,
			Principal:               protoutil.MarshalOrPanic(&mspb.OrganizationUnit{MspIdentifier: mspID, OrganizationalUnitIdentifier: name, CertifiersIdentifier: certifiers}),
		}
	}
	m2, _ := mgr.MSP("Org2MSP")
	certifiers, err := m2.CertifiersIdentifier(ouClient)
	require.NoError(t, err)

	tests := []struct {
		name string
		id   *testutil.Identity
		p    *mspb.MSPPrincipal
		ok   bool
	}{
		{"member", plainUser, role("Org1MSP", mspb.MSPRole_MEMBER), true},
		{"member of other MSP", plainUser, role("Org2MSP", mspb.MSPRole_MEMBER), false},
		{"listed admin", plainAdmin, role("Org1MSP", mspb.MSPRole_ADMIN), true},
		{"not admin", plainUser, role("Org1MSP", mspb.MSPRole_ADMIN), false},
		{"client without NodeOUs", plainUser, role("Org1MSP", mspb.MSPRole_CLIENT), false},
		{"NodeOU admin", ouAdmin, role("Org2MSP", mspb.MSPRole_ADMIN), true},
		{"NodeOU client is not admin", ouClient, role("Org2MSP", mspb.MSPRole_ADMIN), false},
		{"NodeOU client", ouClient, role("Org2MSP", mspb.MSPRole_CLIENT), true},
		{"NodeOU peer", ouPeer, role("Org2MSP", mspb.MSPRole_PEER), true},
		{"NodeOU orderer", ouOrderer, role("Org2MSP", mspb.MSPRole_ORDERER), true},
		{"NodeOU peer is not orderer", ouPeer, role("Org2MSP", mspb.MSPRole_ORDERER), false},
		{"NodeOU member", ouPeer, role("Org2MSP", mspb.MSPRole_MEMBER), true},
		{"identity", plainUser, identity(plainUser), true},
		{"other identity", plainAdmin, identity(plainUser), false},
		{"OU", ouClient, ou("Org2MSP", "dept1", nil), true},
		{"OU with certifiers", ouClient, ou("Org2MSP", "dept1", certifiers), true},
		{"OU wrong certifiers", ouClient, ou("Org2MSP", "dept1", []byte("x")), false},
		{"OU missing", ouPeer, ou("Org2MSP", "dept1", nil), false},
		{"OU other MSP", ouClient, ou("Org1MSP", "dept1", nil), false},
		{"malformed role", plainUser, &mspb.MSPPrincipal{Principal: []byte{0xff}}, false},
		{"anonymity unsupported", plainUser, &mspb.MSPPrincipal{PrincipalClassification: mspb.MSPPrincipal_ANONYMITY}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mgr.SatisfiesPrincipal(tt.id, tt.p)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP")
	foreign := testutil.NewCA(t, "Org1MSP")
	foreign.Revoke(foreign.Issue("x").Cert)
	leaf := ca.Issue("leaf")
	good := ca.MSPConfig()
	tests := []struct {
		name   string
		mutate func(c *ccpb.MSPConfig)
	}{
		{"no name", func(c *ccpb.MSPConfig) { c.Name = "" }},
		{"no root", func(c *ccpb.MSPConfig) { c.RootCerts = nil }},
		{"garbage root", func(c *ccpb.MSPConfig) { c.RootCerts = [][]byte{[]byte("junk")} }},
		{"leaf as root", func(c *ccpb.MSPConfig) { c.RootCerts = [][]byte{leaf.CertPEM} }},
		{"unchained intermediate", func(c *ccpb.MSPConfig) { c.IntermediateCerts = [][]byte{foreign.NewIntermediate().CertPEM} }},
		{"foreign admin", func(c *ccpb.MSPConfig) { c.Admins = [][]byte{foreign.Issue("a").CertPEM} }},
		{"foreign CRL", func(c *ccpb.MSPConfig) { c.RevocationList = [][]byte{foreign.CRL()} }},
		{"garbage CRL", func(c *ccpb.MSPConfig) { c.RevocationList = [][]byte{[]byte("junk")} }},
		{"OU without certificate", func(c *ccpb.MSPConfig) {
			c.OrganizationalUnitIdentifiers = []*ccpb.FabricOUIdentifier{{OrganizationalUnitIdentifier: "sales"}}
		}},
		{"OU without name", func(c *ccpb.MSPConfig) {
			c.OrganizationalUnitIdentifiers = []*ccpb.FabricOUIdentifier{{Certificate: ca.CertPEM}}
		}},
		{"OU foreign cert", func(c *ccpb.MSPConfig) {
			c.OrganizationalUnitIdentifiers = []*ccpb.FabricOUIdentifier{{Certificate: foreign.CertPEM, OrganizationalUnitIdentifier: "sales"}}
		}},
		{"NodeOU foreign cert", func(c *ccpb.MSPConfig) {
			c.FabricNodeOus = &ccpb.FabricNodeOUs{Enable: true, ClientOuIdentifier: &ccpb.FabricOUIdentifier{Certificate: foreign.CertPEM, OrganizationalUnitIdentifier: "client"}}
		}},
	}
	_, err := msp.New(good)
	require.NoError(t, err)
	_, err = msp.New(nil)
	require.ErrorIs(t, err, msp.ErrMalformed)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ca.MSPConfig()
			tt.mutate(c)
			_, err := msp.New(c)
			require.Error(t, err)
		})
	}
}

func TestLoadDir(t *testing.T) {
	for _, nodeOUs := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "nodeous"}[nodeOUs], func(t *testing.T) {
			var opts []testutil.CAOption
			var ous []string
			if nodeOUs {
				opts = append(opts, testutil.WithNodeOUs())
				ous = []string{testutil.OUPeer}
			}
			ca := testutil.NewCA(t, "Org1MSP", opts...)
			ica := ca.NewIntermediate()
			signer := ica.Issue("peer0", testutil.WithOU(ous...))
			admin := ca.Issue("admin", testutil.ListedAdmin(), testutil.WithOU(testutil.OUAdmin))
			revoked := ca.Issue("revoked", testutil.WithOU(ous...))
			ca.Revoke(revoked.Cert)
			dir := filepath.Join(t.TempDir(), "msp")
			require.NoError(t, ca.WriteMSPDir(dir, signer))

			cfg, err := msp.LoadDir(dir, "Org1MSP")
			require.NoError(t, err)
			require.Len(t, cfg.RootCerts, 1)
			require.Len(t, cfg.IntermediateCerts, 1)
			require.Len(t, cfg.Admins, 1)
			require.Len(t, cfg.RevocationList, 1)
			require.Len(t, cfg.TlsRootCerts, 1)
			require.Equal(t, nodeOUs, cfg.GetFabricNodeOus().GetEnable())
			m, err := msp.New(cfg)
			require.NoError(t, err)

			si, err := msp.LoadSigningIdentity(dir, "Org1MSP")
			require.NoError(t, err)
			require.NoError(t, m.Validate(si))
			require.ErrorIs(t, m.Validate(revoked), msp.ErrRevoked)
			require.NoError(t, m.SatisfiesPrincipal(admin, msp.RolePrincipal("Org1MSP", mspb.MSPRole_ADMIN)))
			if nodeOUs {
				require.NoError(t, m.SatisfiesPrincipal(si, msp.RolePrincipal("Org1MSP", mspb.MSPRole_PEER)))
			}
			sig, err := si.Sign([]byte("msg"))
			require.NoError(t, err)
			require.NoError(t, signer.Verify([]byte("msg"), sig))
		})
	}
	_, err := msp.LoadDir(t.TempDir(), "Org1MSP")
	require.Error(t, err)
	_, err = msp.LoadSigningIdentity(t.TempDir(), "Org1MSP")
	require.Error(t, err)
}

func TestLoadDirOrganizationalUnits(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP")
	dir := filepath.Join(t.TempDir(), "msp")
	require.NoError(t, ca.WriteMSPDir(dir, nil))
	y := "OrganizationalUnitIdentifiers:\n  - Certificate: cacerts/ca.Org1MSP-cert.pem\n    OrganizationalUnitIdentifier: sales\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, msp.FileConfig), []byte(y), 0o600))

	cfg, err := msp.LoadDir(dir, "Org1MSP")
	require.NoError(t, err)
	require.Len(t, cfg.OrganizationalUnitIdentifiers, 1)
	require.Equal(t, "sales", cfg.OrganizationalUnitIdentifiers[0].OrganizationalUnitIdentifier)
	require.Equal(t, ca.CertPEM, cfg.OrganizationalUnitIdentifiers[0].Certificate)
	m, err := msp.New(cfg)
	require.NoError(t, err)
	require.NoError(t, m.Validate(ca.Issue("a", testutil.WithOU("sales"))))
	require.ErrorIs(t, m.Validate(ca.Issue("b", testutil.WithOU("x"))), msp.ErrUntrusted)

	y = "OrganizationalUnitIdentifiers:\n  - Certificate: cacerts/missing.pem\n    OrganizationalUnitIdentifier: sales\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, msp.FileConfig), []byte(y), 0o600))
	_, err = msp.LoadDir(dir, "Org1MSP")
	require.Error(t, err)
}
