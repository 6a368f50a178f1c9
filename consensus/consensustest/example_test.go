package consensustest_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

// Example starts an embedded Kafka and a cluster of three ordering nodes,
// orders a few envelopes through different nodes, and checks that every
// node wrote the same blocks.
func Example() {
	k, err := consensustest.StartKafka()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer k.Close()

	c, err := consensustest.NewCluster(k.Addrs(),
		consensustest.WithBatchSize(5, 0),              // a block every five envelopes
		consensustest.WithBatchTimeout(10*time.Second), // and none cut by time here
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if err := c.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	ch := consensustest.DefaultChannel
	for i := range 10 {
		env, err := c.Envelope(ch, fmt.Appendf(nil, "tx %d", i))
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := c.Order(ctx, ch, env); err != nil { // round robin over the nodes
			fmt.Println(err)
			return
		}
	}
	// Genesis, then two blocks of five envelopes each.
	if err := c.WaitHeight(ctx, ch, 3); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("heights:", c.Heights(ch))
	if err := c.CheckConsistent(ch); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ledgers match")
	// Output:
	// heights: [3 3 3]
	// ledgers match
}

// Example_faults is a fault experiment: three nodes order envelopes while
// every broker is paused, then resumed, and one node restarts meanwhile;
// every envelope Kafka acknowledged is in exactly one block, on every
// node, and the ledgers are identical.
func Example_faults() {
	k, err := consensustest.StartKafka()
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	c, err := consensustest.NewCluster(k.Addrs(), consensustest.WithNodeLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	ch, sent := consensustest.DefaultChannel, map[string]bool{}
	order := func(n int) {
		for i := range n {
			env, _ := c.Envelope(ch, fmt.Appendf(nil, "tx %d", i))
			id, _ := consensustest.TxID(env)
			octx, cancel := context.WithTimeout(ctx, time.Second)
			sent[id] = c.Order(octx, ch, env) == nil // false: refused or not acknowledged
			cancel()
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	order(50)
	k.Pause()        // every broker stops answering
	order(20)        // refused while the nodes cannot reach Kafka
	c.Node(2).Stop() // and a node goes down
	if err := k.Resume(); err != nil {
		log.Fatal(err)
	}
	if err := c.Node(2).Restart(); err != nil {
		log.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	order(50)
	var acked []string
	for id, ok := range sent {
		if ok {
			acked = append(acked, id)
		}
	}
	if err := c.WaitInAllLedgers(ctx, ch, acked...); err != nil {
		log.Fatal(err)
	}
	a, err := c.CheckAgreement(ch, sent)
	fmt.Println("agreement:", err, "missing:", len(a.Missing), "duplicated:", len(a.Duplicated))
	// Output:
	// agreement: <nil> missing: 0 duplicated: 0
}
