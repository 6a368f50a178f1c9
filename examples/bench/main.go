// Command bench measures the chain against raw franz-go on the same
// embedded Kafka cluster (3 brokers on 127.0.0.1 by default), side by side
// in one process, and prints a table, or JSON lines with -json.
//
//	go run ./examples/bench
//	go run ./examples/bench -patterns pipelined -nodes 1 -unsigned -n 200000 -json
//	go run ./examples/bench -sweep 1,4,16,64 -chart chart.svg
//
// The patterns (-patterns) are:
//
//   - one-at-a-time: one caller, one envelope in flight: Chain.Order against
//     kgo's ProduceSync of the same record;
//   - callers: -callers goroutines (or each count of -sweep) doing the
//     same, on the nodes in turn;
//   - pipelined: one caller keeping -inflight envelopes in flight on node
//     0 (Chain.OrderAsync against kgo's Produce).
//
// For each, rounds of the chain (Order until every node appended the
// envelopes to its ledger) alternate with rounds of raw kgo (produce
// records of the same bytes with the chain's settings until as many
// consumers as nodes read them), so that both see the same machine load.
// Each side's latency is from the call until Kafka acknowledged the
// envelope; its CPU time per envelope is the process's CPU time (user +
// system, the embedded brokers' included) across its rounds. Every ratio is
// the chain's figure over raw franz-go's: on a shared machine only the
// ratios mean something, the absolute figures do not carry to another one.
//
// Envelopes are filled with random bytes, which the producer's compression
// cannot shrink (-payload zero pads them with zeros instead). -cpuprofile
// profiles the chain alone: after the side-by-side measurements, each
// pattern is run again on the chain only, with the profile on.
//
// The harness is internal/chainbench, shared with the ChainVsRaw benchmark
// of package consensus.
//
// # The orderer's CPU per envelope (-ingress)
//
//	go run ./examples/bench -ingress
//	go run ./examples/bench -ingress -ledger file -ingress-runs 9
//	go run ./examples/bench -ingress -ingress-nodes 3 -json
//	go run ./examples/bench -ingress -cpuprofile orderer.pprof
//
// -ingress measures instead what an ordering node costs per envelope
// served through Broadcast, against the one cost validation cannot
// avoid: an ECDSA P-256 signature verification. This process is the
// node (the atomicbroadcast.Server on loopback gRPC, its chain, its
// ledger) and nothing else: the embedded Kafka (-ingress-brokers, 1 by
// default), the other nodes (-ingress-nodes, 1 by default) and the
// clients run in child processes, this binary started again. The clients
// sign their envelopes (1 KiB with -size, random data, a client of the
// channel's application organisation) before each run, then send them on
// -ingress-streams Broadcast streams (32), one connection each unless
// -ingress-conns, each stream waiting for an answer before it sends its
// next envelope. A run is -ingress-n envelopes (20,000).
//
// For each of -ingress-runs runs (5) it prints the node process's CPU
// time (getrusage: user + system, its garbage collection included) from
// the first envelope sent until the last acknowledged is in its ledger,
// per envelope; the CPU time of one verification (msp.Identity.Verify of
// such an envelope, timed over 2000 on one goroutine before and after the
// run); and their ratio, then the medians and the ratios' spread. Only
// the ratio carries to another machine. -ingress-format kafkaconsensus
// uses this project's channel configuration instead of Fabric's config
// tree (the default), -ledger file a file ledger that syncs every block,
// -cpuprofile profiles the node over one more run. The harness is
// internal/ingressbench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/internal/chainbench"
	"github.com/kafkaconsensus/kafkaconsensus/internal/ingressbench"
)

var defaults = chainbench.DefaultConfig()

