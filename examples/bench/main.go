// Command bench measures the chain against raw franz-go on the same
// embedded Kafka cluster (3 brokers on 127.0.0.1) and prints a table.
//
//	go run ./examples/bench -n 20000 -callers 64
//
// Two patterns are measured: -callers goroutines that each send an
// envelope and wait for its acknowledgement before the next, and a single
// pipelined caller keeping -inflight envelopes in flight. For each, rounds
// of the chain (Order until every one of the 3 nodes appended the
// envelopes to its memory ledger) alternate with rounds of raw kgo (produce
// records of the same bytes with the chain's settings until 3 consumers
// read them), so that both see the same machine load. The ratio is chain
// throughput over raw throughput.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

const (
	nodes      = 3
	linger     = 2 * time.Millisecond             // the chain's default
	maxRecord  = consensus.DefaultMaxMessageBytes // the chain's default
	channelID  = "bench"
	rawTopic   = "rawbench"
	distinctTx = 4096
)

var (
	total    = flag.Int("n", 20000, "envelopes per pattern and per side")
	callers  = flag.Int("callers", 64, "concurrent callers of the first pattern (0 skips it)")
	inFlight = flag.Int("inflight", 1000, "envelopes in flight of the pipelined pattern (0 skips it)")
	round    = flag.Int("round", 10000, "envelopes per round; chain and raw rounds alternate")
	size     = flag.Int("size", 1024, "envelope size in bytes (payload + signature)")
	maxCount = flag.Uint("maxcount", 500, "batch MaxMessageCount")
	prefer   = flag.Uint("preferred", 2<<20, "batch PreferredMaxBytes")
	timeout  = flag.Duration("timeout", 20*time.Millisecond, "batch timeout")
	deadline = flag.Duration("deadline", 5*time.Minute, "give up after this long")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	ctx, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()
	h, err := setUp(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer h.close()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\tenvelopes\tchain env/s\traw env/s\tratio\tchain p50\tchain p99\t")
	for _, p := range []struct {
		name              string
		callers, inFlight int
	}{
		{fmt.Sprintf("%d callers", *callers), *callers, 0},
		{fmt.Sprintf("pipelined %d", *inFlight), 0, *inFlight},
	} {
		if p.callers == 0 && p.inFlight == 0 {
			continue
		}
		r, err := h.measure(ctx, p.callers, p.inFlight)
		if err != nil {
			log.Fatalf("%s: %v", p.name, err)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%v\t%v\t\n", p.name, *total, r.chain, r.raw, r.chain/r.raw,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
	}
	tw.Flush()
}

type harness struct {
	k       *consensustest.Kafka
	cons    []*consensus.Consenter
	chains  []*consensus.Chain
	ledgers []*countingLedger
	envs    []*cb.Envelope
	seq     uint64

	raw      []*kgo.Client // one per node: produces and consumes
	rawSeen  []*counter
	rawValue [][]byte
	rawStop  context.CancelFunc
	rawWG    sync.WaitGroup
}

// countingLedger is a memory ledger that counts the envelopes appended.
type countingLedger struct {
	*ledger.Memory
	counter
}

func (l *countingLedger) Append(b *cb.Block) error {
	if err := l.Memory.Append(b); err != nil {
		return err
	}
	l.add(int64(len(b.GetData().GetData())))
	return nil
}

type counter struct {
	n    atomic.Int64
	wake chan struct{}
}

func newCounter() counter { return counter{wake: make(chan struct{}, 1)} }

func (c *counter) add(n int64) {
	c.n.Add(n)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *counter) wait(ctx context.Context, target int64) error {
	for c.n.Load() < target {
		select {
		case <-c.wake:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w: at %d of %d", ctx.Err(), c.n.Load(), target)
		}
	}
	return nil
}

func setUp(ctx context.Context) (h *harness, err error) {
	k, err := consensustest.StartKafka()
	if err != nil {
		return nil, err
	}
	h = &harness{k: k}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	// testutil panics instead of failing a test when given no testing.TB.
	ca := testutil.NewCA(nil, "Org1")
	client := ca.Issue("client")
	cfg := testutil.ChannelConfig(channelID, []*testutil.CA{ca},
		testutil.WithBatchSize(uint32(*maxCount), max(10<<20, uint32(*size)*2), uint32(*prefer)), testutil.WithBatchTimeout(*timeout))
	genesis := testutil.GenesisBlock(nil, cfg)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range nodes {
		c, err := consensus.NewConsenter(
			consensus.WithSeedBrokers(k.Addrs()...),
			consensus.WithClientID(fmt.Sprintf("osn%d", i)),
			consensus.WithSigner(ca.Issue(fmt.Sprintf("orderer%d", i))),
			consensus.WithLogger(quiet),
			consensus.WithRetry(consensus.RetryPolicy{ShortInterval: 50 * time.Millisecond, ShortTotal: 10 * time.Second, LongInterval: time.Second, LongTotal: 10 * time.Second}),
		)
		if err != nil {
			return h, err
		}
		h.cons = append(h.cons, c)
		l := &countingLedger{Memory: ledger.NewMemory(), counter: newCounter()}
		ch, err := c.NewChain(channelID, l, genesis)
		if err != nil {
			return h, err
		}
		ch.Start()
		h.chains = append(h.chains, ch)
		h.ledgers = append(h.ledgers, l)
	}
	for _, ch := range h.chains {
		if err := ch.WaitReady(ctx); err != nil {
			return h, err
		}
	}

	pad := 0
	if probe := testutil.Envelope(client, channelID, cb.HeaderType_ENDORSER_TRANSACTION, nil); len(probe.Payload)+len(probe.Signature) < *size {
		pad = *size - len(probe.Payload) - len(probe.Signature)
	}
	for i := range distinctTx {
		data := make([]byte, pad)
		copy(data, fmt.Sprint("tx", i))
		env := testutil.Envelope(client, channelID, cb.HeaderType_ENDORSER_TRANSACTION, data)
		if h.seq, err = h.chains[0].ProcessNormal(env); err != nil {
			return h, err
		}
		h.envs = append(h.envs, env)
		envBytes, err := proto.Marshal(env)
		if err != nil {
			return h, err
		}
		v, err := proto.Marshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
			Payload: envBytes, ConfigSeq: h.seq, Class: ab.KafkaMessageRegular_NORMAL}}})
		if err != nil {
			return h, err
		}
		h.rawValue = append(h.rawValue, v)
	}

	for i := range nodes {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(k.Addrs()...),
			kgo.ClientID(fmt.Sprintf("raw%d", i)),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(linger),
			kgo.ProducerBatchMaxBytes(maxRecord),
			kgo.FetchMaxWait(250*time.Millisecond),
		)
		if err != nil {
			return h, err
		}
		h.raw = append(h.raw, cl)
		c := newCounter()
		h.rawSeen = append(h.rawSeen, &c)
	}
	if _, err := consensus.EnsureTopic(ctx, kadm.NewClient(h.raw[0]), rawTopic, consensus.DefaultTopicSettings()); err != nil {
		return h, err
	}
	rctx, stop := context.WithCancel(context.Background())
	h.rawStop = stop
	for i, cl := range h.raw {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{rawTopic: {0: kgo.NewOffset().AtStart()}})
		h.rawWG.Add(1)
		go func() {
			defer h.rawWG.Done()
			for {
				fs := cl.PollFetches(rctx)
				if fs.IsClientClosed() || rctx.Err() != nil {
					return
				}
				h.rawSeen[i].add(int64(fs.NumRecords()))
			}
		}()
	}

	// Warm up: connections, producer IDs, metadata.
	if _, err := h.chainRound(ctx, 1000, 64, 0); err != nil {
		return h, err
	}
	if err := h.rawRound(ctx, 1000, 64, 0); err != nil {
		return h, err
	}
	return h, nil
}

