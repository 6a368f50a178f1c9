package msp

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

// MSP is the membership service provider of one organisation: the root and
// intermediate CAs that issue its identities, its administrators, its
// certificate revocation lists and, optionally, its NodeOU classification.
// An MSP is immutable and safe for concurrent use.
type MSP struct {
	id            string
	cfg           *ccpb.MSPConfig
	roots         []*x509.Certificate
	intermediates []*x509.Certificate
	rootPool      *x509.CertPool
	interPool     *x509.CertPool
	admins        []*x509.Certificate
	crls          []*x509.RevocationList
	nodeOUs       *nodeOUs
	// ous are the organisational units an identity must carry one of
	// (none: no such requirement).
	ous []orgUnit
	now func() time.Time

	// ids caches deserialized identities by serialized bytes, valid caches
	// successful validations by certificate DER. Both are bounded.
	ids       *boundedCache[*identity]
	valid     *boundedCache[*validation]
	roles     *boundedCache[*mspb.MSPRole] // decoded ROLE principals by their bytes
	cacheSize int
}

type nodeOUs struct {
	client, peer, admin, orderer *ouIdentifier
}

type ouIdentifier struct {
	ou   string
	cert *x509.Certificate // nil: any certifier of the MSP
}

// orgUnit is one of the organisational units an MSP accepts, bound to the
// certifiers identifier of its CA, as in Fabric: an identity carries it when
// it has the OU and its chain above the leaf is that CA's chain.
type orgUnit struct {
	ou         string
	certifiers []byte
}

// Option configures an MSP built by New.
type Option func(*options)

type options struct {
	now       func() time.Time
	cacheSize int // entries per cache; tests lower it
}