var (
	patterns = flag.String("patterns", strings.Join([]string{oneAtATime, callersPat, pipelined}, ","), "patterns to measure, in order")
	total    = flag.Int("n", 100000, "envelopes per side of the callers and pipelined patterns")
	totalOne = flag.Int("n-one", 4000, "envelopes per side of one-at-a-time, and at most per caller of callers")
	rounds   = flag.Int("rounds", 4, "rounds per side and pattern; chain and raw rounds alternate")
	callers  = flag.Int("callers", 64, "concurrent callers of the callers pattern")
	sweep    = flag.String("sweep", "", "comma-separated caller counts measured by the callers pattern instead of -callers, e.g. 1,4,16,64")
	inFlight = flag.Int("inflight", 1000, "envelopes in flight of the pipelined pattern")
	nodes    = flag.Int("nodes", defaults.Nodes, "ordering nodes (and raw clients)")
	brokers  = flag.Int("brokers", 3, "embedded Kafka brokers")
	ledgerK  = flag.String("ledger", string(defaults.Ledger), "nodes' ledger: memory or file (fsync every block, in a temporary directory)")
	unsigned = flag.Bool("unsigned", false, "leave blocks unsigned")
	validate = flag.Bool("validate-all", false, "every node validates every envelope it consumes (consensus.WithEnvelopeValidation)")
	payload  = flag.String("payload", string(defaults.Payload), "envelope filling: random (incompressible) or zero")
	linger   = flag.Duration("linger", defaults.Linger, "producer linger of both sides")
	size     = flag.Int("size", defaults.EnvSize, "envelope size in bytes (payload + signature)")
	maxCount = flag.Uint("maxcount", uint(defaults.MaxMessageCount), "batch MaxMessageCount")
	prefer   = flag.Uint("preferred", uint(defaults.PreferredMaxBytes), "batch PreferredMaxBytes")
	timeout  = flag.Duration("timeout", defaults.BatchTimeout, "batch timeout")
	jsonOut  = flag.Bool("json", false, "print one JSON object per pattern per line instead of a table")
	chart    = flag.String("chart", "", "write a chart of the results to this file (.svg or .png)")
	cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the chain alone to this file")
	deadline = flag.Duration("deadline", 30*time.Minute, "give up after this long")
	latencyN = flag.Int("ledger-latency", 50, "after the patterns, envelopes sent one at a time under light load to measure the time from acknowledgement to every node's ledger (0 skips it)")
	channels = flag.Int("channels", 0, "measure one node serving this many channels instead of the patterns (see -busy)")
	busy     = flag.Int("busy", 100, "with -channels: channels sharing the load, against one channel carrying it all")
)

// pattern is one way of sending envelopes.
type pattern struct {
	name              string
	callers, inFlight int
}

