package msp

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"

	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
)

// Folder names of Fabric's MSP directory layout.
const (
	DirCACerts           = "cacerts"
	DirIntermediateCerts = "intermediatecerts"
	DirAdminCerts        = "admincerts"
	DirCRLs              = "crls"
	DirTLSCACerts        = "tlscacerts"
	DirTLSIntermediates  = "tlsintermediatecerts"
	DirSignCerts         = "signcerts"
	DirKeystore          = "keystore"
	FileConfig           = "config.yaml"
)

// configFile is the part of Fabric's config.yaml that LoadDir reads.
type configFile struct {
	OrganizationalUnitIdentifiers []ouIdentFile `yaml:"OrganizationalUnitIdentifiers"`
	NodeOUs                       *struct {
		Enable              bool         `yaml:"Enable"`
		ClientOUIdentifier  *ouIdentFile `yaml:"ClientOUIdentifier"`
		PeerOUIdentifier    *ouIdentFile `yaml:"PeerOUIdentifier"`
		AdminOUIdentifier   *ouIdentFile `yaml:"AdminOUIdentifier"`
		OrdererOUIdentifier *ouIdentFile `yaml:"OrdererOUIdentifier"`
	} `yaml:"NodeOUs"`
}

type ouIdentFile struct {
	Certificate                  string `yaml:"Certificate"`
	OrganizationalUnitIdentifier string `yaml:"OrganizationalUnitIdentifier"`
}

// LoadDir reads an MSP folder in Fabric's layout into an MSPConfig named
// mspID: PEM files in cacerts/ (at least one), intermediatecerts/,
// admincerts/, crls/, tlscacerts/ and tlsintermediatecerts/ (all but
// cacerts optional), and the OrganizationalUnitIdentifiers and NodeOUs
// sections of an optional config.yaml, whose Certificate paths are relative
// to dir. Files are read in name order. LoadDir does not build the MSP:
// pass the result to New.
func LoadDir(dir, mspID string) (*ccpb.MSPConfig, error) {
	if mspID == "" {
		return nil, fmt.Errorf("%w: empty MSP ID", ErrMalformed)
	}
	cfg := &ccpb.MSPConfig{Name: mspID}
	var err error
	read := func(sub string, required bool) [][]byte {
		if err != nil {
			return nil
		}
		var out [][]byte
		out, err = readPEMDir(filepath.Join(dir, sub), required)
		return out
	}
	cfg.RootCerts = read(DirCACerts, true)
	cfg.IntermediateCerts = read(DirIntermediateCerts, false)
	cfg.Admins = read(DirAdminCerts, false)
	cfg.RevocationList = read(DirCRLs, false)
	cfg.TlsRootCerts = read(DirTLSCACerts, false)
	cfg.TlsIntermediateCerts = read(DirTLSIntermediates, false)
	if err != nil {
		return nil, fmt.Errorf("msp %s: loading %s: %w", mspID, dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileConfig))
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("msp %s: %w", mspID, err)
	}
	var f configFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%w: msp %s: %s: %w", ErrMalformed, mspID, FileConfig, err)
	}
	for _, x := range f.OrganizationalUnitIdentifiers {
		oi, err := x.load(dir, mspID)
		if err != nil {
			return nil, err
		}
		cfg.OrganizationalUnitIdentifiers = append(cfg.OrganizationalUnitIdentifiers, oi)
	}
	if f.NodeOUs == nil {
		return cfg, nil
	}
	n := &ccpb.FabricNodeOUs{Enable: f.NodeOUs.Enable}
	for _, x := range []struct {
		src *ouIdentFile
		dst **ccpb.FabricOUIdentifier
	}{
		{f.NodeOUs.ClientOUIdentifier, &n.ClientOuIdentifier},
		{f.NodeOUs.PeerOUIdentifier, &n.PeerOuIdentifier},
		{f.NodeOUs.AdminOUIdentifier, &n.AdminOuIdentifier},
		{f.NodeOUs.OrdererOUIdentifier, &n.OrdererOuIdentifier},
	} {
		if x.src == nil {
			continue
		}
		oi, err := x.src.load(dir, mspID)
		if err != nil {
			return nil, err
		}
		*x.dst = oi
	}
	cfg.FabricNodeOus = n
	return cfg, nil
}

// load returns the identifier f describes, with its certificate file (a
// path relative to dir, if not absolute) read.
func (f ouIdentFile) load(dir, mspID string) (*ccpb.FabricOUIdentifier, error) {
	oi := &ccpb.FabricOUIdentifier{OrganizationalUnitIdentifier: f.OrganizationalUnitIdentifier}
	if f.Certificate == "" {
		return oi, nil
	}
	p := f.Certificate
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("msp %s: certificate of OU %q: %w", mspID, f.OrganizationalUnitIdentifier, err)
	}
	oi.Certificate = b
	return oi, nil
}

// readPEMDir returns the PEM blocks of every regular file of dir, in file
// name order, each re-encoded on its own.
func readPEMDir(dir string, required bool) ([][]byte, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		n := 0
		for {
			var block *pem.Block
			block, b = pem.Decode(b)
			if block == nil {
				break
			}
			out = append(out, pem.EncodeToMemory(block))
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: %s holds no PEM block", ErrMalformed, filepath.Join(dir, e.Name()))
		}
	}
	if required && len(out) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrMalformed, dir)
	}
	return out, nil
}

// LoadSigningIdentity reads the signing identity of an MSP folder: the
// certificate in signcerts/ (the first PEM block of the first file) and the
// matching PKCS#8 (or SEC 1 EC) private key among the PEM files of
// keystore/.
func LoadSigningIdentity(dir, mspID string) (SigningIdentity, error) {
	certs, err := readPEMDir(filepath.Join(dir, DirSignCerts), true)
	if err != nil {
		return nil, fmt.Errorf("msp %s: loading signing certificate: %w", mspID, err)
	}
	cert, err := parseCertificatePEM(certs[0])
	if err != nil {
		return nil, fmt.Errorf("msp %s: %w", mspID, err)
	}
	keys, err := readPEMDir(filepath.Join(dir, DirKeystore), true)
	if err != nil {
		return nil, fmt.Errorf("msp %s: loading keystore: %w", mspID, err)
	}
	for _, k := range keys {
		key, err := parsePrivateKeyPEM(k)
		if err != nil {
			continue
		}
		pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
		if ok && pub.Equal(cert.PublicKey) {
			return NewSigningIdentity(mspID, certs[0], key)
		}
	}
	return nil, fmt.Errorf("%w: msp %s: no key in %s matches the signing certificate", ErrMalformed, mspID, filepath.Join(dir, DirKeystore))
}

func parsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrMalformed)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%w: key of type %T cannot sign", ErrMalformed, k)
	}
	if slices.Contains([]string{"EC PRIVATE KEY", "PRIVATE KEY"}, block.Type) {
		if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: unsupported private key encoding %q", ErrMalformed, block.Type)
}
