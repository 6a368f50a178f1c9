package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// The clients of the partition tests run on a host of their own: the test
// binary runs itself in the client host's namespace with
// partitionClientEnv set, and TestMain then runs runPartitionClient on
// the command line instead of the tests.
//
// In load mode, workers broadcast envelopes to the orderers until SIGTERM,
// one at a time each, at a steady rate. A worker stays on a node for a
// second, then moves to the next, to spread the load; an envelope that is
// refused, or not answered within --timeout, is sent again as a new
// envelope (a new transaction ID) to the next node, and every worker
// avoids the node that failed for a while (0.5s, doubling to 2s while it
// keeps failing). Every envelope sent is a line of --out: a clientEvent.
//
// In probe mode, the client broadcasts one envelope to one orderer and
// reads its blocks with a BEST_EFFORT and a STRICT Deliver, and prints a
// probeResult.

// partitionClientEnv, set, makes the test binary a partition client.
const partitionClientEnv = "ORDERER_PARTITION_CLIENT"

// clientEvent is one envelope a load client sent, and its outcome.
type clientEvent struct {
	At      time.Time `json:"at"`   // when the outcome was known
	Sent    time.Time `json:"sent"` // when the envelope was sent
	Worker  int       `json:"worker"`
	Node    string    `json:"node"`    // the orderer's address
	Tx      string    `json:"tx"`      // the envelope's transaction ID
	Attempt int       `json:"attempt"` // 1, or more for a payload sent again
	// Outcome is the Broadcast status (SUCCESS, SERVICE_UNAVAILABLE...),
	// "timeout" (no answer within --timeout) or "stream <gRPC code>".
	Outcome string `json:"outcome"`
}

// probeResult is what a probe client prints.
type probeResult struct {
	Broadcast, BroadcastInfo, BroadcastTx string
	BestEffortBlocks                      int
	BestEffortStatus                      string
	StrictBlocks                          int
	StrictStatus                          string
}

// clientConfig is the command line of a partition client.
type clientConfig struct {
	mode     string
	orderers []string
	channel  string
	signer   signerFlags
	out      string
	workers  int
	rate     float64
	timeout  time.Duration
	stall    time.Duration
	size     int
}

func runPartitionClient(args []string) int {
	var c clientConfig
	var orderers commaList
	fs := flag.NewFlagSet("partition client", flag.ContinueOnError)
	fs.StringVar(&c.mode, "mode", "load", "load or probe")
	fs.Var(&orderers, "orderers", "orderer addresses (probe: the first)")
	fs.StringVar(&c.channel, "channel", testChannel, "channel")
	c.signer.register(fs, "the client")
	fs.StringVar(&c.out, "out", "", "file of the load's events (JSON lines)")
	fs.IntVar(&c.workers, "workers", 4, "concurrent workers, one envelope in flight each")
	fs.Float64Var(&c.rate, "rate", 50, "envelopes per second per worker")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Second, "how long an envelope may wait for its answer")
	fs.DurationVar(&c.stall, "stall-timeout", 2*time.Second, "the connections' stall timeout (see atomicbroadcast.DialOptions), as the nodes' --kafka-stall-timeout")
	fs.IntVar(&c.size, "size", 200, "bytes of random data per envelope")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.orderers = orderers
	signer, err := c.signer.load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "partition client:", err)
		return 1
	}
	if c.mode == "probe" {
		err = runProbe(c, signer, os.Stdout)
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err = runLoad(ctx, c, signer)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "partition client:", err)
		return 1
	}
	return 0
}

// loadClient is the state the workers of a load share.
type loadClient struct {
	cfg     clientConfig
	signer  msp.SigningIdentity
	clients []ab.AtomicBroadcastClient
	health  *nodeHealth
	events  chan clientEvent
}

// runLoad runs the workers until ctx ends, then waits for the envelopes in
// flight and writes the events.
func runLoad(ctx context.Context, c clientConfig, signer msp.SigningIdentity) error {
	f, err := os.Create(c.out)
	if err != nil {
		return err
	}
	defer f.Close()
	lc := &loadClient{cfg: c, signer: signer, events: make(chan clientEvent, 1024)}
	for _, addr := range c.orderers {
		conn, err := dialOrderer(addr, insecure.NewCredentials(), c.stall)
		if err != nil {
			return err
		}
		defer conn.Close()
		lc.clients = append(lc.clients, ab.NewAtomicBroadcastClient(conn))
	}
	lc.health = newNodeHealth(len(lc.clients))
	written := make(chan error, 1)
	go func() { written <- writeEvents(f, lc.events) }()
	var wg sync.WaitGroup
	for w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc.worker(ctx, w)
		}()
	}
	wg.Wait()
	close(lc.events)
	return <-written
}

