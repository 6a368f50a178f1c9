package msptest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
)

// File names of the keys written by WriteMSPDir, WriteCADir and
// TLSCert.WriteDir, as Fabric's cryptogen names them.
const (
	FileKey       = "priv_sk"
	FileTLSCert   = "server.crt"
	FileTLSKey    = "server.key"
	FileTLSCACert = "ca.crt"
)

// WriteMSPDir writes the organisation's MSP configuration (MSPConfig) into
// dir, creating it, in Fabric's MSP folder layout: cacerts/,
// intermediatecerts/, admincerts/, crls/ and tlscacerts/, each certificate
// in a file named after its common name ("ca.Org1MSP-cert.pem"), and
// config.yaml when NodeOUs are enabled. When signer is not nil, it also
// writes signcerts/ with signer's certificate and keystore/ with its
// PKCS #8 key (FileKey). The result loads with msp.LoadDir and, with a
// signer, msp.LoadSigningIdentity.
func (c *CA) WriteMSPDir(dir string, signer *Identity) error {
	w := &dirWriter{}
	for _, ca := range c.cas() {
		sub := msp.DirIntermediateCerts
		if ca == c.org.root {
			sub = msp.DirCACerts
		}
		w.file(filepath.Join(dir, sub, certFile(ca.Cert.Subject.CommonName)), ca.CertPEM)
		if crl := ca.CRL(); crl != nil {
			w.file(filepath.Join(dir, msp.DirCRLs, ca.Cert.Subject.CommonName+"-crl.pem"), crl)
		}
	}
	w.file(filepath.Join(dir, msp.DirTLSCACerts, certFile(c.org.tls.Cert.Subject.CommonName)), c.org.tls.CertPEM)
	w.dir(filepath.Join(dir, msp.DirAdminCerts))
	for _, a := range c.listedAdmins() {
		w.file(filepath.Join(dir, msp.DirAdminCerts, certFile(a.Cert.Subject.CommonName)), a.CertPEM)
	}
	if c.org.nodeOUs {
		w.file(filepath.Join(dir, msp.FileConfig), []byte(nodeOUsYAML(filepath.Join(msp.DirCACerts, certFile(c.org.root.Cert.Subject.CommonName)))))
	}
	if signer != nil {
		w.file(filepath.Join(dir, msp.DirSignCerts, certFile(signer.Cert.Subject.CommonName)), signer.CertPEM)
		w.file(filepath.Join(dir, msp.DirKeystore, FileKey), signer.KeyPEM)
	}
	if w.err != nil {
		return fmt.Errorf("msptest: writing the MSP folder of %s: %w", c.MSPID, w.err)
	}
	return nil
}

// WriteCADir writes c's certificate ("<common name>-cert.pem") and private
// key (FileKey) into dir, creating it, as cryptogen writes an
// organisation's ca/ and tlsca/ folders.
func (c *CA) WriteCADir(dir string) error {
	w := &dirWriter{}
	w.file(filepath.Join(dir, certFile(c.Cert.Subject.CommonName)), c.CertPEM)
	w.file(filepath.Join(dir, FileKey), c.KeyPEM)
	if w.err != nil {
		return fmt.Errorf("msptest: writing CA %q: %w", c.Cert.Subject.CommonName, w.err)
	}
	return nil
}

// WriteDir writes the certificate (FileTLSCert), its key (FileTLSKey) and
// the TLS CA's certificate (FileTLSCACert) into dir, creating it, as
// cryptogen writes a node's tls/ folder.
func (t *TLSCert) WriteDir(dir string) error {
	w := &dirWriter{}
	w.file(filepath.Join(dir, FileTLSCert), t.CertPEM)
	w.file(filepath.Join(dir, FileTLSKey), t.KeyPEM)
	w.file(filepath.Join(dir, FileTLSCACert), t.CACertPEM)
	if w.err != nil {
		return fmt.Errorf("msptest: writing TLS certificate %q: %w", t.Cert.Subject.CommonName, w.err)
	}
	return nil
}

func certFile(cn string) string { return cn + "-cert.pem" }

// nodeOUsYAML is the NodeOUs section of config.yaml, every OU certified
// by the CA in caFile (relative to the MSP folder).
func nodeOUsYAML(caFile string) string {
	y := "NodeOUs:\n  Enable: true\n"
	for _, x := range [][2]string{
		{"ClientOUIdentifier", OUClient}, {"PeerOUIdentifier", OUPeer},
		{"AdminOUIdentifier", OUAdmin}, {"OrdererOUIdentifier", OUOrderer},
	} {
		y += fmt.Sprintf("  %s:\n    Certificate: %s\n    OrganizationalUnitIdentifier: %s\n", x[0], filepath.ToSlash(caFile), x[1])
	}
	return y
}

// dirWriter writes files, creating their folders, and keeps the first
// error.
type dirWriter struct{ err error }

func (w *dirWriter) dir(path string) {
	if w.err == nil {
		w.err = os.MkdirAll(path, 0o755)
	}
}

func (w *dirWriter) file(path string, data []byte) {
	w.dir(filepath.Dir(path))
	if w.err == nil {
		w.err = os.WriteFile(path, data, 0o600)
	}
}
