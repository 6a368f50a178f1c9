package deploy_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// generate runs the compose file's set-up steps, orderer-crypto.sh and
// kafka-pki.sh, each with its service's environment, into a temporary
// folder standing for ./generated, and returns that folder. The owners
// are left alone.
func generate(t *testing.T, c *composeFile) string {
	t.Helper()
	for _, tool := range []string{"sh", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	out := filepath.Join(t.TempDir(), "generated")
	for _, step := range []string{"orderer-crypto", "kafka-pki"} {
		cmd := exec.Command("sh", filepath.Join("scripts", step+".sh"))
		cmd.Env = append(os.Environ(), "ORDERER="+ordererBin(t))
		for k, v := range c.Services[step].Environment {
			switch {
			case k == "OUT":
				v = out
			case strings.HasSuffix(k, "OWNER"):
				v = ""
			}
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, b)
		}
	}
	return out
}

// inContainer maps a path of a service's container to the file the set-up
// steps made, through the service's bind mounts of ./generated and
// ./scripts; ok is false for a path no bind mount holds.
func inContainer(s service, gen, path string) (string, bool) {
	for _, m := range mountsOf(s) {
		rest, found := strings.CutPrefix(path, m.target)
		if !found || (rest != "" && !strings.HasPrefix(rest, "/")) {
			continue
		}
		switch {
		case strings.HasPrefix(m.source, "./generated"):
			return filepath.Join(gen, strings.TrimPrefix(m.source, "./generated"), rest), true
		case strings.HasPrefix(m.source, "./"):
			return filepath.Join(m.source, rest), true
		}
	}
	return "", false
}

// fileFlags are the flags of orderer start that name files or folders.
var fileFlags = []string{"genesis", "signer", "tls-cert", "tls-key", "kafka-tls-ca", "kafka-tls-cert", "kafka-tls-key", "peer-tls-ca"}

func TestGeneratedFiles(t *testing.T) {
	c, _ := loadCompose(t)
	gen := generate(t, c)
	exists := func(where, path string, s service) {
		local, ok := inContainer(s, gen, path)
		if !ok {
			t.Errorf("%s: %s is in no bind mount", where, path)
			return
		}
		if _, err := os.Stat(local); err != nil {
			t.Errorf("%s: %s: the set-up steps made no %s", where, path, local)
		}
	}
	for _, o := range ordererNames {
		v := flagValues(c.Services[o].Command)
		for _, f := range fileFlags {
			for _, p := range v[f] {
				exists(o+" --"+f, p, c.Services[o])
			}
		}
	}
	for _, b := range brokerNames {
		props := kafkaProps(c.Services[b].Environment)
		exists(b, props["ssl.keystore.location"], c.Services[b])
		exists(b, props["ssl.truststore.location"], c.Services[b])
	}
	acls := c.Services["kafka-acls"]
	exists("kafka-acls", acls.Entrypoint[len(acls.Entrypoint)-1], acls)
	exists("kafka-acls", acls.Environment["COMMAND_CONFIG"], acls)
	if local, ok := inContainer(acls, gen, acls.Environment["COMMAND_CONFIG"]); ok {
		for _, l := range strings.Split(readFile(t, local), "\n") {
			if k, v, _ := strings.Cut(l, "="); strings.HasSuffix(k, ".location") {
				exists("kafka-acls "+k, v, acls)
			}
		}
	}
	env := parseEnvFile(t, readFile(t, "systemd/orderer0.env"))
	for _, k := range sortedKeys(env) {
		if rest, ok := strings.CutPrefix(env[k], "/etc/orderer/orderer0/"); ok {
			if _, err := os.Stat(filepath.Join(gen, "orderers", "orderer0", rest)); err != nil {
				t.Errorf("orderer0.env %s=%s: the set-up steps lay out no orderers/orderer0/%s", k, env[k], rest)
			}
		}
	}
}

// TestGeneratedCertificates checks the certificates the set-up steps make
// as the brokers and the nodes use them: each orderer's Kafka client
// certificate completes a mutual TLS handshake with each broker under
// the broker's host name, and its principal has ACLs; each orderer's gRPC
// certificate is valid for the host name the other nodes dial.
func TestGeneratedCertificates(t *testing.T) {
	c, _ := loadCompose(t)
	gen := generate(t, c)
	rules := kafkaProps(c.Services[brokerNames[0]].Environment)["ssl.principal.mapping.rules"]
	principals := strings.Fields(c.Services["kafka-acls"].Environment["PRINCIPALS"])
	local := func(s service, path string) string {
		p, _ := inContainer(s, gen, path)
		return p
	}
	for _, b := range brokerNames {
		bs := c.Services[b]
		props := kafkaProps(bs.Environment)
		server, err := tls.LoadX509KeyPair(local(bs, props["ssl.keystore.location"]), local(bs, props["ssl.keystore.location"]))
		if err != nil {
			t.Fatalf("%s keystore: %v", b, err)
		}
		trust := certPool(t, local(bs, props["ssl.truststore.location"]))
		for _, o := range ordererNames {
			node := c.Services[o]
			v := flagValues(node.Command)
			client, err := tls.LoadX509KeyPair(local(node, v["kafka-tls-cert"][0]), local(node, v["kafka-tls-key"][0]))
			if err != nil {
				t.Fatalf("%s Kafka client certificate: %v", o, err)
			}
			peer, err := handshake(server, trust, client, certPool(t, local(node, v["kafka-tls-ca"][0])), b)
			if err != nil {
				t.Errorf("%s to %s: %v", o, b, err)
				continue
			}
			if p := principalOf(t, rules, peer.Subject.ToRDNSequence().String()); p != o || !slices.Contains(principals, p) {
				t.Errorf("%s's Kafka principal is User:%s; want User:%s, with ACLs (%v)", o, p, o, principals)
			}
		}
	}
	for _, o := range ordererNames {
		node := c.Services[o]
		v := flagValues(node.Command)
		server, err := tls.LoadX509KeyPair(local(node, v["tls-cert"][0]), local(node, v["tls-key"][0]))
		if err != nil {
			t.Fatalf("%s gRPC certificate: %v", o, err)
		}
		for _, peer := range ordererNames {
			roots := certPool(t, local(c.Services[peer], flagValues(c.Services[peer].Command)["peer-tls-ca"][0]))
			if _, err := handshake(server, nil, tls.Certificate{}, roots, node.Hostname); err != nil {
				t.Errorf("%s dialling %s as %s: %v", peer, o, node.Hostname, err)
			}
		}
	}
}

func certPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	b, err := os.ReadFile(file)
	if err != nil || !p.AppendCertsFromPEM(b) {
		t.Fatalf("CA file %s: %v, or no certificate", file, err)
	}
	return p
}

// handshake runs a TLS handshake in memory: a server with cert that, when
// clientCAs is set, requires a client certificate signed by them, and a
// client that trusts roots and expects serverName. It returns the client
// certificate the server saw.
func handshake(cert tls.Certificate, clientCAs *x509.CertPool, clientCert tls.Certificate, roots *x509.CertPool, serverName string) (*x509.Certificate, error) {
	sc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		sc.ClientAuth, sc.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	cc := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if clientCert.Certificate != nil {
		cc.Certificates = []tls.Certificate{clientCert}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	srv, cli := tls.Server(a, sc), tls.Client(b, cc)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cerr := cli.Handshake()
	serr := <-errc
	if err := errors.Join(cerr, serr); err != nil {
		return nil, err
	}
	if peers := srv.ConnectionState().PeerCertificates; len(peers) > 0 {
		return peers[0], nil
	}
	return nil, nil
}
