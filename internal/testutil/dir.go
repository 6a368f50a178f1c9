package testutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteMSPDir writes c's MSP configuration (see MSPConfig) into dir in
// Fabric's MSP folder layout: cacerts/, intermediatecerts/, admincerts/,
// crls/, tlscacerts/, config.yaml when NodeOUs are enabled and, when signer
// is not nil, signcerts/ with its certificate and keystore/ with its PKCS#8
// PEM key. The result loads with msp.LoadDir and msp.LoadSigningIdentity.
func (c *CA) WriteMSPDir(dir string, signer *Identity) error {
	cfg := c.MSPConfig()
	write := func(sub, name string, data []byte) error {
		d := filepath.Join(dir, sub)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(d, name), data, 0o600)
	}
	files := []struct {
		sub, prefix string
		items       [][]byte
	}{
		{"cacerts", "ca", cfg.RootCerts},
		{"intermediatecerts", "ica", cfg.IntermediateCerts},
		{"admincerts", "admin", cfg.Admins},
		{"crls", "crl", cfg.RevocationList},
		{"tlscacerts", "tlsca", cfg.TlsRootCerts},
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Join(dir, f.sub), 0o755); err != nil {
			return err
		}
		for i, b := range f.items {
			if err := write(f.sub, fmt.Sprintf("%s-%d.pem", f.prefix, i), b); err != nil {
				return err
			}
		}
	}
	if n := cfg.GetFabricNodeOus(); n.GetEnable() {
		y := "NodeOUs:\n  Enable: true\n"
		for _, x := range []struct {
			key string
			ou  string
		}{
			{"ClientOUIdentifier", n.GetClientOuIdentifier().GetOrganizationalUnitIdentifier()},
			{"PeerOUIdentifier", n.GetPeerOuIdentifier().GetOrganizationalUnitIdentifier()},
			{"AdminOUIdentifier", n.GetAdminOuIdentifier().GetOrganizationalUnitIdentifier()},
			{"OrdererOUIdentifier", n.GetOrdererOuIdentifier().GetOrganizationalUnitIdentifier()},
		} {
			y += fmt.Sprintf("  %s:\n    Certificate: cacerts/ca-0.pem\n    OrganizationalUnitIdentifier: %s\n", x.key, x.ou)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(y), 0o600); err != nil {
			return err
		}
	}
	if signer != nil {
		if err := write("signcerts", signer.Cert.Subject.CommonName+"-cert.pem", signer.CertPEM); err != nil {
			return err
		}
		if err := write("keystore", fingerprint(signer.Cert.Raw)+"_sk", signer.KeyPEM); err != nil {
			return err
		}
	}
	return nil
}
