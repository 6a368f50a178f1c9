package consensus_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
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
		t.Fatalf("channel %s did not halt: %v", chain.Channel(), chain.Ready())
	}
	return chain.Err()
}

// TestLogRecordsMissingCatchUp stops a node, orders more, deletes every
// record from the log (as retention would) and restarts the node: it pulls
// the blocks it lacks from the other nodes and goes on consuming.
func TestLogRecordsMissingCatchUp(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithNodeLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderSome(t, ctx, c, ch, "before", 10, acks)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
	c.Node(2).Stop()
	orderSome(t, ctx, c, ch, "while-stopped", 25, acks)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
	require.NoError(t, k.DeleteRecords(ctx, ch, endOffset(t, ctx, k, ch)))

	require.NoError(t, c.Node(2).Restart())
	// The last records the others consumed may be in no block yet: node 2
	// waits for a block past the gap, which the next envelope brings.
	require.NoError(t, c.Node(0).Order(ctx, ch, c.Envelope(ch, []byte(ch+"/after/first"))))
	acks.add(ch, ch+"/after/first")
	require.NoError(t, c.Node(2).WaitReady(ctx))
	orderSome(t, ctx, c, ch, "after", 10, acks)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
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
	orderSome(t, ctx, c, ch, "before", 10, acks)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
	c.Node(2).Stop()
	h := c.Node(2).Ledger(ch).Height()
	orderSome(t, ctx, c, ch, "while-stopped", 25, acks)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
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
	c := itCluster(t, ctx, k, consensustest.WithNodeLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	ch := consensustest.DefaultChannel
	acks := newAckLog()
	orderSome(t, ctx, c, ch, "before", 20, acks)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
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
