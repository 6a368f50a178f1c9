package msptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// NodeOU names of CAs made WithNodeOUs, as in Fabric's samples and
// cryptogen.
const (
	OUClient  = "client"
	OUPeer    = "peer"
	OUAdmin   = "admin"
	OUOrderer = "orderer"
)

// CAValidity is how long CA certificates are valid, from an hour before
// they are made.
const CAValidity = 10 * 365 * 24 * time.Hour

// CA is a certificate authority of one organisation (one MSP): the root CA
// made by NewCA, or an intermediate CA made by NewIntermediate. The CAs of
// an organisation share its MSP configuration (MSPConfig) and its TLS CA
// (TLSCA). A CA is safe for concurrent use.
type CA struct {
	// MSPID is the ID of the MSP the CA issues identities for.
	MSPID string
	// Cert is the CA's certificate and CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	// Key is the CA's private key and KeyPEM its PKCS #8 PEM encoding.
	Key    crypto.Signer
	KeyPEM []byte

	org *org

	mu      sync.Mutex
	revoked []x509.RevocationListEntry
	crl     []byte // PEM, nil until Revoke
}

// org is what the CAs of one organisation share.
type org struct {
	curve   elliptic.Curve
	nodeOUs bool
	now     func() time.Time
	root    *CA
	tls     *CA

	mu            sync.Mutex
	intermediates []*CA
	admins        []*Identity // issued ListedAdmin
}

// CAOption configures NewCA.
type CAOption func(*caConfig)

type caConfig struct {
	name    string
	nodeOUs bool
	curve   elliptic.Curve
	now     func() time.Time
}

// WithNodeOUs enables NodeOUs in the organisation's MSP configuration, with
// the OUs OUClient, OUPeer, OUAdmin and OUOrderer certified by the root CA:
// an identity then needs exactly one of them (WithOU), and one with OUAdmin
// is an administrator.
func WithNodeOUs() CAOption { return func(c *caConfig) { c.nodeOUs = true } }

// WithCAName sets the common name of the root CA (default "ca." + the MSP
// ID); the TLS CA is named "tls" + name, as Fabric's cryptogen names
// ca.example.com and tlsca.example.com.
func WithCAName(name string) CAOption { return func(c *caConfig) { c.name = name } }

// WithCurve makes the CAs' keys use curve (elliptic.P256 or elliptic.P384)
// instead of P-256.
func WithCurve(curve elliptic.Curve) CAOption { return func(c *caConfig) { c.curve = curve } }

// WithClock makes the CAs date certificates and CRLs from now() instead of
// time.Now().
func WithClock(now func() time.Time) CAOption { return func(c *caConfig) { c.now = now } }

// NewCA returns the root CA of a new organisation whose MSP ID is mspID,
// and creates the organisation's TLS CA. Both are valid from an hour ago
// for CAValidity.
func NewCA(mspID string, opts ...CAOption) (*CA, error) {
	cfg := caConfig{name: "ca." + mspID, curve: elliptic.P256(), now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case mspID == "":
		return nil, errors.New("msptest: NewCA: empty MSP ID")
	case cfg.name == "":
		return nil, errors.New("msptest: WithCAName(\"\")")
	case cfg.curve != elliptic.P256() && cfg.curve != elliptic.P384():
		return nil, errors.New("msptest: WithCurve: the MSP supports P-256 and P-384 only")
	case cfg.now == nil:
		return nil, errors.New("msptest: WithClock(nil)")
	}
	o := &org{curve: cfg.curve, nodeOUs: cfg.nodeOUs, now: cfg.now}
	var err error
	if o.root, err = o.newCA(cfg.name, mspID, nil); err != nil {
		return nil, err
	}
	if o.tls, err = o.newCA("tls"+cfg.name, mspID, nil); err != nil {
		return nil, err
	}
	return o.root, nil
}

