// Command bench measures the chain against raw franz-go on the same
// embedded Kafka cluster (3 brokers on 127.0.0.1) and prints a table.
//
//	go run ./examples/bench -n 20000 -callers 64
//
// Two patterns are measured: -callers goroutines that each send an
// envelope and wait for its acknowledgement before the next, and a single
// pipelined caller keeping -inflight envelopes in flight. For each, rounds
// of the chain (Order until every one of the 3 nodes appended the
// envelopes to its memory ledger) alternate with rounds of raw kgo (produce
// records of the same bytes with the chain's settings until 3 consumers
// read them), so that both see the same machine load. The ratio is chain
// throughput over raw throughput. The harness is internal/chainbench,
// shared with the ChainVsRaw benchmark of package consensus.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"text/tabwriter"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/internal/chainbench"
)

var defaults = chainbench.DefaultConfig()

var (
	total    = flag.Int("n", 20000, "envelopes per pattern and per side")
	callers  = flag.Int("callers", 64, "concurrent callers of the first pattern (0 skips it)")
	inFlight = flag.Int("inflight", 1000, "envelopes in flight of the pipelined pattern (0 skips it)")
	round    = flag.Int("round", 10000, "envelopes per round; chain and raw rounds alternate")
	size     = flag.Int("size", defaults.EnvSize, "envelope size in bytes (payload + signature)")
	maxCount = flag.Uint("maxcount", uint(defaults.MaxMessageCount), "batch MaxMessageCount")
	prefer   = flag.Uint("preferred", uint(defaults.PreferredMaxBytes), "batch PreferredMaxBytes")
	timeout  = flag.Duration("timeout", defaults.BatchTimeout, "batch timeout")
	deadline = flag.Duration("deadline", 5*time.Minute, "give up after this long")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	ctx, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()
	// With no testing.TB, the testutil helpers panic on error.
	h, err := chainbench.Start(ctx, chainbench.Config{
		EnvSize:           *size,
		MaxMessageCount:   uint32(*maxCount),
		PreferredMaxBytes: uint32(*prefer),
		BatchTimeout:      *timeout,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\tenvelopes\tchain env/s\traw env/s\tratio\tchain p50\tchain p99\t")
	for _, p := range []struct {
		name              string
		callers, inFlight int
	}{
		{fmt.Sprintf("%d callers", *callers), *callers, 0},
		{fmt.Sprintf("pipelined %d", *inFlight), 0, *inFlight},
	} {
		if p.callers == 0 && p.inFlight == 0 {
			continue
		}
		r, err := h.Measure(ctx, chainbench.Run{Total: *total, Round: *round, Callers: p.callers, InFlight: p.inFlight})
		if err != nil {
			log.Fatalf("%s: %v", p.name, err)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%v\t%v\t\n", p.name, *total, r.Chain, r.Raw, r.Ratio(),
			r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
	}
	tw.Flush()
}
