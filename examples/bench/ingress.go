package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/internal/ingressbench"
)

var ingressDefaults = ingressbench.DefaultConfig()

var (
	ingress        = flag.Bool("ingress", false, "measure the orderer's CPU per envelope through Broadcast against one ECDSA verification, instead of the patterns (see -ingress-*)")
	ingressNodes   = flag.Int("ingress-nodes", ingressDefaults.Nodes, "with -ingress: ordering nodes (the others run in a child process)")
	ingressBrokers = flag.Int("ingress-brokers", ingressDefaults.Brokers, "with -ingress: embedded Kafka brokers (in a child process)")
	ingressN       = flag.Int("ingress-n", 20000, "with -ingress: envelopes per run")
	ingressRuns    = flag.Int("ingress-runs", 5, "with -ingress: runs")
	ingressStreams = flag.Int("ingress-streams", ingressDefaults.Streams, "with -ingress: Broadcast streams, one envelope in flight each")
	ingressConns   = flag.Int("ingress-conns", 0, "with -ingress: client connections the streams share (0: one per stream)")
	ingressFormat  = flag.String("ingress-format", string(ingressDefaults.Format), "with -ingress: channel configuration format: fabric or kafkaconsensus")
)

// ingressRecord is the JSON line of -ingress -json: CPU times in
// microseconds, the ratios of each run and their median.
type ingressRecord struct {
	Nodes          int       `json:"nodes"`
	Brokers        int       `json:"brokers"`
	Ledger         string    `json:"ledger"`
	Format         string    `json:"format"`
	Streams        int       `json:"streams"`
	Conns          int       `json:"conns"`
	EnvSize        int       `json:"env_size"`
	Envelopes      int       `json:"envelopes_per_run"`
	OrdererCPUUS   []float64 `json:"orderer_cpu_us_per_env"`
	VerifyCPUUS    []float64 `json:"verify_cpu_us"`
	Ratios         []float64 `json:"ratios"`
	MedianRatio    float64   `json:"median_ratio"`
	EnvPerS        []float64 `json:"env_per_s"`
	MedianOrderer  float64   `json:"median_orderer_cpu_us_per_env"`
	MedianVerifyUS float64   `json:"median_verify_cpu_us"`
}

// ingressConfig is the ingressbench configuration the flags give.
func ingressConfig() ingressbench.Config {
	c := ingressbench.DefaultConfig()
	c.Nodes, c.Brokers, c.Ledger = *ingressNodes, *ingressBrokers, ingressbench.LedgerKind(*ledgerK)
	c.Format = ingressbench.Format(*ingressFormat)
	c.Streams, c.Conns, c.EnvSize = *ingressStreams, *ingressConns, *size
	c.MaxMessageCount, c.PreferredMaxBytes, c.BatchTimeout = uint32(*maxCount), uint32(*prefer), *timeout
	return c
}

// runIngress measures -ingress-runs runs of -ingress-n envelopes and
// prints each run and the medians, then profiles one more run with
// -cpuprofile.
func runIngress(ctx context.Context, out io.Writer) error {
	if *ingressN < 1 || *ingressRuns < 1 {
		return fmt.Errorf("-ingress-n %d, -ingress-runs %d: want at least 1", *ingressN, *ingressRuns)
	}
	cfg := ingressConfig()
	h, err := ingressbench.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	rec := ingressRecord{Nodes: cfg.Nodes, Brokers: cfg.Brokers, Ledger: string(cfg.Ledger), Format: string(cfg.Format),
		Streams: cfg.Streams, Conns: cfg.Conns, EnvSize: cfg.EnvSize, Envelopes: *ingressN}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !*jsonOut {
		fmt.Fprintf(out, "ingress: %d node(s), %d broker(s), %s ledger, %s configuration, %d streams on %s, %d-byte signed envelopes, %d per run\n",
			cfg.Nodes, cfg.Brokers, cfg.Ledger, cfg.Format, cfg.Streams, connsString(cfg), cfg.EnvSize, *ingressN)
		fmt.Fprintln(tw, "run\torderer CPU/envelope\tECDSA verify\tratio\tenvelopes/s\t")
	}
	for i := range *ingressRuns {
		r, err := h.Measure(ctx, *ingressN)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		rec.add(r)
		if !*jsonOut {
			fmt.Fprintf(tw, "%d\t%.1fµs\t%.1fµs\t%.2f\t%.0f\t\n", i+1, us(r.OrdererCPU), us(r.VerifyCPU), r.Ratio(), rec.EnvPerS[i])
		}
	}
	rec.MedianRatio, rec.MedianOrderer, rec.MedianVerifyUS = median(rec.Ratios), median(rec.OrdererCPUUS), median(rec.VerifyCPUUS)
	if *jsonOut {
		if err := json.NewEncoder(out).Encode(rec); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(tw, "median\t%.1fµs\t%.1fµs\t%.2f (%.2f–%.2f)\t\t\n", rec.MedianOrderer, rec.MedianVerifyUS, rec.MedianRatio, slices.Min(rec.Ratios), slices.Max(rec.Ratios))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if *cpuProf != "" {
		return profileIngress(ctx, h, *cpuProf, *ingressN)
	}
	return nil
}

func (rec *ingressRecord) add(r ingressbench.Result) {
	rec.OrdererCPUUS = append(rec.OrdererCPUUS, us(r.OrdererCPU))
	rec.VerifyCPUUS = append(rec.VerifyCPUUS, us(r.VerifyCPU))
	rec.Ratios = append(rec.Ratios, r.Ratio())
	rec.EnvPerS = append(rec.EnvPerS, float64(r.Envelopes)/r.Wall.Seconds())
}

func connsString(c ingressbench.Config) string {
	if c.Conns == 0 || c.Conns >= c.Streams {
		return "a connection each"
	}
	if c.Conns == 1 {
		return "1 connection"
	}
	return fmt.Sprintf("%d connections", c.Conns)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// profileIngress measures one more run of n envelopes with a CPU profile
// of the orderer process, over the sending alone, written to path.
func profileIngress(ctx context.Context, h *ingressbench.Harness, path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = h.MeasureProfiled(ctx, n, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
