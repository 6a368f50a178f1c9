package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/internal/chainbench"
)

// ledgerLatency is the JSON line of the ledger-latency measurement:
// microseconds from Kafka's acknowledgement of an envelope to its block in
// every node's ledger, under light load, beside the batch timeout that
// bounds it from below.
type ledgerLatency struct {
	Pattern        string  `json:"pattern"`
	Nodes          int     `json:"nodes"`
	Envelopes      int     `json:"envelopes"`
	BatchTimeoutUS float64 `json:"batch_timeout_us"`
	P50US          float64 `json:"p50_us"`
	P99US          float64 `json:"p99_us"`
	P50OverUS      float64 `json:"p50_over_batch_timeout_us"`
}

// measureLedgerLatency sends n envelopes one at a time, each well after
// the previous one was written, and reports the time to every ledger.
func measureLedgerLatency(ctx context.Context, out io.Writer, h *chainbench.Harness, n int) error {
	p50, p99, err := h.LedgerLatency(ctx, n, 2**timeout)
	if err != nil {
		return fmt.Errorf("ledger latency: %w", err)
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	r := ledgerLatency{Pattern: "ledger-latency", Nodes: *nodes, Envelopes: n, BatchTimeoutUS: us(*timeout),
		P50US: us(p50), P99US: us(p99), P50OverUS: us(p50 - *timeout)}
	if *jsonOut {
		return json.NewEncoder(out).Encode(r)
	}
	fmt.Fprintf(out, "acknowledged to every ledger, one envelope at a time: p50 %v, p99 %v (batch timeout %v: p50 = timeout + %v)\n",
		p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), *timeout, (p50 - *timeout).Round(10*time.Microsecond))
	return nil
}
