// Package testutil holds helpers shared by the tests and examples of this
// repository: in-memory certificate authorities that issue identities of an
// MSP, Fabric MSP folders written to disk, signed envelopes, channel
// configurations with Fabric's default policies and genesis blocks.
//
// Helpers take a testing.TB and fail the test on error; where t is nil (in
// Example functions) they panic instead. Nothing here is fit for
// production: keys live in memory and validity periods are short.
//
//	org1 := testutil.NewCA(t, "Org1MSP", testutil.WithNodeOUs())
//	alice := org1.Issue("alice", testutil.WithOU(testutil.OUClient))
//	cfg := testutil.ChannelConfig("mychannel", []*testutil.CA{org1})
//	genesis := testutil.GenesisBlock(t, cfg)
//	env := testutil.Envelope(alice, "mychannel", cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx"))
package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

// NodeOU names used by CAs created WithNodeOUs, as in Fabric's samples.
const (
	OUClient  = "client"
	OUPeer    = "peer"
	OUAdmin   = "admin"
	OUOrderer = "orderer"
)

// CA is an in-memory certificate authority of one MSP: a root CA made by
// NewCA or an intermediate CA made by NewIntermediate. All CAs of a tree
// share the tree's MSP configuration (see MSPConfig). A CA is safe for
// concurrent use.
type CA struct {
	// MSPID is the ID of the MSP the CA issues identities for.
	MSPID string
	// Cert is the CA's certificate and CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	// Key is the CA's private key.
	Key crypto.Signer

	t      testing.TB
	parent *CA
	tree   *tree

	mu      sync.Mutex
	revoked []x509.RevocationListEntry
	crlNum  int64
}

// tree is what the CAs of one MSP share.
type tree struct {
	mu            sync.Mutex
	root          *CA
	intermediates []*CA
	admins        [][]byte
	nodeOUs       bool
	now           func() time.Time
}

// CAOption configures NewCA.
type CAOption func(*caConfig)

type caConfig struct {
	nodeOUs bool
	curve   elliptic.Curve
	now     func() time.Time
}

// WithNodeOUs makes the MSP configuration of the CA enable NodeOUs with the
// OUs client, peer, admin and orderer (OUClient...), certified by the root.
func WithNodeOUs() CAOption { return func(c *caConfig) { c.nodeOUs = true } }

// WithCACurve makes the root CA's key use curve instead of P-256.
func WithCACurve(curve elliptic.Curve) CAOption { return func(c *caConfig) { c.curve = curve } }

// WithCAClock makes the CA date certificates from now() instead of
// time.Now().
func WithCAClock(now func() time.Time) CAOption { return func(c *caConfig) { c.now = now } }

// NewCA returns a root CA (ECDSA P-256 unless WithCACurve) for MSP mspID,
// valid from an hour ago for ten years.
func NewCA(t testing.TB, mspID string, opts ...CAOption) *CA {
	if t != nil {
		t.Helper()
	}
	cfg := caConfig{curve: elliptic.P256(), now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	key, err := ecdsa.GenerateKey(cfg.curve, rand.Reader)
	check(t, err)
	now := cfg.now()
	tmpl := caTemplate("ca."+mspID, mspID, now)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	check(t, err)
	ca := newCA(t, mspID, der, key)
	ca.tree = &tree{root: ca, nodeOUs: cfg.nodeOUs, now: cfg.now}
	return ca
}

func newCA(t testing.TB, mspID string, der []byte, key crypto.Signer) *CA {
	cert, err := x509.ParseCertificate(der)
	check(t, err)
	return &CA{
		MSPID:   mspID,
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:     key,
		t:       t,
	}
}

func caTemplate(cn, mspID string, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{mspID}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func check(t testing.TB, err error) {
	if err == nil {
		return
	}
	if t == nil {
		panic("testutil: " + err.Error())
	}
	t.Helper()
	t.Fatalf("testutil: %v", err)
}

// Root returns the root CA of c's tree.
func (c *CA) Root() *CA { return c.tree.root }

// NewIntermediate returns an intermediate CA signed by c, of the same MSP.
// Its certificate is listed in the tree's intermediate certificates.
func (c *CA) NewIntermediate() *CA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(c.t, err)
	tmpl := caTemplate(fmt.Sprintf("ica%d.%s", len(c.tree.intermediates)+1, c.MSPID), c.MSPID, c.tree.now())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, key.Public(), c.Key)
	check(c.t, err)
	ica := newCA(c.t, c.MSPID, der, key)
	ica.parent = c
	ica.tree = c.tree
	c.tree.mu.Lock()
	c.tree.intermediates = append(c.tree.intermediates, ica)
	c.tree.mu.Unlock()
	return ica
}