// WithClock makes the MSP check certificate validity periods against now()
// instead of time.Now(); tests use it to make certificates expire.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New builds the MSP described by cfg. Every root and intermediate
// certificate must be a CA certificate, every intermediate and admin
// certificate must chain to a root, every CRL must be signed by one of the
// MSP's CAs, NodeOU certificates must be CAs of the MSP, and every
// organisational unit identifier must name an OU and carry the certificate
// of a CA of the MSP (as Fabric requires). Validity periods
// are not checked here but when identities are validated. Certificates and
// CRLs are PEM encoded (CRLs may also be DER). The MSP keeps a copy of cfg.
func New(cfg *ccpb.MSPConfig, opts ...Option) (*MSP, error) {
	o := options{now: time.Now, cacheSize: cacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		return nil, errors.New("msp: WithClock(nil)")
	}
	if o.cacheSize < 1 {
		o.cacheSize = 1
	}
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil MSP configuration", ErrMalformed)
	}
	if cfg.GetName() == "" {
		return nil, fmt.Errorf("%w: MSP configuration without a name", ErrMalformed)
	}
	m := &MSP{
		id:        cfg.GetName(),
		cfg:       proto.Clone(cfg).(*ccpb.MSPConfig),
		rootPool:  x509.NewCertPool(),
		interPool: x509.NewCertPool(),
		now:       o.now,
		ids:       newBoundedCache[*identity](o.cacheSize),
		valid:     newBoundedCache[*validation](o.cacheSize),
		roles:     newBoundedCache[*mspb.MSPRole](o.cacheSize),
		cacheSize: o.cacheSize,
	}
	// In this order: the later steps check certificates against the CAs.
	for _, load := range []func(*ccpb.MSPConfig) error{
		m.loadCAs, m.loadAdmins, m.loadCRLs, m.checkTLSCerts, m.loadOUs, m.loadNodeOUs,
	} {
		if err := load(cfg); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// errorf returns an error that names the MSP, then says what is wrong as
// format and args do.
func (m *MSP) errorf(format string, args ...any) error {
	return fmt.Errorf("msp %s: "+format, append([]any{m.id}, args...)...)
}

// loadCAs loads cfg's root CAs, at least one, and its intermediate CAs,
// each of which must chain to a root.
func (m *MSP) loadCAs(cfg *ccpb.MSPConfig) error {
	if len(cfg.GetRootCerts()) == 0 {
		return m.errorf("%w: no root certificate", ErrMalformed)
	}
	var err error
	if m.roots, err = m.parseCAs("root", cfg.GetRootCerts()); err != nil {
		return err
	}
	for _, c := range m.roots {
		m.rootPool.AddCert(c)
	}
	if m.intermediates, err = m.parseCAs("intermediate", cfg.GetIntermediateCerts()); err != nil {
		return err
	}
	for _, c := range m.intermediates {
		m.interPool.AddCert(c)
	}
	for _, c := range m.intermediates {
		if _, err := m.chain(c, c.NotBefore.Add(time.Second)); err != nil {
			return m.errorf("intermediate certificate %q: %w", c.Subject.CommonName, err)
		}
	}
	return nil
}

// parseCAs parses the PEM certificates of kind ("root" or "intermediate")
// CAs, each of which must be a CA certificate.
func (m *MSP) parseCAs(kind string, pems [][]byte) ([]*x509.Certificate, error) {
	var cas []*x509.Certificate
	for i, b := range pems {
		c, err := parseCertificatePEM(b)
		if err != nil {
			return nil, m.errorf("%s certificate %d: %w", kind, i, err)
		}
		if !c.IsCA {
			return nil, m.errorf("%w: %s certificate %q is not a CA", ErrMalformed, kind, c.Subject.CommonName)
		}
		cas = append(cas, c)
	}
	return cas, nil
}

// loadAdmins loads cfg's administrator certificates, each of which must
// chain to a root. It must run after loadCAs.
func (m *MSP) loadAdmins(cfg *ccpb.MSPConfig) error {
	for i, b := range cfg.GetAdmins() {
		c, err := parseCertificatePEM(b)
		if err != nil {
			return m.errorf("admin certificate %d: %w", i, err)
		}
		if _, err := m.chain(c, c.NotBefore.Add(time.Second)); err != nil {
			return m.errorf("admin certificate %q: %w", c.Subject.CommonName, err)
		}
		m.admins = append(m.admins, c)
	}
	return nil
}

// loadCRLs loads cfg's revocation lists, PEM or DER, each of which must be
// signed by a CA of the MSP. It must run after loadCAs.
func (m *MSP) loadCRLs(cfg *ccpb.MSPConfig) error {
	for i, b := range cfg.GetRevocationList() {
		der := b
		if block, _ := pem.Decode(b); block != nil {
			der = block.Bytes
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return m.errorf("%w: CRL %d: %w", ErrMalformed, i, err)
		}
		if m.crlIssuer(crl) == nil {
			return m.errorf("%w: CRL %d is not signed by a CA of the MSP", ErrMalformed, i)
		}
		m.crls = append(m.crls, crl)
	}
	return nil
}

// checkTLSCerts checks that cfg's TLS root and intermediate certificates,
// which the MSP does not use, parse.
func (m *MSP) checkTLSCerts(cfg *ccpb.MSPConfig) error {
	for i, b := range append(slices.Clone(cfg.GetTlsRootCerts()), cfg.GetTlsIntermediateCerts()...) {
		if _, err := parseCertificatePEM(b); err != nil {
			return m.errorf("TLS certificate %d: %w", i, err)
		}
	}
	return nil
}

// loadOUs loads cfg's organisational unit identifiers, each of which must
// name an OU and carry the certificate of a CA of the MSP, bound to that
// CA's chain. It must run after loadCAs.
func (m *MSP) loadOUs(cfg *ccpb.MSPConfig) error {
	for i, x := range cfg.GetOrganizationalUnitIdentifiers() {
		if x.GetOrganizationalUnitIdentifier() == "" {
			return m.errorf("%w: organisational unit identifier %d names no OU", ErrMalformed, i)
		}
		if len(x.GetCertificate()) == 0 {
			return m.errorf("%w: organisational unit %q has no certificate", ErrMalformed, x.GetOrganizationalUnitIdentifier())
		}
		c, err := parseCertificatePEM(x.GetCertificate())
		if err != nil {
			return m.errorf("organisational unit %q certificate: %w", x.GetOrganizationalUnitIdentifier(), err)
		}
		if !m.isCA(c) {
			return m.errorf("%w: organisational unit %q certificate is not a CA of the MSP", ErrMalformed, x.GetOrganizationalUnitIdentifier())
		}
		chain, err := m.chain(c, c.NotBefore.Add(time.Second))
		if err != nil {
			return m.errorf("organisational unit %q certificate: %w", x.GetOrganizationalUnitIdentifier(), err)
		}
		// The CA's chain, itself first: what an identity it issued has
		// above its leaf.
		m.ous = append(m.ous, orgUnit{ou: x.GetOrganizationalUnitIdentifier(), certifiers: chainID(chain)})
	}
	return nil
}

// loadNodeOUs loads cfg's NodeOU classification, if enabled: each role's
// OU, if named, with its certificate, if any, which must be a CA of the
// MSP. It must run after loadCAs.
func (m *MSP) loadNodeOUs(cfg *ccpb.MSPConfig) error {
	n := cfg.GetFabricNodeOus()
	if !n.GetEnable() {
		return nil
	}
	m.nodeOUs = new(nodeOUs)
	for _, x := range []struct {
		dst **ouIdentifier
		src *ccpb.FabricOUIdentifier
	}{
		{&m.nodeOUs.client, n.GetClientOuIdentifier()},
		{&m.nodeOUs.peer, n.GetPeerOuIdentifier()},
		{&m.nodeOUs.admin, n.GetAdminOuIdentifier()},
		{&m.nodeOUs.orderer, n.GetOrdererOuIdentifier()},
	} {
		if x.src.GetOrganizationalUnitIdentifier() == "" {
			continue
		}
		oi := &ouIdentifier{ou: x.src.GetOrganizationalUnitIdentifier()}
		if len(x.src.GetCertificate()) > 0 {
			c, err := parseCertificatePEM(x.src.GetCertificate())
			if err != nil {
				return m.errorf("NodeOU %q certificate: %w", oi.ou, err)
			}
			if !m.isCA(c) {
				return m.errorf("%w: NodeOU %q certificate is not a CA of the MSP", ErrMalformed, oi.ou)
			}
			oi.cert = c
		}
		*x.dst = oi
	}
	return nil
}

// ID returns the MSP ID.
func (m *MSP) ID() string { return m.id }

// Config returns a copy of the configuration the MSP was built from.
func (m *MSP) Config() *ccpb.MSPConfig { return proto.Clone(m.cfg).(*ccpb.MSPConfig) }

// NodeOUsEnabled reports whether the MSP classifies identities by NodeOU.
func (m *MSP) NodeOUsEnabled() bool { return m.nodeOUs != nil }

// Deserialize decodes a marshalled msp.SerializedIdentity of this MSP. It
// does not validate the identity. Identities that decode are cached by
// their serialized bytes, so deserializing the same bytes again neither
// decodes nor parses the certificate.
func (m *MSP) Deserialize(serialized []byte) (Identity, error) {
	if id, ok := m.ids.get(serialized); ok {
		return id, nil
	}
	sid, cert, err := decodeSerialized(serialized)
	if err != nil {
		return nil, err
	}
	if sid.GetMspid() != m.id {
		return nil, fmt.Errorf("%w: identity of %q given to MSP %s", ErrUnknownMSP, sid.GetMspid(), m.id)
	}
	return m.remember(serialized, cert), nil
}

// remember returns the cached identity of serialized, which decodes to
// cert of this MSP, caching a new one if there is none.
func (m *MSP) remember(serialized []byte, cert *x509.Certificate) *identity {
	if id, ok := m.ids.get(serialized); ok {
		return id
	}
	id := newIdentity(m.id, cert)
	m.ids.put(serialized, id)
	return id
}

func (m *MSP) isCA(c *x509.Certificate) bool {
	for _, ca := range m.roots {
		if ca.Equal(c) {
			return true
		}
	}
	for _, ca := range m.intermediates {
		if ca.Equal(c) {
			return true
		}
	}
	return false
}

// crlIssuer returns the CA of the MSP that signed crl, or nil.
func (m *MSP) crlIssuer(crl *x509.RevocationList) *x509.Certificate {
	for _, ca := range append(slices.Clone(m.roots), m.intermediates...) {
		if crl.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// chain verifies c against the MSP's roots and intermediates at time at and
// returns its certification chain, leaf first and root last.
func (m *MSP) chain(c *x509.Certificate, at time.Time) ([]*x509.Certificate, error) {
	chains, err := c.Verify(x509.VerifyOptions{
		Roots:         m.rootPool,
		Intermediates: m.interPool,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, fmt.Errorf("%w: %w", ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return chains[0], nil
}

// Validate checks that id is an identity this MSP trusts now: it carries this
// MSP's ID (else ErrUnknownMSP), is not a CA certificate, is within its
// validity period (else ErrExpired), chains to a root of the MSP through its
// intermediates (else ErrUntrusted), is not revoked by a CRL signed by the
// CA that issued it or one of its chain (else ErrRevoked), carries one of
// the MSP's organisational units, if it lists any, issued directly by that
// unit's CA (else ErrUntrusted) and, when NodeOUs are enabled, carries
// exactly one of the configured role OUs (else ErrUntrusted).
//
// Successful validations are cached by certificate: validating the same
// certificate again only checks that every certificate of its chain is
// still within its validity period at the MSP's current time. Everything
// else a validation checks is fixed for the MSP's lifetime (a new
// configuration builds new MSPs). Failures are not cached.
func (m *MSP) Validate(id Identity) error {
	_, err := m.validate(id)
	return err
}

func (m *MSP) validate(id Identity) ([]*x509.Certificate, error) {
	if id == nil || id.Certificate() == nil {
		return nil, fmt.Errorf("%w: nil identity", ErrMalformed)
	}
	if id.MSPID() != m.id {
		return nil, fmt.Errorf("%w: identity of %q given to MSP %s", ErrUnknownMSP, id.MSPID(), m.id)
	}
	c := id.Certificate()
	name := c.Subject.CommonName
	if c.IsCA {
		return nil, fmt.Errorf("msp %s: identity %q: %w: a CA certificate cannot be an identity", m.id, name, ErrUntrusted)
	}
	now := m.now()
	if v, ok := m.valid.get(c.Raw); ok && v.validAt(now) {
		return v.chain, nil
	}
	// A miss, or a cached chain no longer valid now: validate in full,
	// which also gives the precise error.
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, fmt.Errorf("msp %s: identity %q valid from %s to %s: %w",
			m.id, name, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), ErrExpired)
	}
	chain, err := m.chain(c, now)
	if err != nil {
		return nil, fmt.Errorf("msp %s: identity %q: %w", m.id, name, err)
	}
	for i := 0; i+1 < len(chain); i++ {
		if m.revoked(chain[i], chain[i+1]) {
			return nil, fmt.Errorf("msp %s: identity %q: certificate %q (serial %s): %w",
				m.id, name, chain[i].Subject.CommonName, chain[i].SerialNumber, ErrRevoked)
		}
	}
	if len(m.ous) > 0 && !m.hasOrgUnit(c, chain) {
		return nil, fmt.Errorf("msp %s: identity %q: none of its organisational units %q is one of the MSP's: %w",
			m.id, name, c.Subject.OrganizationalUnit, ErrUntrusted)
	}
	if m.nodeOUs != nil {
		var roles []string
		for _, x := range []*ouIdentifier{m.nodeOUs.client, m.nodeOUs.peer, m.nodeOUs.admin, m.nodeOUs.orderer} {
			if x != nil && hasOU(c, chain, x) {
				roles = append(roles, x.ou)
			}
		}
		if len(roles) != 1 {
			return nil, fmt.Errorf("msp %s: identity %q has role OUs %q, want exactly one: %w", m.id, name, roles, ErrUntrusted)
		}
	}
	m.valid.put(c.Raw, newValidation(chain))
	return chain, nil
}

// revoked reports whether c appears in a CRL signed by issuer.
func (m *MSP) revoked(c, issuer *x509.Certificate) bool {
	for _, crl := range m.crls {
		if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber != nil && e.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return true
			}
		}
	}
	return false
}

func hasOU(c *x509.Certificate, chain []*x509.Certificate, x *ouIdentifier) bool {
	if !slices.Contains(c.Subject.OrganizationalUnit, x.ou) {
		return false
	}
	if x.cert == nil {
		return true
	}
	for _, ca := range chain[1:] {
		if ca.Equal(x.cert) {
			return true
		}
	}
	return false
}

// certifiersID is Fabric's certifiers identifier: the SHA-256 of the raw
// certificates of the chain above the leaf, issuer first, root last.
func certifiersID(chain []*x509.Certificate) []byte {
	return chainID(chain[1:])
}

// chainID is the SHA-256 of the raw certificates of chain, in order.
func chainID(chain []*x509.Certificate) []byte {
	h := sha256.New()
	for _, c := range chain {
		h.Write(c.Raw)
	}
	return h.Sum(nil)
}

// hasOrgUnit reports whether c, validated with chain, carries one of the
// MSP's organisational units, certified by that unit's CA.
func (m *MSP) hasOrgUnit(c *x509.Certificate, chain []*x509.Certificate) bool {
	id := certifiersID(chain)
	for _, u := range m.ous {
		if slices.Contains(c.Subject.OrganizationalUnit, u.ou) && bytes.Equal(u.certifiers, id) {
			return true
		}
	}
	return false
}

// CertifiersIdentifier returns the certifiers identifier of a valid id: the
// SHA-256 over the certificates of its chain above the leaf, issuer first
// and root last, as Fabric computes it. It is the value an
// ORGANIZATION_UNIT principal may carry in certifiers_identifier.
func (m *MSP) CertifiersIdentifier(id Identity) ([]byte, error) {
	chain, err := m.validate(id)
	if err != nil {
		return nil, err
	}
	return certifiersID(chain), nil
}

// SatisfiesPrincipal returns nil when id is valid for this MSP (see
// Validate) and satisfies p, and an error wrapping ErrPrincipal (or the
// validation error) otherwise. Supported principals:
//
//   - ROLE MEMBER: any valid identity of the MSP.
//   - ROLE ADMIN: an identity whose certificate is listed in the MSP's
//     admins, or which carries the admin NodeOU when NodeOUs are enabled.
//   - ROLE CLIENT, PEER, ORDERER: NodeOUs must be enabled and the identity
//     must carry the corresponding OU.
//   - IDENTITY: the principal is a SerializedIdentity with the same MSP ID
//     and the same certificate.
//   - ORGANIZATION_UNIT: the identity carries the OU; when the principal
//     has a certifiers_identifier it must equal the identity's (see
//     CertifiersIdentifier), when it has none any certifier of the MSP is
//     accepted.
func (m *MSP) SatisfiesPrincipal(id Identity, p *mspb.MSPPrincipal) error {
	if p == nil {
		return fmt.Errorf("%w: nil principal", ErrMalformed)
	}
	chain, err := m.validate(id)
	if err != nil {
		return err
	}
	return m.satisfies(id, chain, p, true)
}

// errUnsatisfied is what satisfies returns when not asked to explain.
var errUnsatisfied = fmt.Errorf("%w: not satisfied", ErrPrincipal)

// unsatisfied says whether to explain why a principal is not satisfied.
type unsatisfied bool

// errorf returns an error wrapping ErrPrincipal that says why, as
// format and the values args returns, when explaining; else
// errUnsatisfied, without calling args: the values would escape to the
// heap just to be dropped.
func (explain unsatisfied) errorf(format string, args func() []any) error {
	if !explain {
		return errUnsatisfied
	}
	return fmt.Errorf("%w: "+format, append([]any{ErrPrincipal}, args()...)...)
}

// satisfies checks p for an identity already validated with chain. A
// principal the identity does not satisfy returns an error wrapping
// ErrPrincipal that says why when explain is set, else errUnsatisfied: a
// policy evaluation tries principals that fail on its way to one that
// succeeds, and only needs to know which.
func (m *MSP) satisfies(id Identity, chain []*x509.Certificate, p *mspb.MSPPrincipal, explain bool) error {
	c := id.Certificate()
	name := c.Subject.CommonName
	why := unsatisfied(explain)
	switch p.GetPrincipalClassification() {
	case mspb.MSPPrincipal_ROLE:
		role, err := m.role(p.GetPrincipal())
		if err != nil {
			return err
		}
		if role.GetMspIdentifier() != m.id {
			return why.errorf("identity %q of %s is not of MSP %q", func() []any { return []any{name, m.id, role.GetMspIdentifier()} })
		}
		return m.hasRole(c, chain, role.GetRole(), why)
	case mspb.MSPPrincipal_IDENTITY:
		sid, pc, err := decodeSerialized(p.GetPrincipal())
		if err != nil {
			return fmt.Errorf("IDENTITY principal: %w", err)
		}
		if sid.GetMspid() != m.id || !pc.Equal(c) {
			return why.errorf("identity %q of %s is not the principal's identity", func() []any { return []any{name, m.id} })
		}
		return nil
	case mspb.MSPPrincipal_ORGANIZATION_UNIT:
		ou := new(mspb.OrganizationUnit)
		if err := proto.Unmarshal(p.GetPrincipal(), ou); err != nil {
			return fmt.Errorf("%w: decoding OrganizationUnit: %w", ErrMalformed, err)
		}
		if ou.GetMspIdentifier() != m.id {
			return why.errorf("identity %q of %s is not of MSP %q", func() []any { return []any{name, m.id, ou.GetMspIdentifier()} })
		}
		if !slices.Contains(c.Subject.OrganizationalUnit, ou.GetOrganizationalUnitIdentifier()) {
			return why.errorf("identity %q of %s lacks OU %q", func() []any { return []any{name, m.id, ou.GetOrganizationalUnitIdentifier()} })
		}
		if len(ou.GetCertifiersIdentifier()) > 0 && !bytes.Equal(ou.GetCertifiersIdentifier(), certifiersID(chain)) {
			return why.errorf("identity %q of %s has OU %q from another certifier", func() []any { return []any{name, m.id, ou.GetOrganizationalUnitIdentifier()} })
		}
		return nil
	default:
		return fmt.Errorf("%w: unsupported principal classification %s", ErrPrincipal, p.GetPrincipalClassification())
	}
}

// role returns the MSPRole that principal bytes b encode, decoded once
// per MSP: policies name the same few roles again and again.
func (m *MSP) role(b []byte) (*mspb.MSPRole, error) {
	if r, ok := m.roles.get(b); ok {
		return r, nil
	}
	r := new(mspb.MSPRole)
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%w: decoding MSPRole: %w", ErrMalformed, err)
	}
	m.roles.put(b, r)
	return r, nil
}

// hasRole returns nil when certificate c, validated with chain, has role
// in this MSP, and why not otherwise.
func (m *MSP) hasRole(c *x509.Certificate, chain []*x509.Certificate, role mspb.MSPRole_MSPRoleType, why unsatisfied) error {
	name := c.Subject.CommonName
	var want *ouIdentifier
	switch role {
	case mspb.MSPRole_MEMBER:
		return nil
	case mspb.MSPRole_ADMIN:
		for _, a := range m.admins {
			if a.Equal(c) {
				return nil
			}
		}
		if m.nodeOUs != nil && m.nodeOUs.admin != nil && hasOU(c, chain, m.nodeOUs.admin) {
			return nil
		}
		return why.errorf("identity %q is not an admin of %s", func() []any { return []any{name, m.id} })
	case mspb.MSPRole_CLIENT:
		want = m.nodeOUs.get(func(n *nodeOUs) *ouIdentifier { return n.client })
	case mspb.MSPRole_PEER:
		want = m.nodeOUs.get(func(n *nodeOUs) *ouIdentifier { return n.peer })
	case mspb.MSPRole_ORDERER:
		want = m.nodeOUs.get(func(n *nodeOUs) *ouIdentifier { return n.orderer })
	default:
		return fmt.Errorf("%w: unknown role %d", ErrPrincipal, role)
	}
	if m.nodeOUs == nil {
		return fmt.Errorf("%w: role %s needs NodeOUs, which MSP %s does not enable", ErrPrincipal, role, m.id)
	}
	if want == nil {
		return fmt.Errorf("%w: MSP %s defines no OU for role %s", ErrPrincipal, m.id, role)
	}
	if !hasOU(c, chain, want) {
		return why.errorf("identity %q of %s is not a %s", func() []any { return []any{name, m.id, role} })
	}
	return nil
}

func (n *nodeOUs) get(f func(*nodeOUs) *ouIdentifier) *ouIdentifier {
	if n == nil {
		return nil
	}
	return f(n)
}
