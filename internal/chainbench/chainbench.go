// Package chainbench measures a consensus.Chain against raw franz-go on the
// same embedded Kafka cluster (consensustest.StartKafka, 3 brokers on
// 127.0.0.1 by default). It is shared by the ChainVsRaw benchmark of
// package consensus and by the examples/bench command.
//
// Start sets up a consensustest.Cluster of Config.Nodes consenters, each
// with a chain of channel "bench" on its own ledger (in memory, or a file
// ledger in a temporary directory), and as many raw kgo clients with the
// chain's producer settings, which produce to the topic "rawbench" and each
// consume all of it. Measure then alternates rounds of the chain (Order until every node's
// ledger holds the envelopes) and rounds of raw kgo (produce records of the
// bytes the chain produces until every raw client has consumed them), so
// that both sides see the same machine load. The raw clients fetch only
// during their rounds (their topic is paused in between), and each round
// ends with a garbage collection, so that the process CPU time measured
// across a round is that round's side's own (the embedded brokers'
// included); the chain's idle long-polls during raw rounds are the one
// cost that crosses over.
//
//	h, err := chainbench.Start(ctx, chainbench.DefaultConfig())
//	if err != nil { ... }
//	defer h.Close()
//	r, err := h.Measure(ctx, chainbench.Run{Total: 20000, Round: 5000, Callers: 64})
package chainbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/cputime"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

const (
	channelID  = "bench"
	rawTopic   = "rawbench"
	distinctTx = 4096                             // distinct envelopes, sent in turn
	maxRecord  = consensus.DefaultMaxMessageBytes // the chain's default
	warmUp     = 1000                             // envelopes per side before measuring
	warmUpCall = 64                               // callers of the warm-up rounds
)

// DefaultNodes is the number of consenters of DefaultConfig.
const DefaultNodes = 3

// Payload is what fills an envelope's data up to Config.EnvSize.
type Payload string

const (
	// PayloadRandom fills envelopes with pseudo-random bytes (a seeded
	// ChaCha8 stream, the same on every run), which the producer's
	// compression cannot shrink.
	PayloadRandom Payload = "random"
	// PayloadZero pads envelopes with zeros, which the producer's
	// compression squeezes: Kafka then moves far fewer bytes than
	// EnvSize per envelope.
	PayloadZero Payload = "zero"
)

// LedgerKind is the ledger each node's chain writes to.
type LedgerKind string

const (
	// LedgerMemory is ledger.Memory.
	LedgerMemory LedgerKind = "memory"
	// LedgerFile is ledger.File in a temporary directory removed by
	// Close, with its default sync policy (fsync every block).
	LedgerFile LedgerKind = "file"
)

// Config is the cluster, channel and envelope set-up of a Harness. The
// channel's batch AbsoluteMaxBytes is 10 MiB, or twice EnvSize if that is
// more.
type Config struct {
	// Nodes is the number of consenters, and of raw clients; 0 means
	// DefaultNodes.
	Nodes int
	// Brokers is the number of embedded Kafka brokers; 0 means
	// consensustest.DefaultBrokers. With fewer than 3, the topics are
	// replicated on every broker.
	Brokers int
	// Ledger is the nodes' ledger; "" means LedgerMemory.
	Ledger LedgerKind
	// Unsigned leaves blocks unsigned (no consensus.WithSigner).
	Unsigned bool
	// ValidateAll makes every node validate every envelope it consumes
	// (consensus.WithEnvelopeValidation).
	ValidateAll bool
	// Payload fills the envelopes; "" means PayloadRandom.
	Payload Payload
	// Linger is the producer linger of both sides
	// (consensus.WithProduceLinger and kgo.ProducerLinger).
	Linger time.Duration
	// EnvSize is the size of an envelope in bytes (payload + signature);
	// envelopes are filled up to it.
	EnvSize int
	// MaxMessageCount is the channel's batch MaxMessageCount.
	MaxMessageCount uint32
	// PreferredMaxBytes is the channel's batch PreferredMaxBytes.
	PreferredMaxBytes uint32
	// BatchTimeout is the channel's batch timeout.
	BatchTimeout time.Duration
}

