package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// loadResult is what the clients did.
type loadResult struct {
	// sent maps the transaction ID of every envelope the clients ordered
	// to whether Kafka acknowledged it. An envelope that was not
	// acknowledged may or may not be in the log, so in a block or not.
	sent      map[string]bool
	latencies []time.Duration // of every acknowledged Order, sorted
	elapsed   time.Duration   // from the first Order to the last acknowledgement
	committed time.Duration   // from the first Order until every node has every acknowledged envelope
	failovers int64           // envelopes a client ordered through another node than its own
	restart   *restartInfo    // nil without -restart
}

// restartInfo describes the restart of a node.
type restartInfo struct {
	node         string
	atEnvelopes  int64         // envelopes acknowledged when it was halted
	resumeHeight uint64        // its ledger height when it started again
	ready        time.Duration // from halting until its new chain was ready
	caughtUp     time.Duration // from halting until it had caught up with the others
	catchUpTo    uint64        // the height it caught up to
}

// generateLoad orders cfg.envelopes envelopes from cfg.clients concurrent
// clients, client i sending through node i mod nodes and turning to the
// next node while its own restarts. Half-way through it restarts the last
// node (with -restart). It returns once every node has written every
// acknowledged envelope.
func generateLoad(ctx context.Context, cfg config, net *network, prog *progress) (*loadResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		claimed   atomic.Int64 // envelopes taken by a client
		done      atomic.Int64 // envelopes whose Order returned
		failovers atomic.Int64
		halfway   = make(chan struct{})
		restartAt = max(1, int64(cfg.envelopes)/2)
	)
	prog.begin(&done, net.nodes[0].height)

	clients := make([]*client, cfg.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		c := &client{
			nodes:     net.nodes,
			home:      i % len(net.nodes),
			channel:   net.channel,
			cluster:   net.cluster,
			data:      make([]byte, cfg.size),
			sent:      make(map[string]bool),
			failovers: &failovers,
		}
		clients[i] = c
		wg.Go(func() {
			for {
				if claimed.Add(1) > int64(cfg.envelopes) {
					return
				}
				if err := c.orderOne(ctx); err != nil {
					cancel(err)
					return
				}
				if done.Add(1) == restartAt {
					close(halfway)
				}
			}
		})
	}

	var res loadResult
	var restartErr error
	var rwg sync.WaitGroup
	if cfg.restart {
		rwg.Go(func() {
			select {
			case <-halfway:
				res.restart, restartErr = restartNode(ctx, net, net.nodes[len(net.nodes)-1], done.Load(), prog)
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	rwg.Wait()
	if ctx.Err() != nil {
		return nil, interrupted(ctx)
	}
	if restartErr != nil {
		return nil, restartErr
	}

	res.sent = make(map[string]bool, cfg.envelopes)
	for _, c := range clients {
		for id, acked := range c.sent {
			res.sent[id] = acked
		}
		res.latencies = append(res.latencies, c.latencies...)
	}
	slices.Sort(res.latencies)
	res.failovers = failovers.Load()

	if err := waitCommitted(ctx, net, res.sent, cfg.batchTimeout); err != nil {
		return nil, err
	}
	res.committed = time.Since(start)
	return &res, nil
}

// interrupted returns why ctx ended: a client's error, or the interrupt.
func interrupted(ctx context.Context) error {
	err := context.Cause(ctx)
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return err
}

// client orders envelopes signed by the cluster's client identity, through
// its home node unless that node is down.
type client struct {
	nodes     []*node
	home      int
	channel   string
	cluster   *consensustest.Cluster
	data      []byte
	sent      map[string]bool
	latencies []time.Duration
	failovers *atomic.Int64
}

// orderOne builds a signed envelope with a random payload and orders it. An
// envelope Kafka did not acknowledge is recorded as such (it may or may not
// be in the log) and is not sent again: sending it again could order it
// twice. Other errors end the run.
func (c *client) orderOne(ctx context.Context) error {
	rand.Read(c.data)
	env, err := c.cluster.Envelope(c.channel, c.data)
	if err != nil {
		return err
	}
	id, err := consensustest.TxID(env)
	if err != nil {
		return err
	}
	lat, err := c.submit(ctx, env)
	switch {
	case err == nil:
		c.sent[id] = true
		c.latencies = append(c.latencies, lat)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, consensus.ErrNotAcknowledged):
		c.sent[id] = false
		c.nodes[c.home].logger.Warn("envelope not acknowledged", "tx", id, "err", err)
		return nil
	default:
		return err
	}
}

// submit orders env through the client's home node, or through the next
// nodes in turn while it is down or not ready: in those cases the envelope
// was not produced, so sending it elsewhere cannot duplicate it.
func (c *client) submit(ctx context.Context, env *cb.Envelope) (time.Duration, error) {
	deadline := time.Now().Add(retry.ShortTotal)
	for {
		var err error
		for k := range c.nodes {
			n := c.nodes[(c.home+k)%len(c.nodes)]
			var lat time.Duration
			lat, err = n.order(ctx, env)
			if err == nil {
				if k > 0 {
					c.failovers.Add(1)
				}
				return lat, nil
			}
			if !errors.Is(err, errNodeDown) && !errors.Is(err, consensus.ErrNotReady) && !errors.Is(err, consensus.ErrHalted) {
				return 0, err
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no node accepted an envelope for %v: %w", retry.ShortTotal, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// restartNode halts n, closes its ledger, starts it again on the reopened
// ledger and waits until it has caught up with the first node.
func restartNode(ctx context.Context, net *network, n *node, acked int64, prog *progress) (*restartInfo, error) {
	info := &restartInfo{node: n.String(), atEnvelopes: acked}
	prog.printf("%s: halting at %d acknowledged envelopes, ledger height %d; its clients turn to the other nodes", n, acked, n.height())
	start := time.Now()
	h, err := n.restart(ctx)
	if err != nil {
		return nil, fmt.Errorf("restarting %s: %w", n, err)
	}
	info.resumeHeight, info.ready = h, time.Since(start)
	prog.printf("%s: restarted on its ledger at height %d, ready after %v", n, h, info.ready.Round(time.Millisecond))

	info.catchUpTo = max(net.nodes[0].height(), h)
	limit := time.NewTimer(30 * time.Second)
	defer limit.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.height() < info.catchUpTo {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-limit.C:
			return nil, fmt.Errorf("%s did not catch up to height %d after its restart (at %d)", n, info.catchUpTo, n.height())
		case <-tick.C:
		}
	}
	info.caughtUp = time.Since(start)
	prog.printf("%s: caught up to height %d, %v after it was halted", n, info.catchUpTo, info.caughtUp.Round(time.Millisecond))
	return info, nil
}

// waitCommitted waits until every node's ledger holds every acknowledged
// envelope (consensustest's WaitInAllLedgers) and has as many blocks as the
// highest.
func waitCommitted(ctx context.Context, net *network, sent map[string]bool, batchTimeout time.Duration) error {
	var acked []string
	for id, ok := range sent {
		if ok {
			acked = append(acked, id)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second+2*batchTimeout)
	defer cancel()
	err := net.cluster.WaitInAllLedgers(wctx, net.channel, acked...)
	if err == nil {
		var top uint64
		for _, n := range net.nodes {
			top = max(top, n.height())
		}
		err = net.cluster.WaitHeight(wctx, net.channel, top)
	}
	switch {
	case ctx.Err() != nil:
		return interrupted(ctx)
	case err != nil:
		return fmt.Errorf("waiting for every acknowledged envelope in every ledger: %w", err)
	}
	return nil
}
