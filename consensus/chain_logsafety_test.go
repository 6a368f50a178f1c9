package consensus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// endOffset returns the end offset of partition 0 of topic.
func endOffset(t *testing.T, ctx context.Context, k *consensustest.Kafka, topic string) int64 {
	t.Helper()
	cl := rawClient(t, k)
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	o, ok := offs.Lookup(topic, 0)
	require.True(t, ok)
	require.NoError(t, o.Err)
	return o.Offset
}

// waitHalted waits until chain halts and returns its error.
func waitHalted(t *testing.T, ctx context.Context, chain *consensus.Chain) error {
	t.Helper()
	select {
	case <-chain.Done():
	case <-ctx.Done():
		t.Fatalf("channel %s did not halt: %v", chain.Channel(), chain.Available())
	}
	return chain.Err()
}

// TestLogRecordsMissingCatchUp stops a node, orders more, deletes every
// record from the log (as retention would) and restarts the node: it pulls
// the blocks it lacks from the other nodes and goes on consuming.
func TestLogRecordsMissingCatchUp(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	skips := newSkipWatcher()
	c := itCluster(t, ctx, k, consensustest.WithNodeLogger(slog.New(skips)))
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 10, acks)
	c.Node(2).Stop()
	orderAndWait(t, ctx, c, ch, "while-stopped", 25, acks)
	// A record after the last block, which no block persists. The running
	// nodes consume it before it is deleted: otherwise they too would miss
	// it, and wait for a block past it as node 2 does.
	produceRaw(t, ctx, rawClient(t, k), ch, []byte("not an orderer message"))
	end := endOffset(t, ctx, k, ch)
	require.Eventually(t, func() bool { return skips.skipped("node0", end-1) && skips.skipped("node1", end-1) },
		10*time.Second, 5*time.Millisecond, "the running nodes consume the last record")
	require.NoError(t, k.DeleteRecords(ctx, ch, end))

	require.NoError(t, c.Node(2).Restart())
	// The last records the others consumed are in no block yet: node 2 waits for a block past
	// the gap, which the next envelope brings, and says why it waits.
	require.Eventually(t, func() bool {
		err := c.Node(2).Chain(ch).Available()
		return errors.Is(err, consensus.ErrNotReady) && errors.Is(err, consensus.ErrRecordsMissing)
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Node(0).Order(ctx, ch, envelope(c, ch, []byte(ch+"/after/first"))))
	acks.add(ch, ch+"/after/first")
	require.NoError(t, c.Node(2).WaitReady(ctx))
	orderAndWait(t, ctx, c, ch, "after", 10, acks)
}

// skipWatcher is a slog.Handler that notes, for each node (the "node"
// attribute of the cluster's loggers), the offsets of the records its
// chain logged as skipped.
type skipWatcher struct {
	mu   *sync.Mutex
	seen map[string]map[int64]bool
	node string
}

func newSkipWatcher() *skipWatcher {
	return &skipWatcher{mu: new(sync.Mutex), seen: map[string]map[int64]bool{}}
}

func (h *skipWatcher) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *skipWatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "record not ordered" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "offset" {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.seen[h.node] == nil {
				h.seen[h.node] = map[int64]bool{}
			}
			h.seen[h.node][a.Value.Int64()] = true
		}
		return true
	})
	return nil
}

func (h *skipWatcher) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	for _, a := range as {
		if a.Key == "node" {
			c.node = a.Value.String()
		}
	}
	return &c
}

func (h *skipWatcher) WithGroup(string) slog.Handler { return h }

// skipped reports whether node logged the record at offset as skipped.
func (h *skipWatcher) skipped(node string, offset int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[node][offset]
}

// TestLogRecordsMissingNoSource is TestLogRecordsMissingCatchUp without
// block sources: the restarted node halts with ErrRecordsMissing, naming
// the missing range, and writes nothing.
func TestLogRecordsMissingNoSource(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithoutBlockSources())
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 10, acks)
	c.Node(2).Stop()
	h := c.Node(2).Ledger(ch).Height()
	orderAndWait(t, ctx, c, ch, "while-stopped", 25, acks)
	end := endOffset(t, ctx, k, ch)
	require.NoError(t, k.DeleteRecords(ctx, ch, end))

	require.NoError(t, c.Node(2).Restart())
	err := waitHalted(t, ctx, c.Node(2).Chain(ch))
	require.ErrorIs(t, err, consensus.ErrRecordsMissing)
	require.ErrorIs(t, err, consensus.ErrHalted)
	var le *consensus.LogError
	require.ErrorAs(t, err, &le)
	from, to := le.Missing()
	require.Equal(t, end-1, to)
	require.Less(t, from, to)
	require.Equal(t, h, c.Node(2).Ledger(ch).Height(), "the node wrote nothing")
	t.Log(err)
	if errors.Is(err, consensus.ErrInconsistent) {
		t.Fatal("missing records are not an inconsistency")
	}
}