// writeEvents writes the events, one JSON line each, flushing whenever no
// more are waiting, so that the test can follow the file while the load
// runs.
func writeEvents(w io.Writer, events <-chan clientEvent) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var err error
	for e := range events {
		if err == nil {
			err = enc.Encode(e)
		}
		if err == nil && len(events) == 0 {
			err = bw.Flush()
		}
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// worker sends envelopes, one at a time, every 1/rate seconds, until ctx
// ends; an envelope in flight then still gets its answer or times out.
func (lc *loadClient) worker(ctx context.Context, w int) {
	p := &picker{health: lc.health, cur: w % len(lc.clients), since: time.Now()}
	var s *answerStream
	defer func() { s.close() }()
	tick := time.NewTicker(time.Duration(float64(time.Second) / lc.cfg.rate))
	defer tick.Stop()
	attempt := 1
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		node, wait := p.pick(time.Now())
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if s != nil && s.node != node {
			s.close()
			s = nil
		}
		if s == nil {
			s = newAnswerStream(node)
		}
		e := lc.send(s, w, attempt)
		lc.events <- e
		if e.Outcome == cb.Status_SUCCESS.String() {
			lc.health.ok(node)
			attempt = 1
			continue
		}
		lc.health.failed(node, time.Now())
		s.close()
		s = nil
		attempt++
	}
}

// send sends one new envelope on s and waits for its answer, at most the
// timeout.
func (lc *loadClient) send(s *answerStream, w, attempt int) clientEvent {
	e := clientEvent{Sent: time.Now(), Worker: w, Node: lc.cfg.orderers[s.node], Attempt: attempt}
	data := make([]byte, lc.cfg.size)
	rand.Read(data)
	env, err := protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, lc.cfg.channel, data, lc.signer)
	if err == nil {
		e.Tx, err = consensustest.TxID(env)
	}
	if err != nil {
		panic(err) // the client's own identity and channel: a bug
	}
	e.Outcome = s.send(lc.clients[s.node], env, lc.cfg.timeout)
	e.At = time.Now()
	return e
}

// answerStream is a Broadcast stream to one node, with one envelope in
// flight at most.
type answerStream struct {
	node     int
	ctx      context.Context
	cancel   context.CancelFunc
	stream   ab.AtomicBroadcast_BroadcastClient
	answers  chan answer
	timedOut atomic.Bool
}

type answer struct {
	r   *ab.BroadcastResponse
	err error
}

func newAnswerStream(node int) *answerStream {
	ctx, cancel := context.WithCancel(context.Background())
	return &answerStream{node: node, ctx: ctx, cancel: cancel, answers: make(chan answer, 1)}
}

func (s *answerStream) close() {
	if s != nil {
		s.cancel()
	}
}

// send opens the stream if need be, sends env and returns the status of
// its answer, "timeout" when none comes within timeout (the stream is then
// cut), or "stream <code>" when the stream breaks.
func (s *answerStream) send(client ab.AtomicBroadcastClient, env *cb.Envelope, timeout time.Duration) string {
	timer := time.AfterFunc(timeout, func() {
		s.timedOut.Store(true)
		s.cancel()
	})
	defer timer.Stop()
	if s.stream == nil {
		stream, err := client.Broadcast(s.ctx)
		if err != nil {
			return s.failure(err)
		}
		s.stream = stream
		go func() {
			for {
				r, err := stream.Recv()
				s.answers <- answer{r, err}
				if err != nil {
					return
				}
			}
		}()
	}
	// A failed Send is reported by Recv, with the stream's real error.
	s.stream.Send(env)
	a := <-s.answers
	if a.err != nil {
		return s.failure(a.err)
	}
	return a.r.GetStatus().String()
}

func (s *answerStream) failure(err error) string {
	if s.timedOut.Load() {
		return "timeout"
	}
	if errors.Is(err, io.EOF) {
		return "stream EOF"
	}
	return "stream " + status.Code(err).String()
}

// nodeHealth is what the workers of a client know of the nodes: those
// that failed are avoided for a while, by every worker.
type nodeHealth struct {
	mu       sync.Mutex
	badUntil []time.Time
	backoff  []time.Duration
}

const (
	stayOnNode     = time.Second
	minNodeBackoff = 500 * time.Millisecond
	maxNodeBackoff = 2 * time.Second
)

func newNodeHealth(n int) *nodeHealth {
	return &nodeHealth{badUntil: make([]time.Time, n), backoff: make([]time.Duration, n)}
}

func (h *nodeHealth) ok(node int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.backoff[node] = 0
}

func (h *nodeHealth) failed(node int, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.backoff[node] = min(max(2*h.backoff[node], minNodeBackoff), maxNodeBackoff)
	h.badUntil[node] = now.Add(h.backoff[node])
}

