package consensustest_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// chainOf returns a memory ledger holding genesis and one block per batch.
func chainOf(t *testing.T, genesis *cb.Block, batches ...[]*cb.Envelope) *ledger.Memory {
	t.Helper()
	l := ledger.NewMemory()
	require.NoError(t, l.Append(genesis))
	prev := genesis
	for i, batch := range batches {
		data := make([][]byte, len(batch))
		for j, env := range batch {
			data[j] = protoutil.MarshalOrPanic(env)
		}
		b := protoutil.NewBlock(uint64(i+1), protoutil.HeaderHash(prev.GetHeader()), data)
		require.NoError(t, l.Append(b))
		prev = b
	}
	return l
}

func TestCheckAgreement(t *testing.T) {
	org, err := msptest.NewCA("Org1MSP")
	require.NoError(t, err)
	client, err := org.Issue("client")
	require.NoError(t, err)
	genesis, err := msptest.GenesisBlock("ch", []*msptest.CA{org})
	require.NoError(t, err)
	newEnv := func(data string) (*cb.Envelope, string) {
		env, err := client.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, "ch", []byte(data))
		require.NoError(t, err)
		id, err := consensustest.TxID(env)
		require.NoError(t, err)
		return env, id
	}
	var e []*cb.Envelope
	sent := map[string]bool{}
	for i := range 4 {
		env, id := newEnv(fmt.Sprint(i))
		e = append(e, env)
		sent[id] = true
	}
	named := func(ls ...ledger.Reader) []consensustest.NodeLedger {
		var out []consensustest.NodeLedger
		for i, l := range ls {
			out = append(out, consensustest.NodeLedger{Node: string(rune('a' + i)), Ledger: l})
		}
		return out
	}

	t.Run("identical", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], e[2:])
		b := chainOf(t, genesis, e[:2], e[2:])
		rep, err := consensustest.CheckAgreement(named(a, b), sent)
		require.NoError(t, err)
		require.Equal(t, uint64(3), rep.Height)
		require.Equal(t, 4, rep.Transactions)
		require.Equal(t, 4, rep.Acknowledged)
		require.Len(t, rep.Tips, 2)
		require.Equal(t, "b", rep.Tips[1].Node)
		require.Equal(t, uint64(2), rep.Tips[1].Number)
		require.True(t, bytes.Equal(rep.Tips[0].HeaderHash, rep.Tips[1].HeaderHash))
	})
	t.Run("tampered data", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], e[2:])
		b := chainOf(t, genesis, []*cb.Envelope{e[1], e[0]}, e[2:])
		_, err := consensustest.CheckAgreement(named(a, b), sent)
		require.ErrorIs(t, err, consensustest.ErrLedgersDiffer)
		require.NotErrorIs(t, err, consensustest.ErrNotExactlyOnce)
		require.ErrorContains(t, err, "a and b: block 1 differs")
	})
	t.Run("different heights", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], e[2:])
		b := chainOf(t, genesis, e[:2])
		_, err := consensustest.CheckAgreement(named(a, b), sent)
		require.ErrorIs(t, err, consensustest.ErrLedgersDiffer)
		require.ErrorContains(t, err, "a has 3 blocks, b has 2")
	})
	t.Run("missing and duplicated", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], []*cb.Envelope{e[1], e[2]})
		rep, err := consensustest.CheckAgreement(named(a), sent)
		require.ErrorIs(t, err, consensustest.ErrNotExactlyOnce)
		require.ErrorContains(t, err, "1 acknowledged envelopes missing")
		require.ErrorContains(t, err, "1 envelopes in more than one place")
		require.Len(t, rep.Missing, 1)
		require.Len(t, rep.Duplicated, 1)
	})
	t.Run("unknown", func(t *testing.T) {
		stranger, _ := newEnv("?")
		a := chainOf(t, genesis, e, []*cb.Envelope{stranger})
		rep, err := consensustest.CheckAgreement(named(a), sent)
		require.ErrorIs(t, err, consensustest.ErrNotExactlyOnce)
		require.ErrorContains(t, err, "that no client sent")
		require.Len(t, rep.Unknown, 1)
	})
	t.Run("not acknowledged may be missing or ordered once", func(t *testing.T) {
		s := map[string]bool{}
		for id := range sent {
			s[id] = true
		}
		lost, lostID := newEnv("lost")
		_, strayID := newEnv("stray")
		s[lostID], s[strayID] = false, false
		a := chainOf(t, genesis, e, []*cb.Envelope{lost})
		rep, err := consensustest.CheckAgreement(named(a), s)
		require.NoError(t, err)
		require.Equal(t, 2, rep.NotAcknowledged)
		require.Equal(t, 1, rep.NotAcknowledgedOrdered)
	})
	t.Run("no ledger", func(t *testing.T) {
		_, err := consensustest.CheckAgreement(nil, sent)
		require.Error(t, err)
		_, err = consensustest.CheckAgreement([]consensustest.NodeLedger{{Node: "a"}}, sent)
		require.ErrorContains(t, err, "a: no ledger")
	})
}

// TestClusterWaitInAllLedgers orders envelopes through a cluster, one node
// stopped for part of it, waits until every ledger holds them and checks
// the agreement of the ledgers.
func TestClusterWaitInAllLedgers(t *testing.T) {
	k := startKafka(t)
	ctx := testCtx(t, 30*time.Second)
	c, err := consensustest.NewCluster(k.Addrs(), consensustest.WithBatchTimeout(20*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.WaitReady(ctx))
	ch := consensustest.DefaultChannel

	sent := map[string]bool{}
	var ids []string
	order := func(n int) {
		for i := range n {
			env := envelope(t, c, ch, fmt.Appendf(nil, "tx %d", i))
			id, err := consensustest.TxID(env)
			require.NoError(t, err)
			require.NoError(t, c.Order(ctx, ch, env))
			sent[id] = true
			ids = append(ids, id)
		}
	}
	order(7)
	c.Node(2).Stop()
	order(7)
	require.NoError(t, c.WaitInAllLedgers(ctx, ch, ids...), "the stopped node is not waited for")
	require.NoError(t, c.Node(2).Restart())
	require.NoError(t, c.WaitInAllLedgers(ctx, ch, ids...))
	require.NoError(t, c.WaitHeight(ctx, ch, c.Node(0).Chain(ch).Height()))
	rep, err := c.CheckAgreement(ch, sent)
	require.NoError(t, err)
	require.Equal(t, 14, rep.Acknowledged)
	require.Equal(t, 14, rep.Transactions)
	require.Len(t, rep.Tips, 3)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = c.WaitInAllLedgers(short, ch, "no such tx")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "node0 lacks 1")
}