// DefaultConfig returns 3 nodes with signed blocks on memory ledgers, 3
// brokers, the chain's default linger (0), random envelopes of 1 KiB,
// batches of at most 500 envelopes, preferably 2 MiB, and a batch timeout
// of 20ms.
func DefaultConfig() Config {
	return Config{
		Nodes:             DefaultNodes,
		Ledger:            LedgerMemory,
		Payload:           PayloadRandom,
		Linger:            0, // the chain's default
		EnvSize:           1024,
		MaxMessageCount:   500,
		PreferredMaxBytes: 2 << 20,
		BatchTimeout:      20 * time.Millisecond,
	}
}

func (c *Config) validate() error {
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.Ledger == "" {
		c.Ledger = LedgerMemory
	}
	if c.Payload == "" {
		c.Payload = PayloadRandom
	}
	var errs []error
	if c.Nodes < 1 {
		errs = append(errs, fmt.Errorf("%d nodes: cannot be negative", c.Nodes))
	}
	if c.Brokers < 0 {
		errs = append(errs, fmt.Errorf("%d brokers: cannot be negative", c.Brokers))
	}
	if c.Ledger != LedgerMemory && c.Ledger != LedgerFile {
		errs = append(errs, fmt.Errorf("ledger %q: use %q or %q", c.Ledger, LedgerMemory, LedgerFile))
	}
	if c.Payload != PayloadRandom && c.Payload != PayloadZero {
		errs = append(errs, fmt.Errorf("payload %q: use %q or %q", c.Payload, PayloadRandom, PayloadZero))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("linger %v: cannot be negative", c.Linger))
	}
	if len(errs) > 0 {
		return fmt.Errorf("chainbench: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Harness is a running cluster of Config.Nodes chains and as many raw kgo
// clients on an embedded Kafka. Close releases it.
type Harness struct {
	k         *consensustest.Kafka
	ledgerDir string // with LedgerFile
	cluster   *consensustest.Cluster
	chains    []*consensus.Chain
	seen      []*counter // envelopes in each node's ledger, counted by a reader
	envs      []*cb.Envelope
	seq       uint64

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

func newCounter() *counter { return &counter{wake: make(chan struct{}, 1)} }

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
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var kopts []consensustest.KafkaOption
	if cfg.Brokers > 0 {
		kopts = append(kopts, consensustest.WithBrokers(cfg.Brokers))
	}
	k, err := consensustest.StartKafka(kopts...)
	if err != nil {
		return nil, err
	}
	h = &Harness{k: k}
	topic := topicSettings(len(k.Addrs()))
	started := false
	defer func() {
		if !started {
			h.Close()
			h = nil
		}
	}()
	if err := h.startCluster(ctx, cfg, topic); err != nil {
		return h, err
	}
	h.countLedgers()
	if err := h.buildEnvelopes(cfg, h.cluster.Client()); err != nil {
		return h, err
	}
	if err := h.startRaw(ctx, cfg, topic); err != nil {
		return h, err
	}
	if err := h.warmUp(ctx); err != nil {
		return h, err
	}
	started = true
	return h, nil
}

// topicSettings returns the settings of both sides' topics on a Kafka of
// brokers brokers: replicated as DefaultTopicSettings asks, or on every
// broker of a smaller cluster.
func topicSettings(brokers int) consensus.TopicSettings {
	topic := consensus.DefaultTopicSettings()
	if b := int16(brokers); b < topic.ReplicationFactor {
		topic.ReplicationFactor, topic.MinInsyncReplicas = b, min(topic.MinInsyncReplicas, int(b))
	}
	return topic
}

// startCluster creates the cluster cfg describes, its chains' topics with
// the given settings, on h's Kafka (and the temporary directory of its
// ledgers with LedgerFile), starts it and waits until every chain is
// ready.
func (h *Harness) startCluster(ctx context.Context, cfg Config, topic consensus.TopicSettings) error {
	copts := []consensustest.ClusterOption{
		consensustest.WithNodes(cfg.Nodes),
		consensustest.WithChannels(channelID),
		consensustest.WithBatchSize(cfg.MaxMessageCount, max(10<<20, uint32(cfg.EnvSize)*2)),
		consensustest.WithPreferredMaxBytes(cfg.PreferredMaxBytes),
		consensustest.WithBatchTimeout(cfg.BatchTimeout),
		consensustest.WithNodeLogger(slog.New(slog.DiscardHandler)),
		consensustest.WithoutBlockSources(),
		consensustest.WithConsenterOpts(
			consensus.WithProduceLinger(cfg.Linger),
			consensus.WithTopicSettings(topic),
			consensus.WithRetry(consensus.RetryPolicy{ShortInterval: 50 * time.Millisecond, ShortTotal: 10 * time.Second, LongInterval: time.Second, LongTotal: 10 * time.Second}),
		),
	}
	if cfg.Unsigned {
		copts = append(copts, consensustest.WithUnsignedBlocks())
	}
	if cfg.ValidateAll {
		copts = append(copts, consensustest.WithConsenterOpts(consensus.WithEnvelopeValidation()))
	}
	var err error
	if cfg.Ledger == LedgerFile {
		if h.ledgerDir, err = os.MkdirTemp("", "chainbench-"); err != nil {
			return err
		}
		copts = append(copts, consensustest.WithFileLedgers(h.ledgerDir))
	}
	if h.cluster, err = consensustest.NewCluster(h.k.Addrs(), copts...); err != nil {
		return err
	}
	if err := h.cluster.Start(ctx); err != nil {
		return err
	}
	if err := h.cluster.WaitReady(ctx); err != nil {
		return err
	}
	for i := range h.cluster.Len() {
		h.chains = append(h.chains, h.cluster.Node(i).Chain(channelID))
	}
	return nil
}

// countLedgers counts each node's envelopes as a reader of its ledger sees
// them, as the raw side counts what each consumer fetched: one goroutine
// per node, until Close.
func (h *Harness) countLedgers() {
	sctx, stopSeen := context.WithCancel(context.Background())
	h.stopSeen = stopSeen
	for i := range h.cluster.Len() {
		l := h.cluster.Node(i).Ledger(channelID)
		c := newCounter()
		h.seen = append(h.seen, c)
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
}

// startRaw starts the raw side: one kgo client per node with the chain's
// settings, those the cluster gives its nodes included, the raw topic with
// the given settings, and each client's consumer of it, paused until a
// raw round.
func (h *Harness) startRaw(ctx context.Context, cfg Config, topic consensus.TopicSettings) error {
	for i := range cfg.Nodes {
		cl, err := kgo.NewClient(append(consensustest.FastKgoOpts(),
			kgo.SeedBrokers(h.k.Addrs()...),
			kgo.ClientID(fmt.Sprintf("raw%d", i)),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(cfg.Linger),
			kgo.ProducerBatchMaxBytes(maxRecord),
			kgo.FetchMaxWait(250*time.Millisecond),
		)...)
		if err != nil {
			return err
		}
		h.raw = append(h.raw, cl)
		h.rawSeen = append(h.rawSeen, newCounter())
	}
	if _, err := consensus.EnsureTopic(ctx, kadm.NewClient(h.raw[0]), rawTopic, topic); err != nil {
		return err
	}
	rctx, stop := context.WithCancel(context.Background())
	h.rawStop = stop
	for i, cl := range h.raw {
		// Fetching is resumed for each raw round only.
		cl.PauseFetchTopics(rawTopic)
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
	return nil
}

// warmUp runs a round of each side, so that connections, producer IDs
// and metadata are in place before measuring, then collects the garbage.
func (h *Harness) warmUp(ctx context.Context) error {
	warm := Run{Callers: warmUpCall}
	if _, err := h.chainRound(ctx, warmUp, warm); err != nil {
		return err
	}
	if _, err := h.rawRound(ctx, warmUp, warm); err != nil {
		return err
	}
	runtime.GC()
	return nil
}

// buildEnvelopes builds distinctTx envelopes of cfg.EnvSize bytes signed by
// client, validates them once on the first chain, and the raw records
// carrying exactly what the chain produces for them.
func (h *Harness) buildEnvelopes(cfg Config, client *msptest.Identity) error {
	probe, err := client.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, channelID, nil)
	if err != nil {
		return err
	}
	pad := max(0, cfg.EnvSize-len(probe.Payload)-len(probe.Signature))
	rng := rand.NewChaCha8([32]byte{'c', 'h', 'a', 'i', 'n', 'b', 'e', 'n', 'c', 'h'})
	for i := range distinctTx {
		data := make([]byte, pad)
		if cfg.Payload == PayloadRandom {
			_, _ = rng.Read(data) // never fails
		} else {
			copy(data, fmt.Sprint("tx", i))
		}
		env, err := client.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, channelID, data)
		if err != nil {
			return err
		}
		if h.seq, err = h.chains[0].ProcessNormal(env); err != nil {
			return err
		}
		h.envs = append(h.envs, env)
		envBytes, err := proto.Marshal(env)
		if err != nil {
			return err
		}
		v, err := proto.Marshal(&ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
			Payload: envBytes, ConfigSeq: h.seq, Class: ab.KafkaMessageRegular_NORMAL}}})
		if err != nil {
			return err
		}
		h.rawValue = append(h.rawValue, v)
	}
	return nil
}

