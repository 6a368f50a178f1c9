package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/internal/chainbench"
)

// Pattern names, as -patterns takes them and the JSON lines report them.
const (
	oneAtATime = "one-at-a-time"
	callersPat = "callers"
	pipelined  = "pipelined"
)

// setup is what every measurement of a run shares.
type setup struct {
	Nodes   int    `json:"nodes"`
	Brokers int    `json:"brokers"`
	Ledger  string `json:"ledger"`
	Signed  bool   `json:"signed"`
	Payload string `json:"payload"`
	EnvSize int    `json:"env_size"`
	// LingerMS is the producer linger of both sides in milliseconds.
	LingerMS float64 `json:"linger_ms"`
}

func (s setup) String() string {
	signed := "signed"
	if !s.Signed {
		signed = "unsigned"
	}
	return fmt.Sprintf("%d nodes, %d brokers, %s ledger, %s blocks, %d-byte %s envelopes, linger %v",
		s.Nodes, s.Brokers, s.Ledger, signed, s.EnvSize, s.Payload, time.Duration(s.LingerMS*float64(time.Millisecond)))
}

// record is one JSON line: a pattern measured side by side. Throughputs are
// envelopes per second, latencies and CPU times microseconds; every ratio
// is the chain's figure over raw franz-go's.
type record struct {
	Pattern  string `json:"pattern"`
	Callers  int    `json:"callers,omitempty"`
	InFlight int    `json:"in_flight,omitempty"`
	setup
	Envelopes        int     `json:"envelopes"`
	ChainEnvPerS     float64 `json:"chain_env_per_s"`
	RawEnvPerS       float64 `json:"raw_env_per_s"`
	Ratio            float64 `json:"ratio"`
	MedianRoundRatio float64 `json:"median_round_ratio"`
	ChainP50US       float64 `json:"chain_p50_us"`
	ChainP99US       float64 `json:"chain_p99_us"`
	RawP50US         float64 `json:"raw_p50_us"`
	RawP99US         float64 `json:"raw_p99_us"`
	P50Ratio         float64 `json:"p50_ratio"`
	P99Ratio         float64 `json:"p99_ratio"`
	ChainCPUUSPerEnv float64 `json:"chain_cpu_us_per_env"`
	RawCPUUSPerEnv   float64 `json:"raw_cpu_us_per_env"`
	CPURatio         float64 `json:"cpu_ratio"`
}

// newRecord reports r, a measurement of pattern p with n envelopes per side.
func newRecord(p pattern, s setup, n int, r chainbench.Result) record {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return record{
		Pattern:          p.name,
		Callers:          p.callers,
		InFlight:         p.inFlight,
		setup:            s,
		Envelopes:        n,
		ChainEnvPerS:     r.Chain,
		RawEnvPerS:       r.Raw,
		Ratio:            ratio(r.Chain, r.Raw),
		MedianRoundRatio: r.MedianRoundRatio,
		ChainP50US:       us(r.P50),
		ChainP99US:       us(r.P99),
		RawP50US:         us(r.RawP50),
		RawP99US:         us(r.RawP99),
		P50Ratio:         ratio(float64(r.P50), float64(r.RawP50)),
		P99Ratio:         ratio(float64(r.P99), float64(r.RawP99)),
		ChainCPUUSPerEnv: us(r.ChainCPU),
		RawCPUUSPerEnv:   us(r.RawCPU),
		CPURatio:         ratio(float64(r.ChainCPU), float64(r.RawCPU)),
	}
}

// ratio is a/b, or 0 when b is 0 (JSON has no infinity).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// label names the pattern with its concurrency, as the table and the chart
// show it.
func (r record) label() string {
	switch r.Pattern {
	case callersPat:
		return fmt.Sprintf("%d callers", r.Callers)
	case pipelined:
		return fmt.Sprintf("pipelined %d", r.InFlight)
	default:
		return r.Pattern
	}
}

// writeJSON writes rec as one line of JSON.
func writeJSON(w io.Writer, rec record) error {
	return json.NewEncoder(w).Encode(rec)
}

// writeTable writes recs as an aligned table.
func writeTable(w io.Writer, recs []record) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\tenvelopes\tchain env/s\traw env/s\tratio\tchain p50\traw p50\tchain p99\traw p99\tchain CPU/env\traw CPU/env\tCPU ratio\t")
	ms := func(us float64) string { return fmt.Sprintf("%.2fms", us/1000) }
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%.1fµs\t%.1fµs\t%.2f\t\n",
			r.label(), r.Envelopes, r.ChainEnvPerS, r.RawEnvPerS, r.Ratio,
			ms(r.ChainP50US), ms(r.RawP50US), ms(r.ChainP99US), ms(r.RawP99US),
			r.ChainCPUUSPerEnv, r.RawCPUUSPerEnv, r.CPURatio)
	}
	return tw.Flush()
}

// machine describes this machine: GOOS/GOARCH, CPU count and CPU model.
func machine() string {
	m := fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if model := cpuModel("/proc/cpuinfo"); model != "" {
		m += ", " + model
	}
	return m
}

// cpuModel returns the first "model name" of a /proc/cpuinfo file, or "".
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