// IssueOption configures Issue.
type IssueOption func(*issueConfig)

type issueConfig struct {
	ous       []string
	notBefore time.Time
	notAfter  time.Time
	keyType   string
	admin     bool
	isCA      bool
}

// WithOU adds organisational units to the certificate's subject (OUClient,
// OUPeer, OUAdmin, OUOrderer or any other).
func WithOU(ous ...string) IssueOption {
	return func(c *issueConfig) { c.ous = append(c.ous, ous...) }
}

// Expired makes the certificate's validity end a day before now.
func Expired() IssueOption {
	return func(c *issueConfig) {
		c.notBefore = c.notBefore.Add(-72 * time.Hour)
		c.notAfter = c.notBefore.Add(48 * time.Hour)
	}
}

// WithValidity sets the certificate's validity period.
func WithValidity(notBefore, notAfter time.Time) IssueOption {
	return func(c *issueConfig) { c.notBefore, c.notAfter = notBefore, notAfter }
}

// Ed25519Key gives the identity an Ed25519 key instead of ECDSA P-256.
func Ed25519Key() IssueOption { return func(c *issueConfig) { c.keyType = "ed25519" } }

// P384Key gives the identity an ECDSA P-384 key instead of P-256.
func P384Key() IssueOption { return func(c *issueConfig) { c.keyType = "p384" } }

// ListedAdmin lists the certificate in the MSP configuration's admins.
func ListedAdmin() IssueOption { return func(c *issueConfig) { c.admin = true } }

// AsCA marks the issued certificate as a CA certificate, which an MSP must
// refuse as an identity.
func AsCA() IssueOption { return func(c *issueConfig) { c.isCA = true } }

// Identity is an identity issued by a CA, with its key.
type Identity struct {
	msp.SigningIdentity
	// Cert is the identity's certificate and CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	// Key is the private key and KeyPEM its PKCS#8 PEM encoding.
	Key    crypto.Signer
	KeyPEM []byte
	// Issuer is the CA that issued the identity.
	Issuer *CA
}

// Issue returns a new identity named name (the certificate's common name),
// valid from an hour ago for a day unless Expired or WithValidity.
func (c *CA) Issue(name string, opts ...IssueOption) *Identity {
	now := c.tree.now()
	cfg := issueConfig{notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour)}
	for _, o := range opts {
		o(&cfg)
	}
	var key crypto.Signer
	var err error
	switch cfg.keyType {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	check(c.t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{c.MSPID}, OrganizationalUnit: cfg.ous},
		NotBefore:             cfg.notBefore,
		NotAfter:              cfg.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  cfg.isCA,
	}
	if cfg.isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, key.Public(), c.Key)
	check(c.t, err)
	cert, err := x509.ParseCertificate(der)
	check(c.t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	check(c.t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	si, err := msp.NewSigningIdentity(c.MSPID, certPEM, key)
	check(c.t, err)
	if cfg.admin {
		c.tree.mu.Lock()
		c.tree.admins = append(c.tree.admins, certPEM)
		c.tree.mu.Unlock()
	}
	return &Identity{
		SigningIdentity: si,
		Cert:            cert,
		CertPEM:         certPEM,
		Key:             key,
		KeyPEM:          pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		Issuer:          c,
	}
}

// Serialized returns the identity's marshalled msp.SerializedIdentity.
func (id *Identity) Serialized() []byte {
	b, err := id.Serialize()
	check(id.Issuer.t, err)
	return b
}

// SignedData signs data and returns it as a policy input.
func (id *Identity) SignedData(data []byte) msp.SignedData {
	sig, err := id.Sign(data)
	check(id.Issuer.t, err)
	return msp.SignedData{Data: data, Identity: id.Serialized(), Signature: sig}
}

// Revoke revokes cert, which c must have issued; it appears in c's CRL from
// now on.
func (c *CA) Revoke(cert *x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.revoked = append(c.revoked, x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: c.tree.now().Add(-time.Minute)})
}

