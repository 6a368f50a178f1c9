package plainconfig_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"slices"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/plainconfig"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// event is what the application orders: JSON, authenticated by an HMAC in
// the envelope's signature.
type event struct {
	ID    int    `json:"id"`
	Kind  string `json:"kind"`
	Value int    `json:"value"`
}

// Example orders JSON events carrying an HMAC on three nodes and an
// embedded Kafka: every node checks the HMAC, and the three ledgers end up
// identical, with every event once.
func Example() {
	key := []byte("the key the clients and the nodes share")
	mac := func(p []byte) []byte { h := hmac.New(sha256.New, key); h.Write(p); return h.Sum(nil) }
	rules := plainconfig.Rules{Validate: func(_ *plainconfig.Config, env *cb.Envelope) error {
		if !hmac.Equal(env.Signature, mac(env.Payload)) {
			return errors.New("bad HMAC")
		}
		return json.Unmarshal(env.Payload, new(event))
	}}
	genesis, err := plainconfig.GenesisBlock(plainconfig.Settings{
		Channel: "events", BatchTimeout: 100 * time.Millisecond,
		BatchSize: blockcutter.Limits{MaxMessageCount: 10, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 512 << 10},
	})
	if err != nil {
		log.Fatal(err)
	}
	k, err := consensustest.StartKafka()
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var chains []*consensus.Chain
	var ledgers []*ledger.Memory
	for range 3 { // three nodes: one consenter and one ledger each
		cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...),
			consensus.WithConfigParser(plainconfig.Parser(rules)), consensus.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			log.Fatal(err)
		}
		defer cons.Close()
		l := ledger.NewMemory()
		ch, err := cons.NewChain("events", l, genesis)
		if err != nil {
			log.Fatal(err)
		}
		ch.Start()
		if err := ch.WaitReady(ctx); err != nil {
			log.Fatal(err)
		}
		chains, ledgers = append(chains, ch), append(ledgers, l)
	}

	for i := range 30 { // through the three nodes in turn
		p, _ := json.Marshal(event{ID: i, Kind: "reading", Value: i * i})
		if err := chains[i%3].Submit(ctx, &cb.Envelope{Payload: p, Signature: mac(p)}); err != nil {
			log.Fatal(err)
		}
	}
	forged := []byte(`{"id":99,"kind":"reading","value":-1}`)
	fmt.Println("forged:", chains[0].Submit(ctx, &cb.Envelope{Payload: forged, Signature: mac([]byte("other"))}))

	// Read each ledger until it holds the 30 events; compare the blocks.
	var first [][]byte
	seen := map[int]int{}
	for n, l := range ledgers {
		it := l.Iterator(1)
		var blocks [][]byte
		for events := 0; events < 30; {
			b, err := it.Next(ctx)
			if err != nil {
				log.Fatal(err)
			}
			blocks, events = append(blocks, protoutil.MarshalOrPanic(b)), events+len(b.Data.Data)
			for _, d := range b.Data.Data {
				env, _ := protoutil.UnmarshalEnvelope(d)
				var ev event
				if n == 0 && json.Unmarshal(env.Payload, &ev) == nil {
					seen[ev.ID]++
				}
			}
		}
		it.Close()
		if n == 0 {
			first = blocks
		} else if !slices.EqualFunc(first, blocks, bytes.Equal) {
			log.Fatalf("node %d's ledger differs from node 0's", n)
		}
	}
	once := len(seen) == 30
	for _, c := range seen {
		once = once && c == 1
	}
	fmt.Println("3 ledgers identical; every event ordered once:", once)
	// Output:
	// forged: channel events: bad HMAC
	// 3 ledgers identical; every event ordered once: true
}