func (h *harness) close() {
	if h.rawStop != nil {
		h.rawStop()
	}
	for _, cl := range h.raw {
		cl.Close()
	}
	h.rawWG.Wait()
	for _, c := range h.cons {
		c.Close()
	}
	h.k.Close()
}

type result struct {
	chain, raw float64 // envelopes per second
	p50, p99   time.Duration
}

// measure runs *total envelopes through each side in alternating rounds.
func (h *harness) measure(ctx context.Context, callers, inFlight int) (result, error) {
	var chainTime, rawTime time.Duration
	var lat []time.Duration
	for done, r := 0, 0; done < *total; r++ {
		n := min(max(*round, 1), *total-done)
		chain := func() error {
			t := time.Now()
			l, err := h.chainRound(ctx, n, callers, inFlight)
			chainTime += time.Since(t)
			lat = append(lat, l...)
			return err
		}
		raw := func() error {
			t := time.Now()
			err := h.rawRound(ctx, n, callers, inFlight)
			rawTime += time.Since(t)
			return err
		}
		first, second := chain, raw
		if r%2 == 1 {
			first, second = raw, chain
		}
		if err := first(); err != nil {
			return result{}, err
		}
		if err := second(); err != nil {
			return result{}, err
		}
		done += n
	}
	slices.Sort(lat)
	return result{
		chain: float64(*total) / chainTime.Seconds(),
		raw:   float64(*total) / rawTime.Seconds(),
		p50:   lat[len(lat)/2],
		p99:   lat[len(lat)*99/100],
	}, nil
}