// newCA makes a CA certificate for cn signed by parent, or self-signed when
// parent is nil.
func (o *org) newCA(cn, mspID string, parent *CA) (*CA, error) {
	key, err := ecdsa.GenerateKey(o.curve, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("msptest: CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := o.now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{mspID}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	c, err := newCert(tmpl, issuer, key, signer)
	if err != nil {
		return nil, err
	}
	return &CA{MSPID: mspID, Cert: c.cert, CertPEM: c.certPEM, Key: key, KeyPEM: c.keyPEM, org: o}, nil
}

type certAndKey struct {
	cert            *x509.Certificate
	certPEM, keyPEM []byte
}

// newCert signs tmpl for key with signer, as issuer.
func newCert(tmpl, issuer *x509.Certificate, key, signer crypto.Signer) (certAndKey, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return certAndKey{}, fmt.Errorf("msptest: certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return certAndKey{}, fmt.Errorf("msptest: certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return certAndKey{}, fmt.Errorf("msptest: key of %q: %w", tmpl.Subject.CommonName, err)
	}
	return certAndKey{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}, nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("msptest: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// Root returns the organisation's root CA.
func (c *CA) Root() *CA { return c.org.root }

// TLSCA returns the organisation's TLS CA, which IssueTLS signs with. Its
// certificate is the MSP configuration's TLS root certificate; it issues
// no MSP identities.
func (c *CA) TLSCA() *CA { return c.org.tls }

// NewIntermediate returns an intermediate CA signed by c, of the same
// organisation. Its certificate is listed in the MSP configuration's
// intermediate certificates from now on.
func (c *CA) NewIntermediate() (*CA, error) {
	c.org.mu.Lock()
	n := len(c.org.intermediates) + 1
	c.org.mu.Unlock()
	ica, err := c.org.newCA(fmt.Sprintf("ica%d.%s", n, c.MSPID), c.MSPID, c)
	if err != nil {
		return nil, err
	}
	c.org.mu.Lock()
	c.org.intermediates = append(c.org.intermediates, ica)
	c.org.mu.Unlock()
	return ica, nil
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

// WithOU adds organisational units to the certificate's subject: with
// NodeOUs, one of OUClient, OUPeer, OUAdmin and OUOrderer gives the
// identity its role.
func WithOU(ous ...string) IssueOption {
	return func(c *issueConfig) { c.ous = append(c.ous, ous...) }
}

// ListedAdmin lists the certificate in the MSP configuration's admins, the
// way of naming administrators without NodeOUs (Fabric 1.4's admincerts).
func ListedAdmin() IssueOption { return func(c *issueConfig) { c.admin = true } }

// WithValidity sets the certificate's validity period (default: from an
// hour ago for a day).
func WithValidity(notBefore, notAfter time.Time) IssueOption {
	return func(c *issueConfig) { c.notBefore, c.notAfter = notBefore, notAfter }
}

// Expired makes the certificate's validity end a day before now.
func Expired() IssueOption {
	return func(c *issueConfig) {
		c.notBefore = c.notBefore.Add(-72 * time.Hour)
		c.notAfter = c.notBefore.Add(48 * time.Hour)
	}
}

// Ed25519Key gives the identity an Ed25519 key instead of ECDSA P-256.
func Ed25519Key() IssueOption { return func(c *issueConfig) { c.keyType = "ed25519" } }

// P384Key gives the identity an ECDSA P-384 key instead of P-256.
func P384Key() IssueOption { return func(c *issueConfig) { c.keyType = "p384" } }

// AsCA marks the issued certificate as a CA certificate, which an MSP
// refuses as an identity: for testing that refusal.
func AsCA() IssueOption { return func(c *issueConfig) { c.isCA = true } }

// Identity is an identity issued by a CA, with its private key. It is an
// msp.SigningIdentity and a protoutil.Signer.
type Identity struct {
	msp.SigningIdentity
	// Cert is the identity's certificate and CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	// Key is the private key and KeyPEM its PKCS #8 PEM encoding.
	Key    crypto.Signer
	KeyPEM []byte
	// Issuer is the CA that issued the identity.
	Issuer *CA
}

// Issue returns a new identity of c's MSP named name (the certificate's
// common name), valid from an hour ago for a day unless WithValidity or
// Expired.
func (c *CA) Issue(name string, opts ...IssueOption) (*Identity, error) {
	now := c.org.now()
	cfg := issueConfig{notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour)}
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.notAfter.After(cfg.notBefore) {
		return nil, fmt.Errorf("msptest: Issue(%q): validity ends before it starts", name)
	}
	key, err := newKey(cfg.keyType)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
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
	ck, err := newCert(tmpl, c.Cert, key, c.Key)
	if err != nil {
		return nil, err
	}
	si, err := msp.NewSigningIdentity(c.MSPID, ck.certPEM, key)
	if err != nil {
		return nil, fmt.Errorf("msptest: identity %q: %w", name, err)
	}
	id := &Identity{SigningIdentity: si, Cert: ck.cert, CertPEM: ck.certPEM, Key: key, KeyPEM: ck.keyPEM, Issuer: c}
	if cfg.admin {
		c.org.mu.Lock()
		c.org.admins = append(c.org.admins, id)
		c.org.mu.Unlock()
	}
	return id, nil
}

func newKey(typ string) (crypto.Signer, error) {
	var key crypto.Signer
	var err error
	switch typ {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("msptest: key: %w", err)
	}
	return key, nil
}

// SignedData signs data and returns it with the identity as a policy
// input (msp.EvaluateSignaturePolicy).
func (id *Identity) SignedData(data []byte) (msp.SignedData, error) {
	creator, err := id.Serialize()
	if err != nil {
		return msp.SignedData{}, err
	}
	sig, err := id.Sign(data)
	if err != nil {
		return msp.SignedData{}, err
	}
	return msp.SignedData{Data: data, Identity: creator, Signature: sig}, nil
}

// Envelope returns an envelope of type typ for channelID carrying data,
// signed by the identity, with a fresh nonce and transaction ID
// (protoutil.NewSignedEnvelope).
func (id *Identity) Envelope(typ cb.HeaderType, channelID string, data []byte) (*cb.Envelope, error) {
	return protoutil.NewSignedEnvelope(typ, channelID, data, id)
}

// Revoke revokes cert, which c must have issued: c's CRL lists it from now
// on, and so does the MSP configuration.
func (c *CA) Revoke(cert *x509.Certificate) error {
	if cert == nil || cert.CheckSignatureFrom(c.Cert) != nil {
		return errors.New("msptest: Revoke: the certificate was not issued by this CA")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.org.now()
	revoked := append(c.revoked[:len(c.revoked):len(c.revoked)],
		x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: now.Add(-time.Minute)})
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(int64(len(revoked))),
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(24 * time.Hour),
		RevokedCertificateEntries: revoked,
	}, c.Cert, c.Key)
	if err != nil {
		return fmt.Errorf("msptest: CRL of %q: %w", c.Cert.Subject.CommonName, err)
	}
	c.revoked = revoked
	c.crl = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	return nil
}

// CRL returns c's certificate revocation list, PEM encoded and signed by c,
// or nil when c revoked nothing.
func (c *CA) CRL() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crl
}

// cas returns the root and the intermediates of c's organisation.
func (c *CA) cas() []*CA {
	c.org.mu.Lock()
	defer c.org.mu.Unlock()
	return append([]*CA{c.org.root}, c.org.intermediates...)
}

func (c *CA) listedAdmins() []*Identity {
	c.org.mu.Lock()
	defer c.org.mu.Unlock()
	return slices.Clone(c.org.admins)
}

// MSPConfig returns the organisation's MSP configuration: its root CA, its
// intermediate CAs made so far, its TLS CA, the certificates issued
// ListedAdmin, the CRL of every CA that revoked something and, WithNodeOUs,
// the NodeOUs. It is a new value each time, reflecting the CAs as they are.
func (c *CA) MSPConfig() *ccpb.MSPConfig {
	root := c.org.root
	cfg := &ccpb.MSPConfig{Name: c.MSPID, RootCerts: [][]byte{root.CertPEM}, TlsRootCerts: [][]byte{c.org.tls.CertPEM}}
	for _, ca := range c.cas() {
		if ca != root {
			cfg.IntermediateCerts = append(cfg.IntermediateCerts, ca.CertPEM)
		}
		if crl := ca.CRL(); crl != nil {
			cfg.RevocationList = append(cfg.RevocationList, crl)
		}
	}
	for _, a := range c.listedAdmins() {
		cfg.Admins = append(cfg.Admins, a.CertPEM)
	}
	if c.org.nodeOUs {
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

// MSP builds the organisation's msp.MSP from MSPConfig.
func (c *CA) MSP(opts ...msp.Option) (*msp.MSP, error) { return msp.New(c.MSPConfig(), opts...) }

// RolePrincipal returns the ROLE principal of role in c's MSP.
func (c *CA) RolePrincipal(role mspb.MSPRole_MSPRoleType) *mspb.MSPPrincipal {
	return msp.RolePrincipal(c.MSPID, role)
}

// Manager builds an msp.Manager of the MSPs of the organisations of cas.
func Manager(cas ...*CA) (*msp.Manager, error) {
	msps := make([]*msp.MSP, len(cas))
	for i, ca := range cas {
		m, err := ca.MSP()
		if err != nil {
			return nil, err
		}
		msps[i] = m
	}
	return msp.NewManager(msps...)
}
