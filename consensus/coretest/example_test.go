package coretest_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/plainconfig"
)

// Example is an experiment on the protocol, with no broker: are envelopes
// validated before a config change (here, smaller blocks) ordered exactly
// once after it, by three nodes that each re-submit them, one of which
// restarts half-way?
func Example() {
	cfg := coretest.OpenConfig(3, time.Second) // 3 envelopes per block
	l, err := coretest.NewLog(3, cfg, coretest.WithRandomInterleaving(1))
	if err != nil {
		panic(err)
	}
	l.Submit(coretest.Envelopes("a", "b")...)
	next := cfg.Next()
	next.BatchSize.MaxMessageCount = 2 // the change under test
	update, _ := plainconfig.UpdateEnvelope(next, nil)
	l.SubmitConfig(update)
	l.SubmitAt(0, coretest.Envelopes("c", "d", "e")...) // validated before the change
	// Node 2 crashes and starts again from its ledger; then everything
	// produced is delivered and every timer fires.
	if err := errors.Join(l.Restart(2), l.Settle()); err != nil {
		panic(err)
	}
	fmt.Println(l.Summary(0))
	fmt.Println("invariants:", l.Check(nil))
	// Output:
	// block 1 [a b] persisted=1
	// block 2 config persisted=2
	// block 3 [c d] persisted=7
	// block 4 [e] persisted=15
	// invariants: <nil>
}
