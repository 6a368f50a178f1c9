package consensus_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
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

// The chain and raw franz-go side by side on one embedded 3-broker cluster:
//
//	go test ./consensus -run '^$' -bench ChainVsRaw/callers -benchtime 40000x
//	go test ./consensus -run '^$' -bench ChainVsRaw/pipelined -benchtime 200000x
//
// Each sub-benchmark alternates rounds of the chain (Order until every
// node's ledger holds the envelopes) and of raw kgo (produce with the
// chain's settings until three consumers have read the records), so that
// the ratio compares runs of the same process under the same noise. Rounds
// are 10000 envelopes (callers) or 25000 (pipelined), so b.N should be a
// few of them. ns/op and allocs/op are the chain's per envelope (the
// embedded brokers' work included), env/s the chain's throughput, raw-env/s
// raw kgo's, ratio-vs-raw their ratio over all rounds, median-round-ratio
// the median of the ratios of each pair of rounds (less sensitive to bursts
// of load from elsewhere), and p50-ms/p99-ms the latency of Order.

const (
	benchNodes       = 3
	benchEnvSize     = 1024
	benchInFlight    = 1000
	benchCallers     = 64
	benchLinger      = 2 * time.Millisecond // the chain's default
	benchMaxRecord   = 16 << 20             // the chain's default
	benchTimeout     = 20 * time.Millisecond
	benchMaxMessages = 500
	benchPreferred   = 2 << 20
)

// countingLedger is a memory ledger that counts the envelopes appended.
type countingLedger struct {
	*ledger.Memory
	n    atomic.Int64
	wake chan struct{}
}

