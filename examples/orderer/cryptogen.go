package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
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

// cryptogen writes, under c.out, Fabric's layout of one organisation, with
// the identities of package msptest:
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
	ca, err := msptest.NewCA(c.mspID, msptest.WithNodeOUs(), msptest.WithCAName("ca."+c.domain))
	if err != nil {
		return err
	}
	now := time.Now()
	w := orgWriter{c: c, ca: ca, validity: msptest.WithValidity(now.Add(-5*time.Minute), now.Add(c.validity))}
	// The admin first: the MSP folders list it in admincerts.
	admin, err := ca.Issue("Admin@"+c.domain, msptest.WithOU(msptest.OUAdmin), msptest.ListedAdmin(), w.validity)
	if err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return ca.WriteCADir(filepath.Join(c.out, "ca")) },
		func() error { return ca.TLSCA().WriteCADir(filepath.Join(c.out, "tlsca")) },
		func() error { return ca.WriteMSPDir(filepath.Join(c.out, "msp"), nil) },
		func() error { return w.client(filepath.Join(c.out, "users", "admin"), "Admin@"+c.domain, admin) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	for i := 1; i <= c.users; i++ {
		name := fmt.Sprintf("User%d@%s", i, c.domain)
		u, err := ca.Issue(name, msptest.WithOU(msptest.OUClient), w.validity)
		if err != nil {
			return err
		}
		if err := w.client(filepath.Join(c.out, "users", fmt.Sprintf("user%d", i)), name, u); err != nil {
			return err
		}
	}
	for i := 0; i < c.orderers; i++ {
		if err := w.orderer(i); err != nil {
			return err
		}
	}
	return nil
}

// orgWriter writes the identities of one organisation's folder.
type orgWriter struct {
	c        cryptogenConfig
	ca       *msptest.CA
	validity msptest.IssueOption
}

// client writes a client's MSP folder and a TLS client certificate of the
// TLS CA, for an orderer that requires one, under dir.
func (w orgWriter) client(dir, name string, id *msptest.Identity) error {
	if err := w.ca.WriteMSPDir(filepath.Join(dir, "msp"), id); err != nil {
		return err
	}
	t, err := w.ca.IssueTLS(name, nil, w.validity)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o755); err != nil {
		return err
	}
	for file, data := range map[string][]byte{"client.crt": t.CertPEM, "client.key": t.KeyPEM, "ca.crt": t.CACertPEM} {
		if err := os.WriteFile(filepath.Join(dir, "tls", file), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// orderer writes orderer i's MSP folder and its TLS server certificate.
func (w orgWriter) orderer(i int) error {
	name := fmt.Sprintf("orderer%d.%s", i, w.c.domain)
	o, err := w.ca.Issue(name, msptest.WithOU(msptest.OUOrderer), w.validity)
	if err != nil {
		return err
	}
	dir := filepath.Join(w.c.out, "orderers", fmt.Sprintf("orderer%d", i))
	if err := w.ca.WriteMSPDir(filepath.Join(dir, "msp"), o); err != nil {
		return err
	}
	hosts := append([]string{name, "localhost", "127.0.0.1", "::1"}, w.c.hosts...)
	t, err := w.ca.IssueTLS(name, hosts, w.validity)
	if err != nil {
		return err
	}
	return t.WriteDir(filepath.Join(dir, "tls"))
}
