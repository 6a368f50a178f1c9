package consensustest_test

import (
	"context"
	"fmt"
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
