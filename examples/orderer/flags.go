package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
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

// serverTLSFlags are the certificate and key of a TLS server (start), and
// its optional client authentication.
type serverTLSFlags struct {
	cert, key  string
	clientAuth bool
	clientCAs  stringList
	binding    string
}

func (f *serverTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "PEM certificate `file` of the gRPC server (enables TLS, with --tls-key)")
	fs.StringVar(&f.key, "tls-key", "", "PEM key `file` of the gRPC server")
	fs.BoolVar(&f.clientAuth, "tls-client-auth", false, "require a TLS client certificate issued by a TLS CA of the channels' organisations (their MSPs' tlscacerts, as the configuration in force says) or of --tls-client-ca (needs --tls-cert)")
	fs.Var(&f.clientCAs, "tls-client-ca", "PEM `file` of more CAs whose TLS client certificates are accepted (repeatable; needs --tls-client-auth)")
	fs.StringVar(&f.binding, "tls-binding", "all", "with --tls-client-auth, the requests whose channel header's tls_cert_hash must be the SHA-256 of the client certificate: all (Broadcast and Deliver), deliver (as Fabric's orderer) or none")
}

// config returns the server's TLS configuration, nil for plaintext, and
// the extra client CAs.
func (f *serverTLSFlags) config() (*tls.Config, []*x509.Certificate, error) {
	if (f.cert == "") != (f.key == "") {
		return nil, nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.clientAuth && f.cert == "" {
		return nil, nil, errors.New("--tls-client-auth needs --tls-cert")
	}
	if len(f.clientCAs) > 0 && !f.clientAuth {
		return nil, nil, errors.New("--tls-client-ca needs --tls-client-auth")
	}
	if _, err := f.parseBinding(); err != nil {
		return nil, nil, fmt.Errorf("--tls-binding: %w", err)
	}
	if f.cert == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS: %w", err)
	}
	var cas []*x509.Certificate
	for _, file := range f.clientCAs {
		certs, err := readCerts(file)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		cas = append(cas, certs...)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, cas, nil
}

// tlsBinding returns the binding the server checks: none without client
// authentication.
func (f *serverTLSFlags) tlsBinding() atomicbroadcast.TLSBinding {
	if !f.clientAuth {
		return atomicbroadcast.BindNone
	}
	b, _ := f.parseBinding() // checked by config
	return b
}

// parseBinding parses --tls-binding; "" means all.
func (f *serverTLSFlags) parseBinding() (atomicbroadcast.TLSBinding, error) {
	if f.binding == "" {
		return atomicbroadcast.BindAll, nil
	}
	return atomicbroadcast.ParseTLSBinding(f.binding)
}

// readCerts returns the certificates of a PEM file.
func readCerts(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return certs, nil
}

// byteSize is a flag of a number of bytes, with an optional unit: 64MiB,
// 512KiB, 1GiB, 10MB, or plain bytes.
type byteSize int64

var byteUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

func (b *byteSize) String() string {
	v := int64(*b)
	for _, u := range byteUnits[:3] {
		if v != 0 && v%u.n == 0 {
			return strconv.FormatInt(v/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a number of bytes, as 64MiB, 512KiB or 1048576")
	}
	*b = byteSize(n * mult)
	return nil
}

// clientTLSFlags say how a client reaches orderers: plaintext, or TLS
// trusting the CAs of a PEM file (broadcast, deliver: --tls-ca and
// --tls-server-name; start: --peer-tls-ca, for its peers).
type clientTLSFlags struct {
	caFile     string
	serverName string
	cert, key  string // the client's certificate, for mutual TLS (broadcast, deliver)
}

// register defines --<prefix>tls-ca, and --<prefix>tls-server-name when
// addrFlag names the flag of the one address the client dials (a node
// reaching several peers expects the host of each peer's address).
func (f *clientTLSFlags) register(fs *flag.FlagSet, prefix, whose, addrFlag string) {
	fs.StringVar(&f.caFile, prefix+"tls-ca", "", "PEM `file` of the CAs that sign "+whose+" TLS certificates (enables TLS)")
	if addrFlag != "" {
		fs.StringVar(&f.serverName, prefix+"tls-server-name", "", "host name expected in "+whose+" TLS certificate (default: from "+addrFlag+")")
		fs.StringVar(&f.cert, prefix+"tls-cert", "", "PEM client certificate `file`, for an orderer that requires one (--tls-client-auth); requests are bound to it")
		fs.StringVar(&f.key, prefix+"tls-key", "", "PEM client key `file`")
	}
}

// credentials returns the client's transport credentials, and the
// CertHash of its client certificate (nil without one).
func (f *clientTLSFlags) credentials() (credentials.TransportCredentials, []byte, error) {
	if (f.cert == "") != (f.key == "") {
		return nil, nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.cert != "" && f.caFile == "" {
		return nil, nil, errors.New("--tls-cert needs --tls-ca")
	}
	var certs []tls.Certificate
	var hash []byte
	if f.cert != "" {
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		certs, hash = append(certs, cert), atomicbroadcast.CertHash(cert.Certificate[0])
	}
	creds, err := clientCredentials(f.caFile, f.serverName, certs...)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-ca: %w", err)
	}
	return creds, hash, nil
}

// kafkaFlags say how a node reaches Kafka: TLS and SASL (start).
type kafkaFlags struct {
	tls           bool
	tlsCA         string
	tlsCert       string
	tlsKey        string
	saslUser      string
	saslPassword  string
	saslPassFile  string
	saslMechanism string

	clientID        string
	strictTopic     bool
	maxMessageBytes byteSize
	maxInFlight     int
	linger          time.Duration
	validateAll     bool
}

func (f *kafkaFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.tls, "kafka-tls", false, "connect to Kafka over TLS (implied by the other --kafka-tls flags)")
	fs.StringVar(&f.tlsCA, "kafka-tls-ca", "", "PEM `file` of the CAs that sign the brokers' certificates (default: the system's)")
	fs.StringVar(&f.tlsCert, "kafka-tls-cert", "", "PEM client certificate `file` for Kafka mutual TLS")
	fs.StringVar(&f.tlsKey, "kafka-tls-key", "", "PEM client key `file` for Kafka mutual TLS")
	fs.StringVar(&f.saslUser, "kafka-sasl-user", "", "SASL user for Kafka")
	fs.StringVar(&f.saslPassword, "kafka-sasl-password", "", "SASL password for Kafka (visible in the process list: prefer --kafka-sasl-password-file)")
	fs.StringVar(&f.saslPassFile, "kafka-sasl-password-file", "", "`file` holding the SASL password for Kafka (one line)")
	fs.StringVar(&f.clientID, "kafka-client-id", "", "Kafka client ID, for the brokers' logs and quotas (default: kafkaconsensus)")
	fs.BoolVar(&f.strictTopic, "strict-topic", false, "refuse to start a channel whose existing topic has unsafe settings (default: log them and run)")
	fs.Var(&f.maxMessageBytes, "max-message-bytes", "max.message.bytes of the channel topics the node creates and checks, in `bytes` (default 16MiB); also the largest AbsoluteMaxBytes a config update may set")
	fs.IntVar(&f.maxInFlight, "max-in-flight", 0, "envelopes per channel handed to Kafka and not yet acknowledged (default 10000)")
	fs.DurationVar(&f.linger, "produce-linger", 0, "how long the producer waits to fill a batch (default 0: batches form while requests are in flight)")
	fs.BoolVar(&f.validateAll, "validate-envelopes", false, "validate every envelope consumed from Kafka (signature, Writers) and skip invalid ones on every node alike, whoever wrote them; costs a signature verification per envelope")
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
	if f.saslPassFile != "" {
		if f.saslPassword != "" {
			return nil, errors.New("--kafka-sasl-password and --kafka-sasl-password-file: give one")
		}
		b, err := os.ReadFile(f.saslPassFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-sasl-password-file: %w", err)
		}
		f.saslPassword = strings.TrimRight(string(b), "\r\n")
	}
	if f.saslUser == "" && f.saslPassword != "" {
		return nil, errors.New("--kafka-sasl-password needs --kafka-sasl-user")
	}
	if f.clientID != "" {
		opts = append(opts, consensus.WithClientID(f.clientID))
	}
	if f.strictTopic {
		opts = append(opts, consensus.WithStrictTopic())
	}
	if f.maxInFlight < 0 || f.linger < 0 {
		return nil, errors.New("--max-in-flight and --produce-linger must not be negative")
	}
	if f.maxInFlight > 0 {
		opts = append(opts, consensus.WithMaxInFlight(f.maxInFlight))
	}
	if f.linger > 0 {
		opts = append(opts, consensus.WithProduceLinger(f.linger))
	}
	if f.validateAll {
		opts = append(opts, consensus.WithEnvelopeValidation())
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

// limitFlags bound what clients can make a node hold (start); zero means
// the atomicbroadcast package's default.
type limitFlags struct {
	maxConnections int
	streamsPerConn int
	maxBroadcast   int
	maxDeliver     int
	streamBudget   byteSize
	budget         byteSize
	maxRecvMsgSize byteSize
	idleTimeout    time.Duration
	throttle       atomicbroadcast.Throttle
}

func (f *limitFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.maxConnections, "max-connections", atomicbroadcast.DefaultMaxConnections, "gRPC connections open at once; more wait to be accepted")
	fs.IntVar(&f.streamsPerConn, "max-streams-per-connection", atomicbroadcast.DefaultMaxConcurrentStreams, "streams one connection may open at once; more wait on the client")
	fs.IntVar(&f.maxBroadcast, "max-broadcast-streams", atomicbroadcast.DefaultMaxBroadcastStreams, "Broadcast streams served at once; more are refused (RESOURCE_EXHAUSTED)")
	fs.IntVar(&f.maxDeliver, "max-deliver-streams", atomicbroadcast.DefaultMaxDeliverStreams, "Deliver streams served at once; more are refused (RESOURCE_EXHAUSTED)")
	f.streamBudget, f.budget = atomicbroadcast.DefaultStreamBudget, atomicbroadcast.DefaultBudget
	fs.Var(&f.streamBudget, "broadcast-stream-budget", "`bytes` of envelopes one Broadcast stream may hold between reading and answering (64MiB, 512KiB...); a stream that holds that much is not read")
	fs.Var(&f.budget, "broadcast-budget", "`bytes` of envelopes all Broadcast streams together may hold between reading and answering; while they do, no stream is read")
	fs.Var(&f.maxRecvMsgSize, "max-recv-message-size", "largest gRPC message received, in `bytes` (default: the largest AbsoluteMaxBytes of the channels plus 1KiB)")
	fs.DurationVar(&f.idleTimeout, "broadcast-idle-timeout", atomicbroadcast.DefaultIdleTimeout, "a Broadcast stream that receives no envelope and sends no answer for that long is closed")
	fs.Float64Var(&f.throttle.ClientRate, "throttle-client-rate", 0, "envelopes per second one client identity may have ordered; more are answered SERVICE_UNAVAILABLE (0: no limit)")
	fs.Float64Var(&f.throttle.OrgRate, "throttle-org-rate", 0, "envelopes per second the clients of one organisation (MSP ID) may have ordered together (0: no limit)")
}

// check rejects negative limits.
func (f *limitFlags) check() error {
	switch {
	case f.maxConnections < 0, f.streamsPerConn < 0, f.maxBroadcast < 0, f.maxDeliver < 0:
		return errors.New("--max-connections, --max-streams-per-connection, --max-broadcast-streams and --max-deliver-streams must not be negative")
	case f.streamBudget < 0, f.budget < 0, f.maxRecvMsgSize < 0, f.idleTimeout < 0:
		return errors.New("budgets, sizes and timeouts must not be negative")
	case f.throttle.ClientRate < 0, f.throttle.OrgRate < 0:
		return errors.New("--throttle-client-rate and --throttle-org-rate must not be negative")
	}
	return nil
}

// serverOpts returns the Server's options of the flags set.
func (f *limitFlags) serverOpts() []atomicbroadcast.Option {
	var opts []atomicbroadcast.Option
	if f.streamBudget != 0 {
		opts = append(opts, atomicbroadcast.WithStreamBudget(int64(f.streamBudget)))
	}
	if f.budget != 0 {
		opts = append(opts, atomicbroadcast.WithBudget(int64(f.budget)))
	}
	if f.maxBroadcast != 0 || f.maxDeliver != 0 {
		b, d := f.maxBroadcast, f.maxDeliver
		if b == 0 {
			b = atomicbroadcast.DefaultMaxBroadcastStreams
		}
		if d == 0 {
			d = atomicbroadcast.DefaultMaxDeliverStreams
		}
		opts = append(opts, atomicbroadcast.WithMaxStreams(b, d))
	}
	if f.idleTimeout != 0 {
		opts = append(opts, atomicbroadcast.WithIdleTimeout(f.idleTimeout))
	}
	return append(opts, atomicbroadcast.WithThrottle(f.throttle))
}
