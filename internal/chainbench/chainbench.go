// Package chainbench measures a consensus.Chain against raw franz-go on the
// same embedded Kafka cluster (consensustest.StartKafka, 3 brokers on
// 127.0.0.1). It is shared by the ChainVsRaw benchmark of package consensus
// and by the examples/bench command.
//
// Start sets up 3 consenters, each with a chain of channel "bench" on a
// memory ledger that counts the envelopes appended, and 3 raw kgo clients
// with the chain's producer settings, which produce to the topic
// "rawbench" and each consume all of it. Measure then alternates rounds of the chain (Order until
// every node's ledger holds the envelopes) and rounds of raw kgo (produce
// records of the bytes the chain produces until the 3 consumers have read
// them), so that both sides see the same machine load.
//
//	h, err := chainbench.Start(ctx, chainbench.DefaultConfig())
//	if err != nil { ... }
//	defer h.Close()
//	r, err := h.Measure(ctx, chainbench.Run{Total: 20000, Round: 10000, Callers: 64})
package chainbench

import (
	"context"
	"errors"
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

// Nodes is the number of consenters (and of raw clients) of a Harness.
const Nodes = 3

const (
	channelID  = "bench"
	rawTopic   = "rawbench"
	distinctTx = 4096                             // distinct envelopes, sent in turn
	linger     = 2 * time.Millisecond             // the chain's default
	maxRecord  = consensus.DefaultMaxMessageBytes // the chain's default
	warmUp     = 1000                             // envelopes per side before measuring
	warmUpCall = 64                               // callers of the warm-up rounds
)

// Config is the channel and envelope set-up of a Harness. The channel's
// batch AbsoluteMaxBytes is 10 MiB, or twice EnvSize if that is more.
type Config struct {
	// EnvSize is the size of an envelope in bytes (payload + signature);
	// envelopes are padded up to it.
	EnvSize int
	// MaxMessageCount is the channel's batch MaxMessageCount.
	MaxMessageCount uint32
	// PreferredMaxBytes is the channel's batch PreferredMaxBytes.
	PreferredMaxBytes uint32
	// BatchTimeout is the channel's batch timeout.
	BatchTimeout time.Duration
	// TB, if not nil, is given to the testutil helpers, which then fail it
	// on error; with nil they panic instead.
	TB testing.TB
}

// DefaultConfig returns envelopes of 1 KiB, batches of at most 500
// envelopes, preferably 2 MiB, and a batch timeout of 20ms.
func DefaultConfig() Config {
	return Config{
		EnvSize:           1024,
		MaxMessageCount:   500,
		PreferredMaxBytes: 2 << 20,
		BatchTimeout:      20 * time.Millisecond,
	}
}

// Harness is a running cluster of Nodes chains and Nodes raw kgo clients on
// an embedded Kafka. Close releases it.
type Harness struct {
	k       *consensustest.Kafka
	cons    []*consensus.Consenter
	chains  []*consensus.Chain
	ledgers []*ledger.Memory
	seen    []*counter // envelopes in each node's ledger, counted by a reader
	envs    []*cb.Envelope
	seq     uint64

	raw      []*kgo.Client // one per node: produces and consumes
	rawSeen  []*counter
	rawValue [][]byte
	rawStop  context.CancelFunc
	stopSeen context.CancelFunc
	rawWG    sync.WaitGroup
}

// counter counts items and wakes one waiter on each addition.
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

// wait returns once the count reaches target, or with ctx's error.
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

// Start starts an embedded Kafka, the chains and the raw clients, builds
// the signed envelopes (and the raw records carrying exactly what the chain
// produces for them) and warms both sides up. ctx bounds the set-up. On
// error, what was started is closed.
func Start(ctx context.Context, cfg Config) (h *Harness, err error) {
	k, err := consensustest.StartKafka()
	if err != nil {
		return nil, err
	}
	h = &Harness{k: k}
	started := false
	defer func() {
		// Also when a testutil helper fails cfg.TB or panics.
		if !started {
			h.Close()
			h = nil
		}
	}()

	ca := testutil.NewCA(cfg.TB, "Org1")
	client := ca.Issue("client")
	chCfg := testutil.ChannelConfig(channelID, []*testutil.CA{ca},
		testutil.WithBatchSize(cfg.MaxMessageCount, max(10<<20, uint32(cfg.EnvSize)*2), cfg.PreferredMaxBytes),
		testutil.WithBatchTimeout(cfg.BatchTimeout))
	genesis := testutil.GenesisBlock(cfg.TB, chCfg)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range Nodes {
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
		l := ledger.NewMemory()
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
	// Each node's envelopes are counted as a reader of its ledger sees
	// them, as the raw side counts what each consumer fetched.
	sctx, stopSeen := context.WithCancel(context.Background())
	h.stopSeen = stopSeen
	for _, l := range h.ledgers {
		c := newCounter()
		h.seen = append(h.seen, &c)
		h.rawWG.Add(1)
		go func() {
			defer h.rawWG.Done()
			it := l.Iterator(1)
			defer it.Close()
			for {
				b, err := it.Next(sctx)
				if err != nil {
					return
				}
				c.add(int64(len(b.GetData().GetData())))
			}
		}()
	}

	// Envelopes of cfg.EnvSize bytes, signed, validated once.
	pad := 0
	if probe := testutil.Envelope(client, channelID, cb.HeaderType_ENDORSER_TRANSACTION, nil); len(probe.Payload)+len(probe.Signature) < cfg.EnvSize {
		pad = cfg.EnvSize - len(probe.Payload) - len(probe.Signature)
	}
	for i := range distinctTx {
		data := make([]byte, pad)
		copy(data, fmt.Sprint("tx", i))
		env := testutil.Envelope(client, channelID, cb.HeaderType_ENDORSER_TRANSACTION, data)
		if h.seq, err = h.chains[0].ProcessNormal(env); err != nil {
			return h, err
		}
		h.envs = append(h.envs, env)
		// The raw records carry exactly what the chain produces.
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

	// Raw side: the chain's kgo settings, one client per node.
	for i := range Nodes {
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

	// Warm up both sides: connections, producer IDs, metadata.
	if _, err := h.chainRound(ctx, warmUp, warmUpCall, 0); err != nil {
		return h, err
	}
	if err := h.rawRound(ctx, warmUp, warmUpCall, 0); err != nil {
		return h, err
	}
	started = true
	return h, nil
}

// Close stops the raw consumers, closes the clients and the consenters and
// stops the embedded Kafka.
func (h *Harness) Close() {
	if h.rawStop != nil {
		h.rawStop()
	}
	if h.stopSeen != nil {
		h.stopSeen()
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

// Timer is started just before each round of the chain and stopped just
// after it; *testing.B is one, so that a benchmark times the chain only.
type Timer interface {
	StartTimer()
	StopTimer()
}

// Run describes one measurement: Total envelopes through each side, in
// alternating rounds of Round envelopes. With Callers > 0, that many
// goroutines each send an envelope and wait for its outcome before the
// next (on node caller%Nodes); else a single goroutine keeps up to InFlight
// envelopes in flight on node 0.
type Run struct {
	// Total is the number of envelopes per side.
	Total int
	// Round is the number of envelopes per round (at least 1 is used).
	Round int
	// Callers is the number of concurrent callers, or 0 to pipeline.
	Callers int
	// InFlight is the number of envelopes in flight when Callers is 0.
	InFlight int
	// Timer, if not nil, times the chain's rounds.
	Timer Timer
}

// Result is the outcome of Measure.
type Result struct {
	// Chain is the chain's throughput in envelopes per second.
	Chain float64
	// Raw is raw kgo's throughput in envelopes per second.
	Raw float64
	// MedianRoundRatio is the median of the ratios of the chain's
	// throughput to raw kgo's in each pair of rounds, less sensitive than
	// Chain/Raw to bursts of load from elsewhere.
	MedianRoundRatio float64
	// P50 and P99 are percentiles of the chain's latency (Order until its
	// outcome).
	P50, P99 time.Duration
}

// Ratio is the chain's throughput over raw kgo's, over all rounds.
func (r Result) Ratio() float64 { return r.Chain / r.Raw }

// Measure runs r.Total envelopes through each side in alternating rounds,
// the chain first in even rounds and raw kgo first in odd ones.
func (h *Harness) Measure(ctx context.Context, r Run) (Result, error) {
	if r.Total <= 0 {
		return Result{}, errors.New("chainbench: no envelopes to measure")
	}
	var chainTime, rawTime time.Duration
	var lat []time.Duration
	var ratios []float64 // per pair of rounds
	for done, round := 0, 0; done < r.Total; round++ {
		n := min(max(r.Round, 1), r.Total-done)
		var ct, rt time.Duration
		chain := func() error {
			if r.Timer != nil {
				r.Timer.StartTimer()
			}
			t := time.Now()
			l, err := h.chainRound(ctx, n, r.Callers, r.InFlight)
			ct = time.Since(t)
			chainTime += ct
			if r.Timer != nil {
				r.Timer.StopTimer()
			}
			lat = append(lat, l...)
			return err
		}
		raw := func() error {
			t := time.Now()
			err := h.rawRound(ctx, n, r.Callers, r.InFlight)
			rt = time.Since(t)
			rawTime += rt
			return err
		}
		first, second := chain, raw
		if round%2 == 1 {
			first, second = raw, chain
		}
		if err := first(); err != nil {
			return Result{}, err
		}
		if err := second(); err != nil {
			return Result{}, err
		}
		ratios = append(ratios, rt.Seconds()/ct.Seconds())
		done += n
	}
	slices.Sort(lat)
	slices.Sort(ratios)
	return Result{
		Chain:            float64(r.Total) / chainTime.Seconds(),
		Raw:              float64(r.Total) / rawTime.Seconds(),
		MedianRoundRatio: ratios[len(ratios)/2],
		P50:              lat[len(lat)/2],
		P99:              lat[len(lat)*99/100],
	}, nil
}

// drive sends n items: with callers > 0, that many goroutines each send
// and wait for the outcome before the next (on node caller%Nodes); else one
// goroutine keeps up to inFlight items in flight on node 0. send calls done
// once with the outcome. It returns the per-item latencies.
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
					send(c%Nodes, i, func(err error) { res <- err })
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
func (h *Harness) chainRound(ctx context.Context, n, callers, inFlight int) ([]time.Duration, error) {
	base := make([]int64, len(h.seen))
	for i, c := range h.seen {
		base[i] = c.n.Load()
	}
	lat, err := drive(n, callers, inFlight, func(node, i int, done func(error)) {
		h.chains[node].OrderAsync(ctx, h.envs[i%len(h.envs)], h.seq, consensus.Promise(done))
	})
	if err != nil {
		return nil, err
	}
	for i, c := range h.seen {
		if err := c.wait(ctx, base[i]+int64(n)); err != nil {
			return nil, fmt.Errorf("chain node %d: %w", i, err)
		}
	}
	return lat, nil
}

// rawRound produces n records and returns once every consumer read them.
func (h *Harness) rawRound(ctx context.Context, n, callers, inFlight int) error {
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
