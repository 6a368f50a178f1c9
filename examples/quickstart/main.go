// Command quickstart orders signed envelopes through several orderer nodes
// sharing one Kafka partition, with nothing to install: it starts an
// embedded three-broker Kafka on 127.0.0.1, three orderer nodes with file
// ledgers, an organisation with a client identity, and concurrent clients
// that order envelopes through the nodes. Half-way through it halts one node
// and restarts it from its ledger. At the end it checks that every node
// wrote the same blocks and that every acknowledged envelope is in exactly
// one of them, and prints a summary.
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -n 50000 -clients 64 -v
//	go run ./examples/quickstart -brokers kafka1:9092,kafka2:9092 -data ./ledgers
//
// It exits with status 1, saying why, when the ledgers differ or an
// envelope is missing or duplicated.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "run 'quickstart -h' for the flags")
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	envelopes       int
	nodes           int
	clients         int
	size            int
	batchTimeout    time.Duration
	maxMessageCount int
	brokers         []string
	dataDir         string
	restart         bool
	verbose         bool
}

// maxSize bounds -size so that an envelope stays well below the channel's
// AbsoluteMaxBytes (absoluteMaxBytes) and Kafka's default record limit.
const maxSize = 256 << 10

// errUsage is matched, through errors.Is, by every error in the command
// line.
var errUsage = errors.New("invalid command line")

// usageError is an error in the command line.
type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() error        { return e.err }
func (e usageError) Is(target error) bool { return target == errUsage }

func parseFlags(args []string, stdout io.Writer) (config, error) {
	var c config
	var brokers string
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&c.envelopes, "n", 10000, "number of envelopes to order")
	fs.IntVar(&c.nodes, "nodes", 3, "number of orderer nodes")
	fs.IntVar(&c.clients, "clients", 16, "number of concurrent clients, spread over the nodes")
	fs.IntVar(&c.size, "size", 256, "payload bytes per envelope")
	fs.DurationVar(&c.batchTimeout, "batch-timeout", 100*time.Millisecond, "channel batch timeout: how long a block waits to fill")
	fs.IntVar(&c.maxMessageCount, "max-message-count", 100, "channel batch size: most envelopes in a block")
	fs.StringVar(&brokers, "brokers", "", "comma-separated `host:port` list of an existing Kafka to use instead of the embedded one")
	fs.StringVar(&c.dataDir, "data", "", "keep the ledgers in `dir` instead of a temporary directory")
	fs.BoolVar(&c.restart, "restart", true, "halt and restart one node half-way through")
	fs.BoolVar(&c.verbose, "v", false, "log at info level (default: warnings only)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "Usage: quickstart [flags]")
			fs.PrintDefaults()
		}
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if brokers != "" {
		for _, b := range strings.Split(brokers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.brokers = append(c.brokers, b)
			}
		}
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	if c.envelopes < 1 {
		errs = append(errs, fmt.Errorf("-n %d: need at least 1 envelope", c.envelopes))
	}
	if c.nodes < 1 {
		errs = append(errs, fmt.Errorf("-nodes %d: need at least 1 node", c.nodes))
	}
	if c.clients < 1 {
		errs = append(errs, fmt.Errorf("-clients %d: need at least 1 client", c.clients))
	}
	if c.size < 0 || c.size > maxSize {
		errs = append(errs, fmt.Errorf("-size %d: must be between 0 and %d bytes", c.size, maxSize))
	}
	if c.batchTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-batch-timeout %v: must be positive", c.batchTimeout))
	}
	if c.maxMessageCount < 1 || c.maxMessageCount > 1<<20 {
		errs = append(errs, fmt.Errorf("-max-message-count %d: must be between 1 and %d", c.maxMessageCount, 1<<20))
	}
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// run is the whole program: parse args, set up Kafka and the nodes, order
// the envelopes, verify the ledgers and print the summary to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	net, err := startNetwork(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer net.close()

	prog := newProgress(stdout, cfg.envelopes)
	prog.printf("ordering %d envelopes of %d bytes from %d clients through %d orderer nodes on channel %s (Kafka %s)",
		cfg.envelopes, cfg.size, cfg.clients, cfg.nodes, net.channel, net.kafkaDesc)
	res, err := generateLoad(ctx, cfg, net, prog)
	prog.stop()
	if err != nil {
		return err
	}
	rep, err := consensustest.CheckAgreement(net.ledgers(), res.sent)
	if rep != nil {
		printSummary(stdout, cfg, net, res, rep)
	}
	if err != nil {
		return fmt.Errorf("verification failed: %w", err)
	}
	if len(net.nodes) > 1 {
		fmt.Fprintf(stdout, "verified: the %d ledgers are identical block by block, and every acknowledged envelope is in exactly one block\n", len(net.nodes))
	} else {
		fmt.Fprintln(stdout, "verified: every acknowledged envelope is in exactly one block")
	}
	return nil
}
