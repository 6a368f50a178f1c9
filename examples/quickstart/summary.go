package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

// printSummary prints what was ordered, how fast, and the tip of every
// node's ledger.
func printSummary(w io.Writer, cfg config, net *network, res *loadResult, rep *consensustest.Agreement) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "summary")
	fmt.Fprintf(tw, "  blocks\t%d (genesis + %d)\n", rep.Height, rep.Height-1)
	fmt.Fprintf(tw, "  envelopes\t%d acknowledged, %d in blocks, %d missing, %d duplicated\n",
		rep.Acknowledged, rep.Transactions, len(rep.Missing), len(rep.Duplicated))
	if rep.NotAcknowledged > 0 {
		fmt.Fprintf(tw, "  not acknowledged\t%d (%d of them ordered nevertheless)\n", rep.NotAcknowledged, rep.NotAcknowledgedOrdered)
	}
	fmt.Fprintf(tw, "  throughput\t%.0f envelopes/s (%d in %v; in blocks on every node after %v)\n",
		float64(rep.Acknowledged)/res.elapsed.Seconds(), rep.Acknowledged, res.elapsed.Round(time.Millisecond), res.committed.Round(time.Millisecond))
	fmt.Fprintf(tw, "  Order latency\tp50 %v, p99 %v\n", percentile(res.latencies, 50), percentile(res.latencies, 99))
	if r := res.restart; r != nil {
		fmt.Fprintf(tw, "  restart\t%s halted at %d envelopes, resumed at height %d, ready in %v, caught up to height %d in %v\n",
			r.node, r.atEnvelopes, r.resumeHeight, r.ready.Round(time.Millisecond), r.catchUpTo, r.caughtUp.Round(time.Millisecond))
	}
	if res.failovers > 0 {
		fmt.Fprintf(tw, "  failovers\t%d envelopes ordered through another node than the client's own\n", res.failovers)
	}
	if !net.tempDir {
		fmt.Fprintf(tw, "  ledgers\t%s\n", net.dataDir)
	}
	fmt.Fprintln(tw, "  node\ttip block\theader hash")
	for _, t := range rep.Tips {
		fmt.Fprintf(tw, "  %s\t%d\t%x\n", t.Node, t.Number, short(t.HeaderHash))
	}
	tw.Flush()
}

// percentile returns the p-th percentile of sorted, or 0 if it is empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)*p/100, len(sorted)-1)
	return sorted[i].Round(10 * time.Microsecond)
}

func short(h []byte) []byte {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}
