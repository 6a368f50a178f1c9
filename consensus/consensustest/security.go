package consensustest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
)

// SASL mechanisms of WithSASLUser, as Kafka names them.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

type saslUser struct{ mechanism, user, password string }

// WithTLS makes every broker accept TLS connections only, with cfg as the
// server configuration: it must hold a certificate valid for 127.0.0.1
// (SelfSignedTLS makes one). Clients connect with consensus.WithTLS or
// kgo.DialTLSConfig and a configuration that trusts its CA; a plaintext
// client fails with a kgo.ErrFirstReadEOF. Set cfg.ClientAuth and
// cfg.ClientCAs to require client certificates (mutual TLS).
//
// TLS is layered above the connection tracking, so DropConnections, Pause
// and Resume work as without it: dropping a connection cuts the TCP
// connection under the TLS session, and a paused broker refuses new
// connections before any handshake. cfg is cloned.
func WithTLS(cfg *tls.Config) KafkaOption {
	return func(c *kafkaConfig) {
		c.tlsSet = true
		c.tls = nil
		if cfg != nil {
			c.tls = cfg.Clone()
		}
	}
}

// WithSASLUser makes the brokers require SASL authentication and adds user
// with password for mechanism, one of SASLPlain, SASLScramSHA256 and
// SASLScramSHA512 (case does not matter). Repeat it to add several users,
// or the same user for several mechanisms. A client must authenticate with
// a mechanism its user was added for: consensus.WithSASL with
// github.com/twmb/franz-go/pkg/sasl/plain or .../sasl/scram. It combines
// with WithTLS (SASL_SSL) and with the fault methods.
//
// Like Kafka, the brokers answer a PLAIN user or password they do not know,
// and a SCRAM user they do not know, with SASL_AUTHENTICATION_FAILED (kgo
// returns an error wrapping kerr.SaslAuthenticationFailed and does not
// retry). A wrong SCRAM password, however, is only detected by kfake, which
// closes the connection instead: kgo sees io.EOF, which it retries as a
// network error until its retry limits (kgo.RequestRetries,
// kgo.RetryTimeout). A client without SASL gets kgo.ErrFirstReadEOF.
//
// The users are superusers: with ACLs enabled through WithClusterOpts
// (kfake.EnableACLs) they are allowed everything. For users subject to
// ACLs, pass kfake.EnableSASL and kfake.User through WithClusterOpts
// instead.
func WithSASLUser(mechanism, user, password string) KafkaOption {
	return func(c *kafkaConfig) {
		c.sasl = append(c.sasl, saslUser{strings.ToUpper(mechanism), user, password})
	}
}

