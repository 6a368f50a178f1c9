package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

// kafkaConfig is what the kafka subcommand runs.
type kafkaConfig struct {
	listen  string // host:port of the first broker
	brokers int
	dataDir string
	verbose bool

	saslUser      string
	saslPassword  string
	saslMechanism string
	tlsCAOut      string // with TLS: the file the CA certificate is written to
}

func runKafka(ctx context.Context, args []string, out io.Writer) error {
	var c kafkaConfig
	fs := newFlagSet("kafka", "[--listen 127.0.0.1:9092] [--brokers 3] [--data DIR] [--tls-ca-out FILE] [--sasl-user USER --sasl-password PASS]")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9092", "`address` of the first broker, 127.0.0.1 or one interface of this host (open to anyone who reaches it: add --sasl-user); broker i listens on port+i (port 0: random ports)")
	fs.IntVar(&c.brokers, "brokers", 3, "number of brokers")
	fs.StringVar(&c.dataDir, "data", "", "`directory` that persists topics and logs across restarts (default: memory only)")
	fs.BoolVar(&c.verbose, "v", false, "log the brokers' activity")
	fs.StringVar(&c.tlsCAOut, "tls-ca-out", "", "require TLS, with a certificate of a throwaway CA whose certificate is written to `file` (for start --kafka-tls-ca)")
	fs.StringVar(&c.saslUser, "sasl-user", "", "require SASL authentication as this `user` (with --sasl-password)")
	fs.StringVar(&c.saslPassword, "sasl-password", "", "SASL `password` of --sasl-user")
	fs.StringVar(&c.saslMechanism, "sasl-mechanism", "PLAIN", "SASL mechanism of --sasl-user: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	k, err := startKafka(c)
	if err != nil {
		return err
	}
	defer k.Close()
	fmt.Fprintf(out, "kafka brokers: %s\n", strings.Join(k.Addrs(), ","))
	if c.tlsCAOut != "" {
		fmt.Fprintf(out, "kafka TLS CA: %s\n", c.tlsCAOut)
	}
	if c.saslUser != "" {
		fmt.Fprintf(out, "kafka SASL: %s user %s\n", strings.ToUpper(c.saslMechanism), c.saslUser)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "kafka: shutting down")
	return nil
}

// startKafka starts the embedded cluster of c.
func startKafka(c kafkaConfig) (*consensustest.Kafka, error) {
	host, portStr, err := net.SplitHostPort(c.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", c.listen, err)
	}
	// Other hosts than 127.0.0.1 are for nodes on other machines or
	// network namespaces.
	otherHost := host != "localhost" && host != "127.0.0.1"
	if ip := net.ParseIP(host); otherHost && (ip == nil || ip.IsUnspecified()) {
		return nil, fmt.Errorf("--listen %q: want 127.0.0.1 or the IP address of one interface (the brokers advertise it)", c.listen)
	}
	if otherHost && c.tlsCAOut != "" {
		return nil, fmt.Errorf("--listen %q: the throwaway TLS certificate of --tls-ca-out is for 127.0.0.1 only", c.listen)
	}
	base, err := strconv.Atoi(portStr)
	if err != nil || base < 0 || base+c.brokers-1 > 65535 {
		return nil, fmt.Errorf("--listen %q: bad port", c.listen)
	}
	if c.brokers < 1 {
		return nil, fmt.Errorf("--brokers %d: need at least one", c.brokers)
	}
	ports := make([]int, c.brokers)
	for i := range ports {
		if base != 0 {
			ports[i] = base + i
		}
	}
	opts := []consensustest.KafkaOption{consensustest.WithSeedPorts(ports...)}
	if otherHost {
		opts = append(opts, consensustest.WithListenHost(host))
	}
	if c.dataDir != "" {
		if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
			return nil, err
		}
		opts = append(opts, consensustest.WithDataDir(c.dataDir))
	}
	if c.verbose {
		opts = append(opts, consensustest.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "kafka")))
	}
	if (c.saslUser == "") != (c.saslPassword == "") {
		return nil, errors.New("--sasl-user and --sasl-password go together")
	}
	if c.saslUser != "" {
		opts = append(opts, consensustest.WithSASLUser(c.saslMechanism, c.saslUser, c.saslPassword))
	}
	if c.tlsCAOut != "" {
		certs, err := consensustest.SelfSignedTLS()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(c.tlsCAOut, certs.CAPEM, 0o644); err != nil {
			return nil, fmt.Errorf("--tls-ca-out: %w", err)
		}
		opts = append(opts, consensustest.WithTLS(certs.Server))
	}
	return consensustest.StartKafka(opts...)
}