func (l *countingLedger) Append(b *cb.Block) error {
	if err := l.Memory.Append(b); err != nil {
		return err
	}
	l.n.Add(int64(len(b.GetData().GetData())))
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// counter counts records seen by a consumer.
type counter struct {
	n    atomic.Int64
	wake chan struct{}
}

func (c *counter) add(n int64) {
	c.n.Add(n)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func waitCount(ctx context.Context, n *atomic.Int64, wake <-chan struct{}, target int64) error {
	for n.Load() < target {
		select {
		case <-wake:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w: at %d of %d", ctx.Err(), n.Load(), target)
		}
	}
	return nil
}

type benchCluster struct {
	k       *consensustest.Kafka
	cons    []*consensus.Consenter
	chains  []*consensus.Chain
	ledgers []*countingLedger
	envs    []*cb.Envelope
	seq     uint64

	raw      []*kgo.Client // one per node: produces and consumes
	rawSeen  []*counter
	rawValue [][]byte
	rawTopic string
	rawStop  context.CancelFunc
	rawWG    sync.WaitGroup
}

func startBenchCluster(b *testing.B) *benchCluster {
	b.Helper()
	k, err := consensustest.StartKafka()
	if err != nil {
		b.Fatal(err)
	}
	bc := &benchCluster{k: k, rawTopic: "rawbench"}
	b.Cleanup(bc.close)

	ca := testutil.NewCA(b, "Org1")
	client := ca.Issue("client")
	cfg := testutil.ChannelConfig("bench", []*testutil.CA{ca},
		testutil.WithBatchSize(benchMaxMessages, 10<<20, benchPreferred), testutil.WithBatchTimeout(benchTimeout))
	genesis := testutil.GenesisBlock(b, cfg)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range benchNodes {
		c, err := consensus.NewConsenter(
			consensus.WithSeedBrokers(k.Addrs()...),
			consensus.WithClientID(fmt.Sprintf("osn%d", i)),
			consensus.WithSigner(ca.Issue(fmt.Sprintf("orderer%d", i))),
			consensus.WithLogger(quiet),
			consensus.WithRetry(consensus.RetryPolicy{ShortInterval: 50 * time.Millisecond, ShortTotal: 10 * time.Second, LongInterval: time.Second, LongTotal: 10 * time.Second}),
		)
		if err != nil {
			b.Fatal(err)
		}
		bc.cons = append(bc.cons, c)
		l := &countingLedger{Memory: ledger.NewMemory(), wake: make(chan struct{}, 1)}
		ch, err := c.NewChain("bench", l, genesis)
		if err != nil {
			b.Fatal(err)
		}
		ch.Start()
		bc.chains = append(bc.chains, ch)
		bc.ledgers = append(bc.ledgers, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ch := range bc.chains {
		if err := ch.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
	}

	// Envelopes of about 1 KiB, signed, validated once.
	pad := 0
	if probe := testutil.Envelope(client, "bench", cb.HeaderType_ENDORSER_TRANSACTION, nil); len(probe.Payload)+len(probe.Signature) < benchEnvSize {
		pad = benchEnvSize - len(probe.Payload) - len(probe.Signature)
	}
	for i := range 4096 {
		data := make([]byte, pad)
		copy(data, fmt.Sprint("tx", i))
		env := testutil.Envelope(client, "bench", cb.HeaderType_ENDORSER_TRANSACTION, data)
		seq, err := bc.chains[0].ProcessNormal(env)
		if err != nil {
			b.Fatal(err)
		}
		bc.seq = seq
		bc.envs = append(bc.envs, env)
		// The raw records carry exactly what the chain produces.
		v, err := proto.Marshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
			Payload: mustMarshal(b, env), ConfigSeq: seq, Class: ab.KafkaMessageRegular_NORMAL}}})
		if err != nil {
			b.Fatal(err)
		}
		bc.rawValue = append(bc.rawValue, v)
	}

	// Raw side: the chain's kgo settings, one client per node.
	for i := range benchNodes {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(k.Addrs()...),
			kgo.ClientID(fmt.Sprintf("raw%d", i)),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(benchLinger),
			kgo.ProducerBatchMaxBytes(benchMaxRecord),
			kgo.FetchMaxWait(250*time.Millisecond),
		)
		if err != nil {
			b.Fatal(err)
		}
		bc.raw = append(bc.raw, cl)
		bc.rawSeen = append(bc.rawSeen, &counter{wake: make(chan struct{}, 1)})
	}
	if _, err := consensus.EnsureTopic(ctx, kadm.NewClient(bc.raw[0]), bc.rawTopic, consensus.DefaultTopicSettings()); err != nil {
		b.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	bc.rawStop = stop
	for i, cl := range bc.raw {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{bc.rawTopic: {0: kgo.NewOffset().AtStart()}})
		bc.rawWG.Add(1)
		go func() {
			defer bc.rawWG.Done()
			for {
				fs := cl.PollFetches(rctx)
				if fs.IsClientClosed() || rctx.Err() != nil {
					return
				}
				bc.rawSeen[i].add(int64(fs.NumRecords()))
			}
		}()
	}

	// Warm up both sides: connections, producer IDs, metadata.
	if _, err := bc.chainRound(ctx, 1000, benchCallers, 0); err != nil {
		b.Fatal(err)
	}
	if err := bc.rawRound(ctx, 1000, benchCallers, 0); err != nil {
		b.Fatal(err)
	}
	return bc
}

func mustMarshal(b *testing.B, m proto.Message) []byte {
	v, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func (bc *benchCluster) close() {
	if bc.rawStop != nil {
		bc.rawStop()
	}
	for _, cl := range bc.raw {
		cl.Close()
	}
	bc.rawWG.Wait()
	for _, c := range bc.cons {
		c.Close()
	}
	bc.k.Close()
}

// drive sends n items: with callers > 0, that many goroutines each send
// and wait for the outcome before the next (send on node caller%nodes);
// with callers == 0, one goroutine keeps up to inFlight items in flight on
// node 0. send calls done once with the outcome. It returns the per-item
// latencies.
func drive(n, callers, inFlight int, send func(node, i int, done func(error))) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var firstErr atomic.Pointer[error]
	fail := func(err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
		}
	}
	if callers > 0 {
		var next atomic.Int64
		var wg sync.WaitGroup
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
					send(c%benchNodes, i, func(err error) { res <- err })
					err := <-res
					lat[i] = time.Since(t)
					fail(err)
				}
			}()
		}
		wg.Wait()
	} else {
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
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
		wg.Wait()
	}
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	return lat, nil
}