// picker chooses the node a worker sends to: the same for stayOnNode,
// then the next that is not avoided.
type picker struct {
	health *nodeHealth
	cur    int
	since  time.Time
}

// pick returns the node to send to, and how long to wait first when every
// node is being avoided.
func (p *picker) pick(now time.Time) (int, time.Duration) {
	p.health.mu.Lock()
	defer p.health.mu.Unlock()
	bad := p.health.badUntil
	if now.Sub(p.since) < stayOnNode && !now.Before(bad[p.cur]) {
		return p.cur, 0
	}
	n := len(bad)
	soonest := (p.cur + 1) % n
	for i := 1; i <= n; i++ {
		j := (p.cur + i) % n
		if !now.Before(bad[j]) {
			p.cur, p.since = j, now
			return j, 0
		}
		if bad[j].Before(bad[soonest]) {
			soonest = j
		}
	}
	p.cur, p.since = soonest, bad[soonest]
	return soonest, bad[soonest].Sub(now)
}

// runProbe broadcasts one envelope to the first orderer, reads its blocks
// with BEST_EFFORT and then STRICT, and prints a probeResult as JSON.
func runProbe(c clientConfig, signer msp.SigningIdentity, out io.Writer) error {
	conn, err := dialOrderer(c.orderers[0], insecure.NewCredentials(), c.stall)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := ab.NewAtomicBroadcastClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res probeResult
	env, err := protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, c.channel, []byte("probe"), signer)
	if err != nil {
		return err
	}
	if res.BroadcastTx, err = consensustest.TxID(env); err != nil {
		return err
	}
	r, err := broadcast(ctx, client, 1, func(int) (*cb.Envelope, error) { return env, nil })
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	for st := range r.statuses { // one envelope, one status
		res.Broadcast, res.BroadcastInfo = st.String(), r.infos[st]
	}
	for _, er := range []ab.SeekInfo_SeekErrorResponse{ab.SeekInfo_BEST_EFFORT, ab.SeekInfo_STRICT} {
		info := &ab.SeekInfo{Start: seekOldest(), Stop: seekNewest(), ErrorResponse: er}
		seekEnv, err := atomicbroadcast.NewSeekEnvelope(signer, c.channel, info)
		if err != nil {
			return err
		}
		blocks := 0
		st, err := atomicbroadcast.ReadBlocks(ctx, client, seekEnv, func(*cb.Block) error { blocks++; return nil })
		if err != nil {
			return fmt.Errorf("deliver %s: %w", er, err)
		}
		if er == ab.SeekInfo_BEST_EFFORT {
			res.BestEffortBlocks, res.BestEffortStatus = blocks, st.String()
		} else {
			res.StrictBlocks, res.StrictStatus = blocks, st.String()
		}
	}
	return json.NewEncoder(out).Encode(res)
}

// readEvents reads the events file of a load client. A load still
// running may have written a line in part: a last line that does not
// parse is left out unless complete is set.
func readEvents(path string, complete bool) ([]clientEvent, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(raw), "\n")
	var events []clientEvent
	for i, l := range lines {
		if l == "" {
			continue
		}
		var e clientEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			if !complete && i == len(lines)-1 {
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// TestLoadClientPicker checks how the partition tests' load client
// chooses nodes: it stays on one for stayOnNode, then moves on; it avoids
// a node that failed, for every worker, longer while it keeps failing;
// and when every node is avoided it waits for the first to be tried again.
func TestLoadClientPicker(t *testing.T) {
	h := newNodeHealth(3)
	t0 := time.Now()
	p := &picker{health: h, cur: 1, since: t0}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	pick := func(now time.Time) (int, time.Duration) { return p.pick(now) }

	n, wait := pick(at(500 * time.Millisecond))
	require.Equal(t, 1, n)
	require.Zero(t, wait)
	n, _ = pick(at(stayOnNode))
	require.Equal(t, 2, n, "moves on after stayOnNode")

	h.failed(2, at(stayOnNode))
	n, _ = pick(at(stayOnNode + time.Millisecond))
	require.Equal(t, 0, n, "leaves a node that failed")
	other := &picker{health: h, cur: 1, since: at(0)}
	n, _ = other.pick(at(stayOnNode + time.Millisecond))
	require.Equal(t, 0, n, "another worker avoids it too")

	h.failed(2, at(2*time.Second)) // 1s now
	h.failed(0, at(2*time.Second))
	h.failed(1, at(2*time.Second))
	n, wait = pick(at(2 * time.Second))
	require.Equal(t, 1, n, "every node avoided: the next of those free first")
	require.Equal(t, minNodeBackoff, wait)
	h.ok(2)
	for range 5 {
		h.failed(2, at(3*time.Second))
	}
	require.Equal(t, maxNodeBackoff, h.backoff[2])
}