// TestLogReplacedWhileNodeStopped deletes the channel's topic while a node
// is stopped and lets it be created again: the restarted node refuses the
// new log (ErrLogReplaced) before it writes or produces anything, and so
// do the others once they read it.
func TestLogReplacedWhileNodeStopped(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k)
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 20, acks)
	c.Node(2).Stop()
	require.NoError(t, k.DeleteTopic(ctx, ch))
	heights := c.Heights(ch)

	require.NoError(t, c.Node(2).Restart())
	for i := range c.Len() {
		err := waitHalted(t, ctx, c.Node(i).Chain(ch))
		require.ErrorIs(t, err, consensus.ErrLogReplaced, "node %d", i)
		require.ErrorIs(t, err, consensus.ErrInconsistent, "node %d", i)
		t.Log(err)
	}
	require.Equal(t, heights, c.Heights(ch), "no node wrote a block")
	require.NoError(t, c.CheckConsistent(ch))
	require.Equal(t, int64(0), endOffset(t, ctx, k, ch), "no node produced into the new log")
}

// lineCounter is a slog handler that counts the lines logged at WARN or
// above, and remembers the ERROR lines.
type lineCounter struct {
	mu     *sync.Mutex
	lines  *int
	errors *[]string
	attrs  []slog.Attr
}

func newLineCounter() *lineCounter {
	return &lineCounter{mu: new(sync.Mutex), lines: new(int), errors: new([]string)}
}

func (h *lineCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *lineCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.lines++
	if r.Level >= slog.LevelError {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
		*h.errors = append(*h.errors, msg)
	}
	return nil
}

func (h *lineCounter) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(c.attrs[:len(c.attrs):len(c.attrs)], as...)
	return &c
}

func (h *lineCounter) WithGroup(string) slog.Handler { return h }

// count returns the lines counted and the ERROR lines.
func (h *lineCounter) count() (int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.lines, append([]string(nil), *h.errors...)
}

// TestLogReplacedWhileRunning deletes the topic under running nodes, then
// creates it again as an operator would: the nodes go errored (and say so
// once each), then every node refuses the new log with ErrLogReplaced.
// Nothing is written, nothing produced into the new log, and the logs stay
// short.
func TestLogReplacedWhileRunning(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	lines := newLineCounter()
	c := itCluster(t, ctx, k, consensustest.WithNodeLogger(slog.New(lines)))
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 20, acks)
	heights := c.Heights(ch)

	require.NoError(t, k.DeleteTopic(ctx, ch))
	waitErrored(t, c, ch, 10*time.Second)
	time.Sleep(2 * time.Second) // errored for a while: probes keep failing
	_, err := kadm.NewClient(rawClient(t, k)).CreateTopic(ctx, 1, 3, nil, ch)
	require.NoError(t, err)
	for i := range c.Len() {
		err := waitHalted(t, ctx, c.Node(i).Chain(ch))
		require.ErrorIs(t, err, consensus.ErrLogReplaced, "node %d", i)
	}
	require.Equal(t, heights, c.Heights(ch), "no node wrote a block")
	require.NoError(t, c.CheckConsistent(ch))
	require.Equal(t, int64(0), endOffset(t, ctx, k, ch), "no node produced into the new log")
	n, errs := lines.count()
	t.Logf("%d lines at WARN or above; ERROR: %q", n, errs)
	require.Len(t, errs, c.Len(), "one ERROR line per node: its halt")
	for _, e := range errs {
		require.Contains(t, e, "log replaced")
	}
	require.Less(t, n, 20*c.Len(), "a few lines per node, not a flood")
}

// TestLogRecordsDeletedUpToResume deletes the records before a stopped
// node's resume offset exactly: nothing it needs is missing, and it resumes
// from the log without catching up.
func TestLogRecordsDeletedUpToResume(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithoutBlockSources())
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 10, acks)
	c.Node(2).Stop()
	md, err := consensus.KafkaMetadataOf(lastBlock(t, c.Node(2).Ledger(ch)))
	require.NoError(t, err)
	orderSome(t, ctx, c, ch, "while-stopped", 25, acks)
	require.NoError(t, k.DeleteRecords(ctx, ch, md.LastOffsetPersisted+1))

	require.NoError(t, c.Node(2).Restart())
	require.NoError(t, c.Node(2).WaitReady(ctx))
	orderAndWait(t, ctx, c, ch, "after", 10, acks)
}

