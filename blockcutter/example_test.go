package blockcutter_test

import (
	"fmt"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

func Example() {
	limits := blockcutter.Limits{MaxMessageCount: 3, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 10}
	c := blockcutter.New(func() blockcutter.Limits { return limits })

	for _, tx := range []string{"a", "bb", "ccc", "dddd", "eeeeeeeee", "this one is oversized", "f"} {
		batches, pending := c.Ordered(&cb.Envelope{Payload: []byte(tx)})
		for _, b := range batches {
			fmt.Printf("%-22q cuts a block of %d: %s\n", tx, len(b), payloads(b))
		}
		if len(batches) == 0 {
			fmt.Printf("%-22q pending=%v (%d pending)\n", tx, pending, c.Pending())
		}
	}
	// The batch timer expired:
	fmt.Printf("timeout cuts a block: %s\n", payloads(c.Cut()))
	fmt.Printf("nothing left: %v\n", c.Cut() == nil)

	// Output:
	// "a"                    pending=true (1 pending)
	// "bb"                   pending=true (2 pending)
	// "ccc"                  cuts a block of 3: [a bb ccc]
	// "dddd"                 pending=true (1 pending)
	// "eeeeeeeee"            cuts a block of 1: [dddd]
	// "this one is oversized" cuts a block of 1: [eeeeeeeee]
	// "this one is oversized" cuts a block of 1: [this one is oversized]
	// "f"                    pending=true (1 pending)
	// timeout cuts a block: [f]
	// nothing left: true
}

func payloads(batch []*cb.Envelope) []string {
	var s []string
	for _, e := range batch {
		s = append(s, string(e.Payload))
	}
	return s
}
