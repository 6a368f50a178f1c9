package main

import (
	"context"
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
}

func runKafka(ctx context.Context, args []string, out io.Writer) error {
	var c kafkaConfig
	fs := newFlagSet("kafka", "[--listen 127.0.0.1:9092] [--brokers 3] [--data DIR]")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9092", "`address` of the first broker; broker i listens on port+i (port 0: random ports)")
	fs.IntVar(&c.brokers, "brokers", 3, "number of brokers")
	fs.StringVar(&c.dataDir, "data", "", "`directory` that persists topics and logs across restarts (default: memory only)")
	fs.BoolVar(&c.verbose, "v", false, "log the brokers' activity")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	k, err := startKafka(c)
	if err != nil {
		return err
	}
	defer k.Close()
	fmt.Fprintf(out, "kafka brokers: %s\n", strings.Join(k.Addrs(), ","))
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
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %q: the embedded Kafka listens on loopback only", c.listen)
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
	opts := []consensustest.KafkaOpt{consensustest.WithSeedPorts(ports...)}
	if c.dataDir != "" {
		if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
			return nil, err
		}
		opts = append(opts, consensustest.WithDataDir(c.dataDir))
	}
	if c.verbose {
		opts = append(opts, consensustest.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "kafka")))
	}
	return consensustest.StartKafka(opts...)
}