// lastBlock returns the last block of l.
func lastBlock(t *testing.T, l ledger.Reader) *cb.Block {
	t.Helper()
	b, err := l.Block(l.Height() - 1)
	require.NoError(t, err)
	return b
}

// joinNode starts a new node on k's channel ch from its genesis block,
// with sources to catch up from, and returns its chain and ledger.
func joinNode(t *testing.T, ctx context.Context, k *consensustest.Kafka, c *consensustest.Cluster, ch string, sources ...consensus.BlockSource) (*consensus.Chain, *ledger.Memory) {
	t.Helper()
	cons, err := consensus.NewConsenter(
		consensus.WithSeedBrokers(k.Addrs()...),
		consensus.WithClientID("joiner"),
		consensus.WithRetry(consensustest.FastRetryPolicy()),
		consensus.WithLogger(slog.New(slog.DiscardHandler)),
		consensus.WithBlockSources(sources...),
	)
	require.NoError(t, err)
	t.Cleanup(cons.Close)
	l := ledger.NewMemory()
	chain, err := cons.NewChain(ch, l, c.Genesis(ch))
	require.NoError(t, err)
	chain.Start()
	return chain, l
}

// tamperedSource serves a node's blocks with the data of block bad
// altered; it counts the times it served the bad block.
type tamperedSource struct {
	node      *consensustest.Node
	bad       uint64
	servedBad atomic.Int64
}

func (s *tamperedSource) Blocks(ctx context.Context, channel string, from uint64, fn func(*cb.Block) error) error {
	return s.node.Blocks(ctx, channel, from, func(b *cb.Block) error {
		if b.Header.Number == s.bad {
			s.servedBad.Add(1)
			b = proto.Clone(b).(*cb.Block)
			b.Data.Data[0] = append(bytes.Clone(b.Data.Data[0]), 0)
		}
		return fn(b)
	})
}

// TestLogNewNodeOnboardsFromSources starts a brand-new node after the
// channel's first records were deleted: it pulls every block from the
// other nodes, skipping a source that serves a tampered block, and its
// ledger ends up identical to theirs.
func TestLogNewNodeOnboardsFromSources(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k)
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 30, acks)
	require.NoError(t, k.DeleteRecords(ctx, ch, endOffset(t, ctx, k, ch)-2))

	bad := &tamperedSource{node: c.Node(0), bad: 2}
	chain, l := joinNode(t, ctx, k, c, ch, bad, c.Node(1))
	require.NoError(t, c.Node(0).Order(ctx, ch, envelope(c, ch, []byte(ch+"/after/first"))))
	acks.add(ch, ch+"/after/first")
	require.NoError(t, chain.WaitReady(ctx))
	require.NotZero(t, bad.servedBad.Load(), "the tampered block was offered")
	orderAndWait(t, ctx, c, ch, "after", 10, acks)
	require.Eventually(t, func() bool { return l.Height() == c.Node(0).Ledger(ch).Height() }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, consensustest.CompareLedgers(c.Node(0).Ledger(ch), l))
}

// TestLogNewNodeWithOnlyBadSources is TestLogNewNodeOnboardsFromSources
// with a tampered source only: the new node halts with ErrRecordsMissing
// and keeps only its genesis block.
func TestLogNewNodeWithOnlyBadSources(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k)
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderAndWait(t, ctx, c, ch, "before", 30, acks)
	require.NoError(t, k.DeleteRecords(ctx, ch, endOffset(t, ctx, k, ch)))

	chain, l := joinNode(t, ctx, k, c, ch, &tamperedSource{node: c.Node(0), bad: 1})
	err := waitHalted(t, ctx, chain)
	require.ErrorIs(t, err, consensus.ErrRecordsMissing)
	require.Equal(t, uint64(1), l.Height())
}

