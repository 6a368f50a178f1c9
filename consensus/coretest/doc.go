// Package coretest tests and experiments with the ordering protocol without
// a broker, in the spirit of net/http/httptest: it builds the records a
// channel's partition holds, and runs several consensus.Core instances over
// an in-memory log the way the chains' loops run them, with faults and
// invariant checks.
//
// # Records
//
// Normal, Config, Resubmitted, ConfigResubmitted, TimeToCut, Connect and
// Garbage build record values, the bytes a node or a stranger writes to the
// partition; Envelope and Envelopes make envelopes of plain payloads;
// StrangerRecords lists the records every core skips. Driving one core by
// hand:
//
//	core, err := consensus.NewCore("ch", consensus.CoreState{LastBlock: coretest.Genesis(), Config: cfg})
//	r := core.Step(consensus.Record{Offset: 0, Value: coretest.Normal(coretest.Envelope("a"), 0)})
//	fmt.Println(coretest.FormatReady(r)) // timer start
//
// # The log
//
// A Log runs N nodes over one in-memory partition: every record appended is
// stepped by every running node in order, what each node's core asks to
// produce is appended back (each node its own copy), and batch timers run
// on a fake clock:
//
//	l, err := coretest.NewLog(3, coretest.OpenConfig(10, time.Second))
//	l.Submit(coretest.Envelopes("a", "b", "c")...)
//	l.Restart(1)                // a new core from node 1's last block
//	err = l.Settle()            // deliver everything, fire every timer
//	err = l.Check(nil)          // identical ledgers, exactly once, restart equivalence
//
// Faults: WithRandomInterleaving delivers the nodes' messages (competing
// time-to-cuts, duplicate re-submissions) in a seeded random order;
// WithDuplicateProduces appends some of them twice; WithManualDelivery
// lets the test interleave them with new records (Deliver, DeliverFrom,
// Flush); Stop, Start and Restart restart a node at any record, and
// DropQueued loses what a node had not sent yet; StrangerRecords are what
// a stranger writes.
//
// The checks return errors, so that a test reports them as it likes:
// CheckIdentical (every node's blocks identical, byte for byte),
// CheckExactlyOnce (every submitted envelope in exactly one block, unless
// expected to be dropped), CheckRestarts (a node restarted from any block
// cuts exactly the blocks that followed), and Check for all three.
//
// OpenConfig and OpenRules give a configuration (package plainconfig) that
// accepts everything, for experiments where validation is not the
// question.
//
// Nothing here is safe for concurrent use, and nothing needs a broker, a
// clock or a goroutine.
package coretest
