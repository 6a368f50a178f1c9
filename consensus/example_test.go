package consensus_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ExampleCore drives the deterministic core by hand, with no broker: the
// records of the partition in, what the node must do out (package coretest
// builds the records, and runs several cores over one log).
func ExampleCore() {
	cfg := coretest.OpenConfig(2, time.Second) // 2 envelopes per block, any envelope valid
	core, err := consensus.NewCore("demo", consensus.CoreState{LastBlock: coretest.Genesis(), Config: cfg})
	if err != nil {
		fmt.Println(err)
		return
	}
	step := func(offset int64, value []byte) {
		fmt.Printf("%d: %s\n", offset, coretest.FormatReady(core.Step(consensus.Record{Offset: offset, Value: value})))
	}
	step(0, coretest.Normal(coretest.Envelope("a"), 0)) // opens a batch
	step(1, coretest.Normal(coretest.Envelope("b"), 0)) // fills it
	step(2, coretest.Normal(coretest.Envelope("c"), 0))
	fmt.Println("timer:", coretest.FormatReady(core.TimerFired()))
	step(3, coretest.TimeToCut(2)) // the first time-to-cut in the log cuts
	step(4, coretest.TimeToCut(2)) // another node's comes too late
	// Output:
	// 0: timer start
	// 1: block 1 [a b] persisted=1; timer stop
	// 2: timer start
	// timer: produce ttc 2
	// 3: block 2 [c] persisted=3
	// 4: note stale_ttc@4
}

// ExampleConsenter orders a few envelopes on one node: an embedded Kafka, a
// consenter, and the chain of one channel on an in-memory ledger.
func ExampleConsenter() {
	k, err := consensustest.StartKafka()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer k.Close()

	// A channel of one organisation whose blocks hold three envelopes.
	ca, err := msptest.NewCA("Org1")
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := ca.Issue("client")
	if err != nil {
		fmt.Println(err)
		return
	}
	genesis, err := msptest.GenesisBlock("example", []*msptest.CA{ca},
		msptest.WithBatchSize(3, 1<<20, 512<<10), msptest.WithBatchTimeout(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}

	cons, err := consensus.NewConsenter(
		consensus.WithSeedBrokers(k.Addrs()...),
		consensus.WithRetry(consensustest.FastRetryPolicy()),
		consensus.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cons.Close()

	l := ledger.NewMemory()
	ch, err := cons.NewChain("example", l, genesis) // appends the genesis block
	if err != nil {
		fmt.Println(err)
		return
	}
	ch.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ch.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	for i := range 3 {
		env, err := client.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, "example", fmt.Appendf(nil, "tx %d", i))
		if err != nil {
			fmt.Println(err)
			return
		}
		seq, err := ch.ProcessNormal(env) // validate against the channel's config
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := ch.Order(ctx, env, seq); err != nil { // returns once Kafka has it
			fmt.Println(err)
			return
		}
	}

	// Wait for block 1, cut when the third envelope arrived.
	it := l.Iterator(1)
	defer it.Close()
	b, err := it.Next(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("block", b.Header.Number, "holds", len(b.Data.Data), "envelopes")
	fmt.Println("height", ch.Height())
	// Output:
	// block 1 holds 3 envelopes
	// height 2
}

// ExampleChain_OrderAsync keeps many envelopes in flight: each promise is
// called once Kafka acknowledged its envelope.
func ExampleChain_OrderAsync() {
	k, err := consensustest.StartKafka()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer k.Close()
	ca, err := msptest.NewCA("Org1")
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := ca.Issue("client")
	if err != nil {
		fmt.Println(err)
		return
	}
	genesis, err := msptest.GenesisBlock("async", []*msptest.CA{ca},
		msptest.WithBatchSize(50, 1<<20, 512<<10), msptest.WithBatchTimeout(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...),
		consensus.WithRetry(consensustest.FastRetryPolicy()), consensus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cons.Close()
	l := ledger.NewMemory()
	ch, err := cons.NewChain("async", l, genesis)
	if err != nil {
		fmt.Println(err)
		return
	}
	ch.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ch.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	const n = 100
	results := make(chan error, n)
	for i := range n {
		env, err := client.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, "async", fmt.Appendf(nil, "tx %d", i))
		if err != nil {
			fmt.Println(err)
			return
		}
		seq, err := ch.ProcessNormal(env)
		if err != nil {
			fmt.Println(err)
			return
		}
		ch.OrderAsync(ctx, env, seq, func(err error) { results <- err })
	}
	acked := 0
	for range n {
		if err := <-results; err != nil {
			fmt.Println(err)
			continue
		}
		acked++
	}
	fmt.Println("acknowledged", acked)

	// The hundred envelopes make two blocks of fifty.
	it := l.Iterator(1)
	defer it.Close()
	for range 2 {
		b, err := it.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("block", b.Header.Number, "holds", len(b.Data.Data), "envelopes")
	}
	// Output:
	// acknowledged 100
	// block 1 holds 50 envelopes
	// block 2 holds 50 envelopes
}