// TestLogSecondClusterOnTheSameTopic starts, for a while, a second cluster
// with the same channel name (its own organisation, another batch size) on
// the same Kafka: its records (Connect, envelopes, time-to-cuts for its own
// block numbers) land in the first cluster's log. The first cluster keeps
// ordering, its ledgers identical; with envelope validation on, the
// stranger's envelopes are in none of its blocks.
func TestLogSecondClusterOnTheSameTopic(t *testing.T) {
	for _, validate := range []bool{false, true} {
		t.Run(fmt.Sprintf("validate=%v", validate), func(t *testing.T) {
			k := itKafka(t)
			ctx := itCtx(t, 60*time.Second)
			var opts []consensustest.ClusterOption
			if validate {
				opts = append(opts, consensustest.WithConsenterOpts(consensus.WithEnvelopeValidation()))
			}
			c := itCluster(t, ctx, k, opts...)
			ch := consensustest.DefaultChannel
			acks := newAckLog()
			orderAndWait(t, ctx, c, ch, "before", 20, acks)

			other := itCluster(t, ctx, k, consensustest.WithBatchSize(3, 1<<20), consensustest.WithBatchTimeout(5*time.Millisecond))
			for i := range 12 {
				p := fmt.Sprintf("maybe:stranger/%d", i)
				require.NoError(t, other.Order(ctx, ch, envelope(other, ch, []byte(p))))
				orderSome(t, ctx, c, ch, fmt.Sprint("during", i), 2, acks)
			}
			time.Sleep(200 * time.Millisecond) // the stranger's timers fire
			other.Close()

			orderAndWait(t, ctx, c, ch, "after", 20, acks)
			strangers := 0
			for p, n := range normalCounts(t, c.Node(0).Ledger(ch)) {
				if strings.HasPrefix(p, "maybe:stranger/") {
					strangers += n
				}
			}
			if validate {
				require.Zero(t, strangers, "envelopes of another organisation were ordered")
			} else {
				require.Equal(t, 12, strangers, "without validation, the stranger's envelopes are ordered like any other, on every node alike")
			}
			for i := range c.Len() {
				require.NoError(t, c.Node(i).Chain(ch).Err(), "node %d", i)
			}
		})
	}
}

// failingLedger is a memory ledger whose appends fail while fail is set.
type failingLedger struct {
	*ledger.Memory
	fail atomic.Bool
}

func (l *failingLedger) Append(b *cb.Block) error {
	if l.fail.Load() {
		return errors.New("disk full")
	}
	return l.Memory.Append(b)
}

// AppendBuilt overrides the embedded ledger's, which would bypass Append.
func (l *failingLedger) AppendBuilt(b *cb.Block) error {
	if l.fail.Load() {
		return errors.New("disk full")
	}
	return l.Memory.AppendBuilt(b)
}

// TestLedgerWriteFailureHaltsAndResumes makes a node's ledger fail: the
// chain halts, logs the cause at ERROR, and a new chain on the same ledger
// resumes where it stopped, with every acknowledged envelope ordered once.
func TestLedgerWriteFailureHaltsAndResumes(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithNodes(1))
	ch := consensustest.DefaultChannel
	l := &failingLedger{Memory: ledger.NewMemory()}
	lines := newLineCounter()
	newChain := func() *consensus.Chain {
		cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(k.Addrs()...), consensus.WithRetry(consensustest.FastRetryPolicy()),
			consensus.WithLogger(slog.New(lines)))
		require.NoError(t, err)
		t.Cleanup(cons.Close)
		chain, err := cons.NewChain(ch, l, c.Genesis(ch))
		require.NoError(t, err)
		chain.Start()
		require.NoError(t, chain.WaitReady(ctx))
		return chain
	}
	chain := newChain()
	acks := newAckLog()
	order := func(tag string, n int) error {
		for i := range n {
			p := fmt.Sprintf("%s/%s/%d", ch, tag, i)
			env := envelope(c, ch, []byte("maybe:"+p))
			seq, err := chain.ProcessNormal(env)
			require.NoError(t, err)
			if err := chain.Order(ctx, env, seq); err != nil {
				return err
			}
			acks.add(ch, "maybe:"+p)
		}
		return nil
	}
	require.NoError(t, order("before", 15))
	l.fail.Store(true)
	// Orders fail once the chain halted on the first block it could not
	// write. How many are acknowledged before that depends on how far the
	// consumer lags the producer, so order until one fails (the context
	// bounds the loop).
	var err error
	for i := 0; err == nil; i++ {
		err = order(fmt.Sprintf("failing-%d", i), 10)
	}
	require.ErrorIs(t, err, consensus.ErrHalted)
	err = waitHalted(t, ctx, chain)
	require.ErrorContains(t, err, "disk full")
	require.ErrorIs(t, err, consensus.ErrHalted)
	_, errs := lines.count()
	require.Len(t, errs, 1)
	require.Contains(t, errs[0], "disk full")

	l.fail.Store(false)
	chain = newChain()
	require.NoError(t, order("after", 15))
	require.Eventually(t, func() bool {
		counts := normalCounts(t, l)
		for _, p := range acks.of(ch) {
			if counts[p] != 1 {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "every acknowledged envelope once in the ledger")
	require.NoError(t, consensustest.CompareLedgers(c.Node(0).Ledger(ch), l))
}