// Close stops the raw consumers, closes the clients and the cluster (the
// consenters and their ledgers) and stops the embedded Kafka.
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
	if h.cluster != nil {
		h.cluster.Close()
	}
	if h.ledgerDir != "" {
		_ = os.RemoveAll(h.ledgerDir)
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
// goroutines each send an envelope with the blocking call (Chain.Order,
// kgo's ProduceSync) before the next, on node caller%Nodes; Callers 1 is
// one envelope at a time. Else a single goroutine keeps up to InFlight
// envelopes in flight on node 0 (Chain.OrderAsync, kgo's Produce).
type Run struct {
	// Total is the number of envelopes per side.
	Total int
	// Round is the number of envelopes per round (at least 1 is used).
	Round int
	// Callers is the number of concurrent callers, or 0 to pipeline.
	Callers int
	// InFlight is the number of envelopes in flight when Callers is 0.
	InFlight int
	// ChainOnly runs the chain's rounds alone, for profiling it: the raw
	// figures of the Result are then zero.
	ChainOnly bool
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
	// RawP50 and RawP99 are percentiles of raw kgo's latency (Produce
	// until Kafka acknowledged the record).
	RawP50, RawP99 time.Duration
	// ChainCPU and RawCPU are the process CPU time (user + system, the
	// embedded brokers' included) per envelope of the chain's rounds and of
	// the raw rounds; zero where the platform does not report it.
	ChainCPU, RawCPU time.Duration
}

// Ratio is the chain's throughput over raw kgo's, over all rounds.
func (r Result) Ratio() float64 { return r.Chain / r.Raw }

// CPURatio is the chain's CPU time per envelope over raw kgo's.
func (r Result) CPURatio() float64 { return float64(r.ChainCPU) / float64(r.RawCPU) }

// Measure runs r.Total envelopes through each side in alternating rounds,
// the chain first in even rounds and raw kgo first in odd ones.
func (h *Harness) Measure(ctx context.Context, r Run) (Result, error) {
	switch {
	case r.Total <= 0:
		return Result{}, errors.New("chainbench: no envelopes to measure")
	case r.Callers < 0 || (r.Callers == 0 && r.InFlight < 1):
		return Result{}, fmt.Errorf("chainbench: %d callers, %d in flight: need callers, or at least one in flight", r.Callers, r.InFlight)
	}
	var chainTime, rawTime, chainCPU, rawCPU time.Duration
	var lat, rawLat []time.Duration
	var ratios []float64 // per pair of rounds
	for done, round := 0, 0; done < r.Total; round++ {
		n := min(max(r.Round, 1), r.Total-done)
		var ct, rt time.Duration
		chain := func() error {
			if r.Timer != nil {
				r.Timer.StartTimer()
			}
			c := cputime.Process()
			t := time.Now()
			l, err := h.chainRound(ctx, n, r)
			ct = time.Since(t)
			if r.Timer != nil {
				r.Timer.StopTimer()
			}
			// The round's garbage is its own cost, not the next round's.
			runtime.GC()
			chainCPU += cputime.Process() - c
			chainTime += ct
			lat = append(lat, l...)
			return err
		}
		raw := func() error {
			if r.ChainOnly {
				return nil
			}
			c := cputime.Process()
			t := time.Now()
			l, err := h.rawRound(ctx, n, r)
			rt = time.Since(t)
			runtime.GC()
			rawCPU += cputime.Process() - c
			rawTime += rt
			rawLat = append(rawLat, l...)
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
		if !r.ChainOnly {
			ratios = append(ratios, rt.Seconds()/ct.Seconds())
		}
		done += n
	}
	res := Result{
		Chain:    float64(r.Total) / chainTime.Seconds(),
		ChainCPU: chainCPU / time.Duration(r.Total),
	}
	res.P50, res.P99 = percentiles(lat)
	if !r.ChainOnly {
		slices.Sort(ratios)
		res.Raw = float64(r.Total) / rawTime.Seconds()
		res.RawCPU = rawCPU / time.Duration(r.Total)
		res.MedianRoundRatio = ratios[len(ratios)/2]
		res.RawP50, res.RawP99 = percentiles(rawLat)
	}
	return res, nil
}

// percentiles sorts lat and returns its 50th and 99th percentiles.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// drive sends n items as r says: with r.Callers > 0, that many goroutines
// each call send (which returns the outcome) before the next, on node
// caller%nodes; else one goroutine keeps up to r.InFlight items in flight
// with sendAsync on node 0, which calls done once with the outcome. It
// returns the per-item latencies.
func drive(n, nodes int, r Run, send func(node, i int) error, sendAsync func(node, i int, done func(error))) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var firstErr atomic.Pointer[error]
	fail := func(err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
		}
	}
	var wg sync.WaitGroup
	if r.Callers > 0 {
		var next atomic.Int64
		for c := range r.Callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n || firstErr.Load() != nil {
						return
					}
					t := time.Now()
					err := send(c%nodes, i)
					lat[i] = time.Since(t)
					fail(err)
				}
			}()
		}
	} else {
		sem := make(chan struct{}, r.InFlight)
		for i := range n {
			if firstErr.Load() != nil {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			t := time.Now()
			sendAsync(0, i, func(err error) {
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
func (h *Harness) chainRound(ctx context.Context, n int, r Run) ([]time.Duration, error) {
	base := make([]int64, len(h.seen))
	for i, c := range h.seen {
		base[i] = c.n.Load()
	}
	lat, err := drive(n, len(h.chains), r,
		func(node, i int) error {
			return h.chains[node].Order(ctx, h.envs[i%len(h.envs)], h.seq)
		},
		func(node, i int, done func(error)) {
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

// rawRound produces n records and returns once every raw client consumed
// them. The raw clients fetch only during the round.
func (h *Harness) rawRound(ctx context.Context, n int, r Run) ([]time.Duration, error) {
	base := make([]int64, len(h.rawSeen))
	for i, c := range h.rawSeen {
		base[i] = c.n.Load()
	}
	for _, cl := range h.raw {
		cl.ResumeFetchTopics(rawTopic)
	}
	defer func() {
		for _, cl := range h.raw {
			cl.PauseFetchTopics(rawTopic)
		}
	}()
	key := []byte("0")
	record := func(i int) *kgo.Record {
		return &kgo.Record{Topic: rawTopic, Partition: 0, Key: key, Value: h.rawValue[i%len(h.rawValue)]}
	}
	lat, err := drive(n, len(h.raw), r,
		func(node, i int) error {
			return h.raw[node].ProduceSync(ctx, record(i)).FirstErr()
		},
		func(node, i int, done func(error)) {
			h.raw[node].Produce(ctx, record(i), func(_ *kgo.Record, err error) { done(err) })
		})
	if err != nil {
		return nil, err
	}
	for i, c := range h.rawSeen {
		if err := c.wait(ctx, base[i]+int64(n)); err != nil {
			return nil, fmt.Errorf("raw consumer %d: %w", i, err)
		}
	}
	return lat, nil
}

// LedgerLatency measures, under light load, the time from Kafka's
// acknowledgement of an envelope to its block being in every node's
// ledger: n envelopes, one at a time on node 0, each sent gap after the
// previous one reached every ledger (with a gap longer than the batch
// timeout, each envelope starts a batch that the timer cuts). It returns
// the median and 99th percentile.
func (h *Harness) LedgerLatency(ctx context.Context, n int, gap time.Duration) (p50, p99 time.Duration, err error) {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		base := make([]int64, len(h.seen))
		for j, c := range h.seen {
			base[j] = c.n.Load()
		}
		if err := h.chains[0].Order(ctx, h.envs[i%len(h.envs)], h.seq); err != nil {
			return 0, 0, err
		}
		acked := time.Now()
		for j, c := range h.seen {
			if err := c.wait(ctx, base[j]+1); err != nil {
				return 0, 0, fmt.Errorf("node %d: %w", j, err)
			}
		}
		lat = append(lat, time.Since(acked))
		select {
		case <-time.After(gap):
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	p50, p99 = percentiles(lat)
	return p50, p99, nil
}
