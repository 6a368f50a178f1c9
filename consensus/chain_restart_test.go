package consensus_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

// TestChainNodeRestartMidStream halts one node on file ledgers while
// clients order through the other two, restarts it from its ledger while
// they still order, and checks that it catches up with blocks identical to
// the others', each acknowledged envelope once.
func TestChainNodeRestartMidStream(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithFileLedgers(t.TempDir()))
	ch := consensustest.DefaultChannel
	acks := newAckLog()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); orderAll(t, ctx, c, ch, "run", 8, 60, acks, 0, 1) }()

	victim := c.Node(2)
	for acks.n.Load() < 100 && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	victim.Stop()
	stoppedAt := acks.n.Load()
	for acks.n.Load() < stoppedAt+100 && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	require.NoError(t, victim.Restart())
	require.NoError(t, victim.WaitReady(ctx))
	wg.Wait()
	require.False(t, t.Failed())

	waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
	waitOrdered(t, ctx, c, ch, acks.of(ch), 2) // the restarted node holds them all too
}

// TestChainRestartAllNodes stops every node, restarts them all from their
// file ledgers, and checks that the chain continues where it stopped: no
// block written twice, no envelope ordered twice, identical ledgers.
func TestChainRestartAllNodes(t *testing.T) {
	k := itKafka(t)
	ctx := itCtx(t, 60*time.Second)
	c := itCluster(t, ctx, k, consensustest.WithFileLedgers(t.TempDir()), consensustest.WithChannels("one", "two"))
	acks := newAckLog()
	for _, ch := range c.Channels() {
		orderAll(t, ctx, c, ch, "first", 4, 23, acks)
	}
	require.False(t, t.Failed())
	for _, ch := range c.Channels() {
		waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
	}
	before := c.Heights("one")

	for i := range c.Len() {
		c.Node(i).Stop()
	}
	for i := range c.Len() {
		require.NoError(t, c.Node(i).Restart())
	}
	require.NoError(t, c.WaitReady(ctx))
	require.Equal(t, before, c.Heights("one"), "restart alone must write nothing")

	// Stop everything right after ordering, with batches pending and
	// time-to-cut records possibly in flight, and restart.
	for _, ch := range c.Channels() {
		orderAll(t, ctx, c, ch, "second", 4, 23, acks)
	}
	require.False(t, t.Failed())
	for i := range c.Len() {
		c.Node(i).Stop()
	}
	for i := range c.Len() {
		require.NoError(t, c.Node(i).Restart())
	}
	require.NoError(t, c.WaitReady(ctx))
	for _, ch := range c.Channels() {
		waitOrdered(t, ctx, c, ch, acks.of(ch), 0)
	}
	require.Greater(t, c.Heights("one")[0], before[0])

	// And once more, restarting nodes one at a time while the others run.
	for i := range c.Len() {
		require.NoError(t, c.Node(i).Restart())
		require.NoError(t, c.Node(i).WaitReady(ctx))
	}
	for _, ch := range c.Channels() {
		orderAll(t, ctx, c, ch, "third", 3, 10, acks)
		waitOrdered(t, ctx, c, ch, acks.of(ch), 1)
	}
}
