package msptest

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"time"
)

// TLSCert is a TLS certificate issued by an organisation's TLS CA, with its
// private key.
type TLSCert struct {
	// Cert is the certificate and CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	// Key is the private key and KeyPEM its PKCS #8 PEM encoding.
	Key    crypto.Signer
	KeyPEM []byte
	// CACertPEM is the certificate of the TLS CA that issued it, for the
	// other side to trust.
	CACertPEM []byte
}

// IssueTLS returns a TLS certificate for name, signed by the organisation's
// TLS CA (TLSCA), valid from an hour ago for a day unless WithValidity or
// Expired, for both server and client authentication. hosts are its
// subject alternative names: IP addresses or DNS names (a server
// certificate needs the address clients dial, such as "127.0.0.1" or
// "localhost"; a client certificate needs none). Of the IssueOptions only
// WithValidity, Expired and P384Key apply.
func (c *CA) IssueTLS(name string, hosts []string, opts ...IssueOption) (*TLSCert, error) {
	now := c.org.now()
	cfg := issueConfig{notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour)}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.keyType == "ed25519" {
		cfg.keyType = "" // crypto/tls verifies Ed25519, but Fabric's TLS stacks do not all
	}
	key, err := newKey(cfg.keyType)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tca := c.org.tls
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{c.MSPID}},
		NotBefore:             cfg.notBefore,
		NotAfter:              cfg.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	ck, err := newCert(tmpl, tca.Cert, key, tca.Key)
	if err != nil {
		return nil, err
	}
	return &TLSCert{Cert: ck.cert, CertPEM: ck.certPEM, Key: key, KeyPEM: ck.keyPEM, CACertPEM: tca.CertPEM}, nil
}

// Certificate returns the certificate and key for a tls.Config's
// Certificates.
func (t *TLSCert) Certificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("msptest: TLS certificate %q: %w", t.Cert.Subject.CommonName, err)
	}
	return c, nil
}

// CAPool returns a pool holding the TLS CA's certificate, for a
// tls.Config's RootCAs (clients) or ClientCAs (servers).
func (t *TLSCert) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(t.CACertPEM)
	return p
}
