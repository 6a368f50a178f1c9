package ledger_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func ExampleNewMemory() {
	l := ledger.NewMemory()
	defer l.Close()

	// A reader follows the chain from block 0, waiting at the tip.
	it := l.Iterator(0)
	defer it.Close()

	genesis := protoutil.NewBlock(0, nil, [][]byte{[]byte("genesis")})
	next := protoutil.NewBlock(1, protoutil.HeaderHash(genesis.Header), [][]byte{[]byte("tx1"), []byte("tx2")})
	for _, b := range []*cb.Block{genesis, next} {
		if err := l.Append(b); err != nil {
			log.Fatal(err)
		}
	}

	for range l.Height() {
		b, err := it.Next(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("block %d: %d envelopes\n", b.Header.Number, len(b.Data.Data))
	}

	// A block that does not follow the chain is rejected.
	err := l.Append(protoutil.NewBlock(2, []byte("wrong"), nil))
	fmt.Println(err != nil)
	// Output:
	// block 0: 1 envelopes
	// block 1: 2 envelopes
	// true
}

func ExampleOpenFile() {
	dir, err := os.MkdirTemp("", "ledger-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := ledger.OpenFile(dir, ledger.WithSync(ledger.SyncEveryBlock))
	if err != nil {
		log.Fatal(err)
	}
	var prev []byte
	for n := range uint64(3) {
		b := protoutil.NewBlock(n, prev, [][]byte{fmt.Appendf(nil, "tx%d", n)})
		prev = protoutil.HeaderHash(b.Header)
		if err := l.Append(b); err != nil {
			log.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	// Reopening reads the chain back and checks it.
	l, err = ledger.OpenFile(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	b, err := l.Block(2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("height", l.Height(), "recovered bytes", l.Recovered())
	fmt.Printf("block 2 holds %s\n", b.Data.Data[0])
	// Output:
	// height 3 recovered bytes 0
	// block 2 holds tx2
}
