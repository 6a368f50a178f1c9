package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc/credentials"
)

// newFlagSet returns the flag set of a subcommand; its usage prints the
// summary and the flags to stderr.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("orderer "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: orderer %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, and rejects positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// commaList is a string flag that may be repeated or hold a comma separated
// list.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }

func (l *commaList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// orgFlag is a repeatable MSPID=DIR flag.
type orgFlag []orgDir

type orgDir struct{ mspID, dir string }

func (o *orgFlag) String() string {
	s := make([]string, len(*o))
	for i, x := range *o {
		s[i] = x.mspID + "=" + x.dir
	}
	return strings.Join(s, ",")
}

func (o *orgFlag) Set(v string) error {
	id, dir, ok := strings.Cut(v, "=")
	if !ok || id == "" || dir == "" {
		return fmt.Errorf("want MSPID=DIR, got %q", v)
	}
	*o = append(*o, orgDir{id, dir})
	return nil
}

// signerFlags name a signing identity: an MSP folder and its MSP ID
// (start: the node's identity; broadcast, deliver: the client's).
type signerFlags struct {
	dir, mspID string
}

// register defines --signer and --signer-mspid; what says whose identity
// it is.
func (f *signerFlags) register(fs *flag.FlagSet, what string) {
	fs.StringVar(&f.dir, "signer", "", "MSP `folder` of "+what)
	fs.StringVar(&f.mspID, "signer-mspid", "", "MSP ID of the signing identity")
}

// set reports whether the flags name an identity.
func (f *signerFlags) set() bool { return f.dir != "" }

// check rejects one flag without the other, and no identity when one is
// required.
func (f *signerFlags) check(required bool) error {
	switch {
	case required && (f.dir == "" || f.mspID == ""):
		return errors.New("--signer and --signer-mspid are required")
	case (f.dir == "") != (f.mspID == ""):
		return errors.New("--signer and --signer-mspid go together")
	}
	return nil
}

// load loads the identity.
func (f *signerFlags) load() (msp.SigningIdentity, error) {
	si, err := msp.LoadSigningIdentity(f.dir, f.mspID)
	if err != nil {
		return nil, fmt.Errorf("--signer: %w", err)
	}
	return si, nil
}

// serverTLSFlags are the certificate and key of a TLS server (start).
type serverTLSFlags struct {
	cert, key string
}

func (f *serverTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "PEM certificate `file` of the gRPC server (enables TLS, with --tls-key)")
	fs.StringVar(&f.key, "tls-key", "", "PEM key `file` of the gRPC server")
}

// credentials returns the server's transport credentials, or nil for
// plaintext.
func (f *serverTLSFlags) credentials() (credentials.TransportCredentials, error) {
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// clientTLSFlags say how a client reaches orderers: plaintext, or TLS
// trusting the CAs of a PEM file (broadcast, deliver: --tls-ca and
// --tls-server-name; start: --peer-tls-ca, for its peers).
type clientTLSFlags struct {
	caFile     string
	serverName string
}

// register defines --<prefix>tls-ca, and --<prefix>tls-server-name when
// addrFlag names the flag of the one address the client dials (a node
// reaching several peers expects the host of each peer's address).
func (f *clientTLSFlags) register(fs *flag.FlagSet, prefix, whose, addrFlag string) {
	fs.StringVar(&f.caFile, prefix+"tls-ca", "", "PEM `file` of the CAs that sign "+whose+" TLS certificates (enables TLS)")
	if addrFlag != "" {
		fs.StringVar(&f.serverName, prefix+"tls-server-name", "", "host name expected in "+whose+" TLS certificate (default: from "+addrFlag+")")
	}
}

// credentials returns the client's transport credentials; an error is
// about the CA file.
func (f *clientTLSFlags) credentials() (credentials.TransportCredentials, error) {
	return clientCredentials(f.caFile, f.serverName)
}

// kafkaFlags say how a node reaches Kafka: TLS and SASL (start).
type kafkaFlags struct {
	tls           bool
	tlsCA         string
	tlsCert       string
	tlsKey        string
	saslUser      string
	saslPassword  string
	saslMechanism string
}

func (f *kafkaFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.tls, "kafka-tls", false, "connect to Kafka over TLS (implied by the other --kafka-tls flags)")
	fs.StringVar(&f.tlsCA, "kafka-tls-ca", "", "PEM `file` of the CAs that sign the brokers' certificates (default: the system's)")
	fs.StringVar(&f.tlsCert, "kafka-tls-cert", "", "PEM client certificate `file` for Kafka mutual TLS")
	fs.StringVar(&f.tlsKey, "kafka-tls-key", "", "PEM client key `file` for Kafka mutual TLS")
	fs.StringVar(&f.saslUser, "kafka-sasl-user", "", "SASL user for Kafka")
	fs.StringVar(&f.saslPassword, "kafka-sasl-password", "", "SASL password for Kafka")
	fs.StringVar(&f.saslMechanism, "kafka-sasl-mechanism", "PLAIN", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
}

// opts returns the consenter's options for Kafka's TLS and SASL.
func (f *kafkaFlags) opts() ([]consensus.Option, error) {
	var opts []consensus.Option
	if f.tls || f.tlsCA != "" || f.tlsCert != "" || f.tlsKey != "" {
		cfg, err := f.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, consensus.WithTLS(cfg))
	}
	if f.saslUser == "" && f.saslPassword != "" {
		return nil, errors.New("--kafka-sasl-password needs --kafka-sasl-user")
	}
	if f.saslUser != "" {
		m, err := f.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, consensus.WithSASL(m))
	}
	return opts, nil
}

func (f *kafkaFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kafka-tls-ca %s: no PEM certificate", f.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("--kafka-tls-cert and --kafka-tls-key go together")
	}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("Kafka client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (f *kafkaFlags) mechanism() (sasl.Mechanism, error) {
	user, pass := f.saslUser, f.saslPassword
	switch strings.ToUpper(f.saslMechanism) {
	case "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", f.saslMechanism)
	}
}