// CRL returns c's certificate revocation list, PEM encoded and signed by c,
// or nil when c revoked nothing.
func (c *CA) CRL() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.revoked) == 0 {
		return nil
	}
	c.crlNum++
	now := c.tree.now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(c.crlNum),
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(24 * time.Hour),
		RevokedCertificateEntries: append([]x509.RevocationListEntry(nil), c.revoked...),
	}, c.Cert, c.Key)
	check(c.t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func (c *CA) cas() []*CA {
	c.tree.mu.Lock()
	defer c.tree.mu.Unlock()
	return append([]*CA{c.tree.root}, c.tree.intermediates...)
}

// MSPConfig returns the MSP configuration of c's tree: the root, every
// intermediate made so far, the ListedAdmin certificates, the CRL of every
// CA that revoked something and, WithNodeOUs, the NodeOUs.
func (c *CA) MSPConfig() *ccpb.MSPConfig {
	root := c.tree.root
	cfg := &ccpb.MSPConfig{Name: c.MSPID, RootCerts: [][]byte{root.CertPEM}, TlsRootCerts: [][]byte{root.CertPEM}}
	for _, ca := range c.cas() {
		if ca != root {
			cfg.IntermediateCerts = append(cfg.IntermediateCerts, ca.CertPEM)
		}
		if crl := ca.CRL(); crl != nil {
			cfg.RevocationList = append(cfg.RevocationList, crl)
		}
	}
	c.tree.mu.Lock()
	cfg.Admins = append([][]byte(nil), c.tree.admins...)
	c.tree.mu.Unlock()
	if c.tree.nodeOUs {
		ou := func(name string) *ccpb.FabricOUIdentifier {
			return &ccpb.FabricOUIdentifier{Certificate: root.CertPEM, OrganizationalUnitIdentifier: name}
		}
		cfg.FabricNodeOus = &ccpb.FabricNodeOUs{
			Enable:              true,
			ClientOuIdentifier:  ou(OUClient),
			PeerOuIdentifier:    ou(OUPeer),
			AdminOuIdentifier:   ou(OUAdmin),
			OrdererOuIdentifier: ou(OUOrderer),
		}
	}
	return cfg
}

// MSP builds the msp.MSP of c's tree (see MSPConfig).
func (c *CA) MSP(opts ...msp.Option) *msp.MSP {
	m, err := msp.New(c.MSPConfig(), opts...)
	check(c.t, err)
	return m
}

// Manager builds an msp.Manager of the MSPs of cas.
func Manager(t testing.TB, cas ...*CA) *msp.Manager {
	msps := make([]*msp.MSP, len(cas))
	for i, ca := range cas {
		msps[i] = ca.MSP()
	}
	m, err := msp.NewManager(msps...)
	check(t, err)
	return m
}

// RolePrincipal returns the ROLE principal of role in c's MSP.
func (c *CA) RolePrincipal(role mspb.MSPRole_MSPRoleType) *mspb.MSPPrincipal {
	return msp.RolePrincipal(c.MSPID, role)
}

// fingerprint is a short name for files derived from a certificate.
func fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return fmt.Sprintf("%x", h[:6])
}
