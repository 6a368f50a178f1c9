package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// NodeOU names, as in Fabric's cryptogen output with EnableNodeOUs.
const (
	ouClient  = "client"
	ouPeer    = "peer"
	ouAdmin   = "admin"
	ouOrderer = "orderer"
)

// cryptogenConfig is what the cryptogen subcommand generates.
type cryptogenConfig struct {
	out      string // the organisation's folder
	mspID    string
	domain   string
	orderers int
	users    int
	validity time.Duration
	hosts    []string // extra TLS host names and IPs of the orderers
}

func runCryptogen(ctx context.Context, args []string, out io.Writer) error {
	var c cryptogenConfig
	var hosts commaList
	fs := newFlagSet("cryptogen", "--out DIR --mspid MSPID [--domain example.com] [--orderers 1] [--users 1]")
	fs.StringVar(&c.out, "out", "", "`directory` of the organisation (created)")
	fs.StringVar(&c.mspID, "mspid", "", "MSP ID of the organisation")
	fs.StringVar(&c.domain, "domain", "example.com", "domain of the organisation, used in certificate names")
	fs.IntVar(&c.orderers, "orderers", 1, "number of orderer identities (orderers/ordererI)")
	fs.IntVar(&c.users, "users", 1, "number of client identities besides the admin (users/userI)")
	fs.DurationVar(&c.validity, "validity", 365*24*time.Hour, "validity of the issued certificates (CAs: ten years)")
	fs.Var(&hosts, "tls-host", "extra host name or IP for the orderers' TLS certificates (repeatable; localhost and 127.0.0.1 are always included)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c.hosts = hosts
	if err := cryptogen(c); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote MSP %s to %s:\n", c.mspID, c.out)
	fmt.Fprintf(out, "  %s\t\torganisation MSP (for genesis --org/--orderer-org)\n", filepath.Join(c.out, "msp"))
	fmt.Fprintf(out, "  %s\tadmin signing identity\n", filepath.Join(c.out, "users", "admin", "msp"))
	for i := 1; i <= c.users; i++ {
		fmt.Fprintf(out, "  %s\tclient signing identity\n", filepath.Join(c.out, "users", fmt.Sprintf("user%d", i), "msp"))
	}
	for i := 0; i < c.orderers; i++ {
		d := filepath.Join(c.out, "orderers", fmt.Sprintf("orderer%d", i))
		fmt.Fprintf(out, "  %s\torderer signing identity, TLS in %s\n", filepath.Join(d, "msp"), filepath.Join(d, "tls"))
	}
	return nil
}

// cryptogen writes, under c.out, Fabric's layout of one organisation:
//
//	ca/            the CA's certificate and key
//	tlsca/         the TLS CA's certificate and key
//	msp/           the organisation's MSP (cacerts, tlscacerts, admincerts, config.yaml)
//	users/admin/msp, users/userI/msp    signing identities (signcerts, keystore)
//	users/admin/tls, users/userI/tls    client.crt, client.key, ca.crt for gRPC mutual TLS
//	orderers/ordererI/msp               orderer signing identities
//	orderers/ordererI/tls               server.crt, server.key, ca.crt for gRPC TLS
//
// NodeOUs are enabled (client, peer, admin, orderer); the admin is also
// listed in admincerts, as Fabric 1.4's cryptogen does.
func cryptogen(c cryptogenConfig) error {
	if c.out == "" || c.mspID == "" {
		return errors.New("cryptogen: --out and --mspid are required")
	}
	if c.orderers < 0 || c.users < 0 || c.validity <= 0 {
		return errors.New("cryptogen: counts must not be negative and validity must be positive")
	}
	ca, err := newCertAuthority("ca."+c.domain, c.mspID)
	if err != nil {
		return err
	}
	tlsca, err := newCertAuthority("tlsca."+c.domain, c.mspID)
	if err != nil {
		return err
	}
	w := &dirWriter{}
	w.file(filepath.Join(c.out, "ca", "ca."+c.domain+"-cert.pem"), ca.certPEM)
	w.file(filepath.Join(c.out, "ca", "priv_sk"), ca.keyPEM)
	w.file(filepath.Join(c.out, "tlsca", "tlsca."+c.domain+"-cert.pem"), tlsca.certPEM)
	w.file(filepath.Join(c.out, "tlsca", "priv_sk"), tlsca.keyPEM)

	admin, err := ca.issue("Admin@"+c.domain, []string{ouAdmin}, c.validity, nil)
	if err != nil {
		return err
	}
	// writeMSP writes an MSP folder, with a signing identity when id is set.
	writeMSP := func(dir string, id *issued) {
		w.file(filepath.Join(dir, "cacerts", "ca."+c.domain+"-cert.pem"), ca.certPEM)
		w.file(filepath.Join(dir, "tlscacerts", "tlsca."+c.domain+"-cert.pem"), tlsca.certPEM)
		w.file(filepath.Join(dir, "admincerts", "Admin@"+c.domain+"-cert.pem"), admin.certPEM)
		w.file(filepath.Join(dir, "config.yaml"), []byte(nodeOUsYAML("ca."+c.domain+"-cert.pem")))
		if id != nil {
			w.file(filepath.Join(dir, "signcerts", id.name+"-cert.pem"), id.certPEM)
			w.file(filepath.Join(dir, "keystore", "priv_sk"), id.keyPEM)
		}
	}
	// writeClientTLS writes a TLS client certificate of the TLS CA.
	writeClientTLS := func(dir, cn string) error {
		t, err := tlsca.issue(cn, nil, c.validity, []string{})
		if err != nil {
			return err
		}
		w.file(filepath.Join(dir, "tls", "client.crt"), t.certPEM)
		w.file(filepath.Join(dir, "tls", "client.key"), t.keyPEM)
		w.file(filepath.Join(dir, "tls", "ca.crt"), tlsca.certPEM)
		return nil
	}
	writeMSP(filepath.Join(c.out, "msp"), nil)
	writeMSP(filepath.Join(c.out, "users", "admin", "msp"), admin)
	if err := writeClientTLS(filepath.Join(c.out, "users", "admin"), "Admin@"+c.domain); err != nil {
		return err
	}
	for i := 1; i <= c.users; i++ {
		name := fmt.Sprintf("User%d@%s", i, c.domain)
		u, err := ca.issue(name, []string{ouClient}, c.validity, nil)
		if err != nil {
			return err
		}
		dir := filepath.Join(c.out, "users", fmt.Sprintf("user%d", i))
		writeMSP(filepath.Join(dir, "msp"), u)
		if err := writeClientTLS(dir, name); err != nil {
			return err
		}
	}
	for i := 0; i < c.orderers; i++ {
		name := fmt.Sprintf("orderer%d.%s", i, c.domain)
		o, err := ca.issue(name, []string{ouOrderer}, c.validity, nil)
		if err != nil {
			return err
		}
		dir := filepath.Join(c.out, "orderers", fmt.Sprintf("orderer%d", i))
		writeMSP(filepath.Join(dir, "msp"), o)
		hosts := append([]string{name, "localhost", "127.0.0.1", "::1"}, c.hosts...)
		t, err := tlsca.issue(name, nil, c.validity, hosts)
		if err != nil {
			return err
		}
		w.file(filepath.Join(dir, "tls", "server.crt"), t.certPEM)
		w.file(filepath.Join(dir, "tls", "server.key"), t.keyPEM)
		w.file(filepath.Join(dir, "tls", "ca.crt"), tlsca.certPEM)
	}
	return w.err
}

func nodeOUsYAML(caFile string) string {
	y := "NodeOUs:\n  Enable: true\n"
	for _, x := range [][2]string{
		{"ClientOUIdentifier", ouClient}, {"PeerOUIdentifier", ouPeer},
		{"AdminOUIdentifier", ouAdmin}, {"OrdererOUIdentifier", ouOrderer},
	} {
		y += fmt.Sprintf("  %s:\n    Certificate: cacerts/%s\n    OrganizationalUnitIdentifier: %s\n", x[0], caFile, x[1])
	}
	return y
}

// dirWriter writes files, creating their folders, and keeps the first
// error.
type dirWriter struct{ err error }

func (w *dirWriter) file(path string, data []byte) {
	if w.err != nil {
		return
	}
	if w.err = os.MkdirAll(filepath.Dir(path), 0o755); w.err != nil {
		return
	}
	w.err = os.WriteFile(path, data, 0o600)
}

// certAuthority is a self-signed ECDSA P-256 CA.
type certAuthority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// issued is a certificate and its key.
type issued struct {
	name    string
	certPEM []byte
	keyPEM  []byte
}

func newCertAuthority(cn, org string) (*certAuthority, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{org}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, key, keyPEM, err := newCert(tmpl, 10*365*24*time.Hour, nil)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certAuthority{cert: cert, key: key, certPEM: pemBlock("CERTIFICATE", der), keyPEM: keyPEM}, nil
}

// issue returns a certificate for cn with the given OUs; with hosts (none
// for a client) it is a TLS server and client certificate for them.
func (ca *certAuthority) issue(cn string, ous []string, validity time.Duration, hosts []string) (*issued, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: ca.cert.Subject.Organization, OrganizationalUnit: ous},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.cert.SubjectKeyId,
	}
	if hosts != nil {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, _, keyPEM, err := newCert(tmpl, validity, ca)
	if err != nil {
		return nil, err
	}
	return &issued{name: cn, certPEM: pemBlock("CERTIFICATE", der), keyPEM: keyPEM}, nil
}

// newCert generates an ECDSA P-256 key and a certificate of it from tmpl,
// given a serial number and a validity from 5 minutes ago for validity (and,
// for a CA, a subject key ID), signed by parent or, when parent is nil,
// self-signed. It returns the certificate's DER, the key and its PKCS #8 PEM.
func newCert(tmpl *x509.Certificate, validity time.Duration, parent *certAuthority) (der []byte, key *ecdsa.PrivateKey, keyPEM []byte, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serialNumber()
	tmpl.NotBefore = now.Add(-5 * time.Minute)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.IsCA {
		tmpl.SubjectKeyId = keyID(&key.PublicKey)
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err = pkcs8PEM(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return der, key, keyPEM, nil
}

func serialNumber() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	h := sha256.Sum256(b)
	return h[:]
}

func pkcs8PEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