func (c *kafkaConfig) validateSecurity() error {
	if c.tlsSet {
		switch {
		case c.tls == nil:
			return errors.New("consensustest: WithTLS(nil): need a server TLS config with a certificate")
		case len(c.tls.Certificates) == 0 && c.tls.GetCertificate == nil && c.tls.GetConfigForClient == nil:
			return errors.New("consensustest: WithTLS: the config has no certificate (Certificates, GetCertificate or GetConfigForClient)")
		case c.tls.MaxVersion != 0 && c.tls.MinVersion > c.tls.MaxVersion:
			return fmt.Errorf("consensustest: WithTLS: MinVersion %#x above MaxVersion %#x", c.tls.MinVersion, c.tls.MaxVersion)
		}
	}
	seen := make(map[[2]string]string)
	for _, u := range c.sasl {
		switch u.mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			return fmt.Errorf("consensustest: WithSASLUser(%q, %q, ...): unknown mechanism, want %s, %s or %s",
				u.mechanism, u.user, SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
		if u.user == "" || u.password == "" {
			return fmt.Errorf("consensustest: WithSASLUser(%q, %q, ...): empty user or password", u.mechanism, u.user)
		}
		if u.mechanism == SASLPlain && strings.ContainsRune(u.user+u.password, 0) {
			return fmt.Errorf("consensustest: WithSASLUser(%q, %q, ...): PLAIN user and password cannot hold NUL", u.mechanism, u.user)
		}
		k := [2]string{u.mechanism, u.user}
		if p, dup := seen[k]; dup && p != u.password {
			return fmt.Errorf("consensustest: WithSASLUser(%q, %q, ...) given twice with different passwords", u.mechanism, u.user)
		}
		seen[k] = u.password
	}
	return nil
}

// TLSCerts are the certificates of SelfSignedTLS: a throwaway TLS CA (of an
// msptest organisation), a server certificate it signed for 127.0.0.1, ::1
// and localhost, and a client certificate it signed. The certificates are
// valid from an hour ago for a day.
type TLSCerts struct {
	// Server is the brokers' configuration, for WithTLS. It verifies a
	// client certificate signed by the CA if one is presented, but does not
	// require one; set ClientAuth to tls.RequireAndVerifyClientCert on a
	// clone to require it.
	Server *tls.Config
	// Client trusts the CA only and presents no certificate, for
	// consensus.WithTLS or kgo.DialTLSConfig.
	Client *tls.Config
	// MutualClient is Client that also presents the client certificate.
	MutualClient *tls.Config
	// CAPEM is the CA certificate, PEM encoded, for programs that read the
	// CAs to trust from a file.
	CAPEM []byte
	// ClientCertPEM and ClientKeyPEM are the client certificate and its
	// private key (PKCS #8), PEM encoded.
	ClientCertPEM, ClientKeyPEM []byte
}

// SelfSignedTLS generates a CA and certificates for a TLS Kafka on
// 127.0.0.1: pass Server to WithTLS and Client to the clients.
func SelfSignedTLS() (*TLSCerts, error) {
	org, err := msptest.NewCA("consensustest", msptest.WithCAName("ca.consensustest"))
	if err != nil {
		return nil, fmt.Errorf("consensustest: SelfSignedTLS: %w", err)
	}
	server, err := org.IssueTLS("127.0.0.1", []string{"127.0.0.1", "::1", "localhost"})
	if err != nil {
		return nil, fmt.Errorf("consensustest: SelfSignedTLS: %w", err)
	}
	client, err := org.IssueTLS("consensustest client", nil)
	if err != nil {
		return nil, fmt.Errorf("consensustest: SelfSignedTLS: %w", err)
	}
	serverCert, err := server.Certificate()
	if err != nil {
		return nil, fmt.Errorf("consensustest: SelfSignedTLS: %w", err)
	}
	clientCert, err := client.Certificate()
	if err != nil {
		return nil, fmt.Errorf("consensustest: SelfSignedTLS: %w", err)
	}
	pool := server.CAPool()
	return &TLSCerts{
		Server: &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
		},
		Client:        &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MutualClient:  &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12},
		CAPEM:         server.CACertPEM,
		ClientCertPEM: client.CertPEM,
		ClientKeyPEM:  client.KeyPEM,
	}, nil
}

// rejectUnknownCredentials makes the brokers answer a SASLAuthenticate
// request whose credentials they can tell are wrong with
// SASL_AUTHENTICATION_FAILED, as Kafka does, where kfake would close the
// connection: a PLAIN user and password not added, or the first SCRAM
// message of a user not added for SCRAM. Other requests, among them the
// final SCRAM message, which kfake alone can check, go to kfake.
func (k *Kafka) rejectUnknownCredentials(users []saslUser) {
	plainUsers := make(map[string]string)
	scramUsers := make(map[string]bool)
	for _, u := range users {
		if u.mechanism == SASLPlain {
			plainUsers[u.user] = u.password
		} else {
			scramUsers[u.user] = true
		}
	}
	k.c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.c.KeepControl()
		r := req.(*kmsg.SASLAuthenticateRequest)
		var msg string
		if parts := strings.SplitN(string(r.SASLAuthBytes), "\x00", 3); len(parts) == 3 {
			if p, ok := plainUsers[parts[1]]; ok && p == parts[2] {
				return nil, nil, false
			}
			msg = "Authentication failed: Invalid username or password"
		} else if user, ok := scramFirstUser(r.SASLAuthBytes); ok && !scramUsers[user] {
			msg = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM"
		} else {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
}

// scramFirstUser returns the user of a SCRAM client-first-message
// ("n,,n=user,r=nonce"), false if b is not one.
func scramFirstUser(b []byte) (string, bool) {
	s := string(b)
	// The GS2 header: a channel binding flag and an optional authzid.
	if !strings.HasPrefix(s, "n,") && !strings.HasPrefix(s, "y,") && !strings.HasPrefix(s, "p=") {
		return "", false
	}
	_, s, _ = strings.Cut(s, ",")
	_, bare, ok := strings.Cut(s, ",")
	if !ok || !strings.HasPrefix(bare, "n=") {
		return "", false
	}
	user, _, _ := strings.Cut(bare[len("n="):], ",")
	return strings.NewReplacer("=3D", "=", "=2C", ",").Replace(user), true
}