// drive sends n items: with callers > 0, that many goroutines each send
// and wait for the outcome before the next (on node caller%nodes); else one
// goroutine keeps up to inFlight items in flight on node 0.
func drive(n, callers, inFlight int, send func(node, i int, done func(error))) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var firstErr atomic.Pointer[error]
	fail := func(err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
		}
	}
	var wg sync.WaitGroup
	if callers > 0 {
		var next atomic.Int64
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := make(chan error, 1)
				for {
					i := int(next.Add(1)) - 1
					if i >= n || firstErr.Load() != nil {
						return
					}
					t := time.Now()
					send(c%nodes, i, func(err error) { res <- err })
					err := <-res
					lat[i] = time.Since(t)
					fail(err)
				}
			}()
		}
	} else {
		sem := make(chan struct{}, inFlight)
		for i := range n {
			if firstErr.Load() != nil {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			t := time.Now()
			send(0, i, func(err error) {
				lat[i] = time.Since(t)
				fail(err)
				<-sem
				wg.Done()
			})
		}
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	return lat, nil
}

// chainRound orders n envelopes and returns once every node appended them.
func (h *harness) chainRound(ctx context.Context, n, callers, inFlight int) ([]time.Duration, error) {
	base := make([]int64, len(h.ledgers))
	for i, l := range h.ledgers {
		base[i] = l.n.Load()
	}
	lat, err := drive(n, callers, inFlight, func(node, i int, done func(error)) {
		h.chains[node].OrderAsync(ctx, h.envs[i%len(h.envs)], h.seq, consensus.Promise(done))
	})
	if err != nil {
		return nil, err
	}
	for i, l := range h.ledgers {
		if err := l.wait(ctx, base[i]+int64(n)); err != nil {
			return nil, fmt.Errorf("chain node %d: %w", i, err)
		}
	}
	return lat, nil
}

// rawRound produces n records and returns once every consumer read them.
func (h *harness) rawRound(ctx context.Context, n, callers, inFlight int) error {
	base := make([]int64, len(h.rawSeen))
	for i, c := range h.rawSeen {
		base[i] = c.n.Load()
	}
	key := []byte("0")
	_, err := drive(n, callers, inFlight, func(node, i int, done func(error)) {
		rec := &kgo.Record{Topic: rawTopic, Partition: 0, Key: key, Value: h.rawValue[i%len(h.rawValue)]}
		h.raw[node].Produce(ctx, rec, func(_ *kgo.Record, err error) { done(err) })
	})
	if err != nil {
		return err
	}
	for i, c := range h.rawSeen {
		if err := c.wait(ctx, base[i]+int64(n)); err != nil {
			return fmt.Errorf("raw consumer %d: %w", i, err)
		}
	}
	return nil
}
