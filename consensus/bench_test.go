package consensus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/internal/chainbench"
)

// The chain and raw franz-go side by side on one embedded 3-broker cluster:
//
//	go test ./consensus -run '^$' -bench ChainVsRaw/callers -benchtime 40000x
//	go test ./consensus -run '^$' -bench ChainVsRaw/pipelined -benchtime 200000x
//
// Each sub-benchmark alternates rounds of the chain (Order until every
// node's ledger holds the envelopes) and of raw kgo (produce with the
// chain's settings until three consumers have read the records), so that
// the ratio compares runs of the same process under the same noise. Rounds
// are 10000 envelopes (callers) or 25000 (pipelined), so b.N should be a
// few of them. ns/op and allocs/op are the chain's per envelope (the
// embedded brokers' work included), env/s the chain's throughput, raw-env/s
// raw kgo's, ratio-vs-raw their ratio over all rounds, median-round-ratio
// the median of the ratios of each pair of rounds (less sensitive to bursts
// of load from elsewhere), and p50-ms/p99-ms the latency of Order. The
// harness is internal/chainbench, shared with examples/bench.

const (
	benchInFlight = 1000
	benchCallers  = 64
)

func BenchmarkChainVsRaw(b *testing.B) {
	cfg := chainbench.DefaultConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h, err := chainbench.Start(ctx, cfg)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	for _, p := range []struct {
		name                     string
		callers, inFlight, round int
	}{
		{fmt.Sprintf("callers=%d", benchCallers), benchCallers, 0, 10000},
		{fmt.Sprintf("pipelined=%d", benchInFlight), 0, benchInFlight, 25000},
	} {
		b.Run(p.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.ReportAllocs()
			b.ResetTimer()
			b.StopTimer() // the harness times the chain's rounds only
			r, err := h.Measure(ctx, chainbench.Run{Total: b.N, Round: p.round, Callers: p.callers, InFlight: p.inFlight, Timer: b})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.Chain, "env/s")
			b.ReportMetric(r.Raw, "raw-env/s")
			b.ReportMetric(r.Ratio(), "ratio-vs-raw")
			b.ReportMetric(r.MedianRoundRatio, "median-round-ratio")
			b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
		})
	}
}