// chainRound orders n envelopes and returns once every node appended them.
func (bc *benchCluster) chainRound(ctx context.Context, n, callers, inFlight int) ([]time.Duration, error) {
	base := make([]int64, len(bc.ledgers))
	for i, l := range bc.ledgers {
		base[i] = l.n.Load()
	}
	lat, err := drive(n, callers, inFlight, func(node, i int, done func(error)) {
		bc.chains[node].OrderAsync(ctx, bc.envs[i%len(bc.envs)], bc.seq, consensus.Promise(done))
	})
	if err != nil {
		return nil, err
	}
	for i, l := range bc.ledgers {
		if err := waitCount(ctx, &l.n, l.wake, base[i]+int64(n)); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
	}
	return lat, nil
}

// rawRound produces n records and returns once every consumer read them.
func (bc *benchCluster) rawRound(ctx context.Context, n, callers, inFlight int) error {
	base := make([]int64, len(bc.rawSeen))
	for i, c := range bc.rawSeen {
		base[i] = c.n.Load()
	}
	key := []byte("0")
	_, err := drive(n, callers, inFlight, func(node, i int, done func(error)) {
		rec := &kgo.Record{Topic: bc.rawTopic, Partition: 0, Key: key, Value: bc.rawValue[i%len(bc.rawValue)]}
		bc.raw[node].Produce(ctx, rec, func(_ *kgo.Record, err error) { done(err) })
	})
	if err != nil {
		return err
	}
	for i, c := range bc.rawSeen {
		if err := waitCount(ctx, &c.n, c.wake, base[i]+int64(n)); err != nil {
			return fmt.Errorf("consumer %d: %w", i, err)
		}
	}
	return nil
}

func BenchmarkChainVsRaw(b *testing.B) {
	bc := startBenchCluster(b)
	for _, p := range []struct {
		name                     string
		callers, inFlight, round int
	}{
		{fmt.Sprintf("callers=%d", benchCallers), benchCallers, 0, 10000},
		{fmt.Sprintf("pipelined=%d", benchInFlight), 0, benchInFlight, 25000},
	} {
		b.Run(p.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var chainTime, rawTime time.Duration
			var lat []time.Duration
			var ratios []float64 // per pair of rounds
			b.ReportAllocs()
			b.ResetTimer()
			b.StopTimer()
			for done, round := 0, 0; done < b.N; round++ {
				n := min(p.round, b.N-done)
				var ct, rt time.Duration
				runChain := func() {
					b.StartTimer()
					t := time.Now()
					l, err := bc.chainRound(ctx, n, p.callers, p.inFlight)
					ct = time.Since(t)
					chainTime += ct
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, l...)
				}
				runRaw := func() {
					t := time.Now()
					if err := bc.rawRound(ctx, n, p.callers, p.inFlight); err != nil {
						b.Fatal(err)
					}
					rt = time.Since(t)
					rawTime += rt
				}
				if round%2 == 0 {
					runChain()
					runRaw()
				} else {
					runRaw()
					runChain()
				}
				ratios = append(ratios, rt.Seconds()/ct.Seconds())
				done += n
			}
			chainRate := float64(b.N) / chainTime.Seconds()
			rawRate := float64(b.N) / rawTime.Seconds()
			slices.Sort(lat)
			b.ReportMetric(chainRate, "env/s")
			b.ReportMetric(rawRate, "raw-env/s")
			b.ReportMetric(chainRate/rawRate, "ratio-vs-raw")
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "median-round-ratio")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