func main() {
	if child, err := ingressbench.RunChild(); child {
		// -ingress runs its Kafka, other nodes and clients in this binary
		// started again.
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	flag.Parse()
	log.SetFlags(0)
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// harnessConfig is the chainbench configuration the flags give.
func harnessConfig() chainbench.Config {
	return chainbench.Config{
		Nodes:             *nodes,
		Brokers:           *brokers,
		Ledger:            chainbench.LedgerKind(*ledgerK),
		Unsigned:          *unsigned,
		ValidateAll:       *validate,
		Payload:           chainbench.Payload(*payload),
		Linger:            *linger,
		EnvSize:           *size,
		MaxMessageCount:   uint32(*maxCount),
		PreferredMaxBytes: uint32(*prefer),
		BatchTimeout:      *timeout,
	}
}

// measurePatterns measures each pattern side by side and returns the
// records, printed as JSON lines as they come with -json.
func measurePatterns(ctx context.Context, out io.Writer, h *chainbench.Harness, s setup, ps []pattern) ([]record, error) {
	var recs []record
	for _, p := range ps {
		n := p.envelopes()
		r, err := h.Measure(ctx, chainbench.Run{Total: n, Round: max(n / *rounds, 1), Callers: p.callers, InFlight: p.inFlight})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		rec := newRecord(p, s, n, r)
		recs = append(recs, rec)
		if *jsonOut {
			if err := writeJSON(out, rec); err != nil {
				return nil, err
			}
		}
	}
	return recs, nil
}

// parsePatterns returns the patterns that list names, the callers pattern
// once per caller count of sweep (or with callers if sweep is empty).
func parsePatterns(list, sweep string, callers, inFlight int) ([]pattern, error) {
	counts := []int{callers}
	if sweep != "" {
		counts = nil
		for f := range strings.SplitSeq(sweep, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return nil, fmt.Errorf("-sweep %q: want positive caller counts separated by commas", sweep)
			}
			counts = append(counts, n)
		}
	}
	var ps []pattern
	for name := range strings.SplitSeq(list, ",") {
		switch name = strings.TrimSpace(name); name {
		case oneAtATime:
			ps = append(ps, pattern{name: name, callers: 1})
		case callersPat:
			for _, n := range counts {
				if n < 1 {
					return nil, fmt.Errorf("-callers %d: want at least 1", n)
				}
				ps = append(ps, pattern{name: name, callers: n})
			}
		case pipelined:
			if inFlight < 1 {
				return nil, fmt.Errorf("-inflight %d: want at least 1", inFlight)
			}
			ps = append(ps, pattern{name: name, inFlight: inFlight})
		default:
			return nil, fmt.Errorf("-patterns: unknown pattern %q (want %s, %s or %s)", name, oneAtATime, callersPat, pipelined)
		}
	}
	return ps, nil
}

// envelopes is how many envelopes per side p sends: -n, but at most -n-one
// per caller for the patterns of blocking callers, which are slow.
func (p pattern) envelopes() int {
	if p.callers > 0 {
		return min(*total, *totalOne*p.callers)
	}
	return *total
}

func run(out io.Writer) error {
	if *ingress {
		ctx, cancel := context.WithTimeout(context.Background(), *deadline)
		defer cancel()
		return runIngress(ctx, out)
	}
	if *channels > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), *deadline)
		defer cancel()
		return runChannels(ctx, out, *channels, *busy, *total, *inFlight)
	}
	ps, err := parsePatterns(*patterns, *sweep, *callers, *inFlight)
	if err != nil {
		return err
	}
	if *total < 1 || *totalOne < 1 || *rounds < 1 {
		return errors.New("-n, -n-one and -rounds must be at least 1")
	}
	s := setup{Nodes: *nodes, Brokers: *brokers, Ledger: *ledgerK, Signed: !*unsigned, Payload: *payload,
		EnvSize: *size, LingerMS: float64(*linger) / float64(time.Millisecond)}

	ctx, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()
	h, err := chainbench.Start(ctx, harnessConfig())
	if err != nil {
		return err
	}
	defer h.Close()

	if !*jsonOut {
		fmt.Fprintln(out, s)
	}
	recs, err := measurePatterns(ctx, out, h, s, ps)
	if err != nil {
		return err
	}
	if !*jsonOut {
		if err := writeTable(out, recs); err != nil {
			return err
		}
	}
	if *latencyN > 0 {
		if err := measureLedgerLatency(ctx, out, h, *latencyN); err != nil {
			return err
		}
	}
	if *chart != "" {
		header := []string{
			"kafkaconsensus chain vs raw franz-go, side by side in one process on an embedded Kafka; ratios are chain/raw",
			fmt.Sprintf("%s, %s", machine(), time.Now().UTC().Format(time.DateOnly)),
			s.String(),
		}
		if err := writeChart(*chart, header, recs); err != nil {
			return err
		}
	}
	if *cpuProf != "" {
		if err := profileChain(ctx, h, *cpuProf, ps); err != nil {
			return err
		}
	}
	return nil
}

// profileChain runs each pattern again on the chain alone with a CPU
// profile written to path.
func profileChain(ctx context.Context, h *chainbench.Harness, path string, ps []pattern) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	for _, p := range ps {
		n := p.envelopes()
		if _, err := h.Measure(ctx, chainbench.Run{Total: n, Round: max(n / *rounds, 1), Callers: p.callers, InFlight: p.inFlight, ChainOnly: true}); err != nil {
			pprof.StopCPUProfile()
			f.Close()
			return fmt.Errorf("profiling %s: %w", p.name, err)
		}
	}
	pprof.StopCPUProfile()
	return f.Close()
}
