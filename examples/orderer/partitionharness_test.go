package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/netns"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
)

// The harness of the partition tests (partition_test.go).

// partitionNodeFlags are the timings of every node: a broker silent for
// 2s is given up, a connection whose sent data goes unacknowledged for 2s
// is closed and dialled again, consumption failing for 1s makes the chain
// errored, and Kafka set-up is retried every 200ms for 2s, then every
// second.
var partitionNodeFlags = []string{
	"--error-timeout", "1s",
	"--retry-short-interval", "200ms", "--retry-short-total", "2s",
	"--retry-long-interval", "1s", "--retry-long-total", "5m",
	"--kafka-dial-timeout", "2s", "--kafka-request-timeout", "2s", "--kafka-stall-timeout", "2s",
	"--shutdown-timeout", "2s",
}

const (
	partitionGRPCPort = "7050"
	// partitionMetrics is where each node serves /healthz, on its own
	// loopback.
	partitionMetrics = "127.0.0.1:9443"
	// statesPoll is how often the nodes' /healthz is read.
	statesPoll = 100 * time.Millisecond
)

// The states a node can be seen in.
const (
	stateReady    = "ready"
	stateErrored  = "errored"   // cannot consume from Kafka
	stateStarting = "not ready" // setting Kafka up
	stateHalted   = "halted"
	stateStopping = "stopping" // after SIGTERM, until it exits
	stateDown     = "down"     // no answer from /healthz
)

// ordererBuild is the orderer program, built once per test binary for the
// partition tests, and removed by TestMain.
var ordererBuild struct {
	once sync.Once
	dir  string
	bin  string
	took time.Duration
	err  error
}

func sharedOrderer(t *testing.T) string {
	t.Helper()
	ordererBuild.once.Do(func() {
		start := time.Now()
		if ordererBuild.dir, ordererBuild.err = os.MkdirTemp("", "orderer-partition-"); ordererBuild.err == nil {
			ordererBuild.bin, ordererBuild.err = goBuild(ordererBuild.dir)
		}
		ordererBuild.took = time.Since(start)
		t.Logf("built the orderer in %v", ordererBuild.took.Round(time.Millisecond))
	})
	require.NoError(t, ordererBuild.err)
	return ordererBuild.bin
}

func removeSharedOrderer() {
	if ordererBuild.dir != "" {
		os.RemoveAll(ordererBuild.dir)
	}
}

// partitionCluster is Kafka, three nodes and a client host, each a
// network namespace.
type partitionCluster struct {
	t      *testing.T
	ps     *procs
	nw     *netns.Network
	kafka  *netns.Host
	client *netns.Host
	nodes  []*partitionNode
	obs    *observer
	load   *proc
	// probes maps the transaction IDs the probes broadcast to whether they
	// were acknowledged.
	probes map[string]bool
}

// partitionNode is an orderer node on its host.
type partitionNode struct {
	name string
	host *netns.Host
	args []string
	proc *proc
	http *http.Client // reaches the node's /healthz from inside its host
	// stopping is set from the SIGTERM until the node starts again: the
	// states it reports meanwhile are those of a node closing.
	stopping atomic.Bool
}

func (n *partitionNode) addr() string { return n.host.IP + ":" + partitionGRPCPort }

// newPartitionCluster starts Kafka and three nodes, each on its host, and
// waits until every node is ready; or it skips the test with the reason
// namespaces cannot be made.
func newPartitionCluster(t *testing.T) *partitionCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs Kafka, three orderers and clients on hosts of their own")
	}
	if err := netns.Check(); err != nil {
		t.Skipf("needs network namespaces: %v", err)
	}
	bin := sharedOrderer(t)
	pc := &partitionCluster{t: t, ps: &procs{t: t, bin: bin, dir: t.TempDir()}, probes: make(map[string]bool)}
	t.Cleanup(pc.ps.dumpOnFailure)
	nw, err := netns.New()
	require.NoError(t, err)
	// Cleanups run last registered first: the processes are killed, then
	// the namespaces deleted.
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("removing the namespaces: %v", err)
		}
	})
	pc.nw = nw
	pc.kafka = pc.addHost("kafka")
	for i := range 3 {
		pc.nodes = append(pc.nodes, &partitionNode{name: fmt.Sprintf("orderer%d", i), host: pc.addHost(fmt.Sprintf("orderer%d", i))})
	}
	pc.client = pc.addHost("client")
	pc.writeCrypto()

	kafka := pc.ps.startCmd("kafka", pc.kafka.Command(bin, "kafka", "--listen", pc.kafka.IP+":9092", "--brokers", "3"))
	line := kafka.waitFor(t, "kafka brokers: ", 20*time.Second)
	brokers := strings.TrimPrefix(line, "kafka brokers: ")
	for i, n := range pc.nodes {
		pc.configure(n, brokers, i)
		pc.startNode(n)
	}
	pc.obs = newObserver(pc.nodes)
	t.Cleanup(pc.obs.close)
	pc.waitFor("every node ready", 30*time.Second, func() bool { return pc.allIn(stateReady) })
	pc.obs.restart()
	return pc
}

func (pc *partitionCluster) addHost(name string) *netns.Host {
	h, err := pc.nw.AddHost(name)
	require.NoError(pc.t, err)
	return h
}

// writeCrypto writes the identities and the channel's genesis block in
// the processes' directory.
func (pc *partitionCluster) writeCrypto() {
	t := pc.t
	dir := pc.ps.dir
	var out strings.Builder
	run := func(args ...string) {
		t.Helper()
		require.NoError(t, dispatch(t.Context(), args, &out, &out), out.String())
	}
	run("cryptogen", "--out", filepath.Join(dir, "crypto/org1"), "--mspid", "Org1MSP", "--domain", "org1.example.com", "--orderers", "0")
	run("cryptogen", "--out", filepath.Join(dir, "crypto/orderer"), "--mspid", "OrdererMSP", "--orderers", "3", "--users", "0")
	run("genesis", "--channel", testChannel, "--org", "Org1MSP="+filepath.Join(dir, "crypto/org1/msp"),
		"--orderer-org", "OrdererMSP="+filepath.Join(dir, "crypto/orderer/msp"),
		"--max-message-count", "100", "--batch-timeout", "200ms", "-o", filepath.Join(dir, testChannel+".block"))
}

// configure sets node i's command line: its address, Kafka's, the other
// nodes' as peers, and the short timings.
func (pc *partitionCluster) configure(n *partitionNode, brokers string, i int) {
	var peers []string
	for _, o := range pc.nodes {
		if o != n {
			peers = append(peers, o.addr())
		}
	}
	n.args = append([]string{"start", "--listen", n.addr(), "--brokers", brokers,
		"--genesis", testChannel + ".block", "--data", "data/" + n.name,
		"--signer", fmt.Sprintf("crypto/orderer/orderers/orderer%d/msp", i), "--signer-mspid", "OrdererMSP",
		"--metrics-listen", partitionMetrics, "--peers", strings.Join(peers, ",")}, partitionNodeFlags...)
	n.http = &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: n.host.Dial, DisableKeepAlives: true}}
}

func (pc *partitionCluster) startNode(n *partitionNode) {
	n.proc = pc.ps.startCmd(n.name, n.host.Command(pc.ps.bin, n.args...))
	n.stopping.Store(false)
}

// stopNode stops a node with SIGTERM and checks that it exits 0.
func (pc *partitionCluster) stopNode(n *partitionNode) time.Duration {
	t := pc.t
	start := time.Now()
	n.stopping.Store(true)
	require.NoError(t, n.proc.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, n.proc.wait(15*time.Second), "%s still running 15s after SIGTERM", n.name)
	require.NoError(t, n.proc.err, "%s", n.name)
	require.Contains(t, n.proc.stdout.String(), "orderer: shutting down", n.name)
	return time.Since(start)
}

// restartNode stops a node and starts it again with the same command
// line.
func (pc *partitionCluster) restartNode(i int) {
	n := pc.nodes[i]
	pc.obs.mark("SIGTERM to %s", n.name)
	d := pc.stopNode(n)
	pc.obs.mark("%s exited 0 %v after SIGTERM; started again", n.name, d.Round(time.Millisecond))
	pc.startNode(n)
}

// state returns what node i's /healthz said last.
func (pc *partitionCluster) state(i int) observed { return pc.obs.last(i) }

// allIn reports whether every node was last seen in state.
func (pc *partitionCluster) allIn(state string) bool {
	for i := range pc.nodes {
		if pc.state(i).state != state {
			return false
		}
	}
	return true
}

// maxHeight returns the greatest height the nodes reported last.
func (pc *partitionCluster) maxHeight() uint64 {
	var h uint64
	for i := range pc.nodes {
		h = max(h, pc.state(i).height)
	}
	return h
}

// waitFor waits until cond holds, checking every statesPoll, and returns
// how long it took; it fails the test, with the timeline, after timeout.
func (pc *partitionCluster) waitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	pc.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			pc.t.Fatalf("not %s within %v\n%s", what, timeout, pc.obs.timeline())
		}
		time.Sleep(statesPoll / 2)
	}
	return time.Since(start)
}

// waitReadyAt waits until node i is seen ready, and ready at height h or
// more, in /healthz reads after since, and marks how long after since
// each happened.
func (pc *partitionCluster) waitReadyAt(i int, h uint64, since time.Time, after string) {
	pc.t.Helper()
	n := pc.nodes[i]
	var ready, caughtUp time.Time
	pc.waitFor(fmt.Sprintf("%s ready at height %d", n.name, h), 60*time.Second, func() bool {
		var ok bool
		if ready, ok = pc.obs.first(i, since, func(s observed) bool { return s.state == stateReady }); !ok {
			return false
		}
		caughtUp, ok = pc.obs.first(i, since, func(s observed) bool { return s.state == stateReady && s.height >= h })
		return ok
	})
	pc.obs.mark("%s ready %v after %s, at height %d after %v", n.name, ready.Sub(since).Round(time.Millisecond), after, h, caughtUp.Sub(since).Round(time.Millisecond))
}

func (pc *partitionCluster) cut(a, b *netns.Host) time.Time {
	require.NoError(pc.t, pc.nw.Cut(a, b))
	pc.obs.mark("cut %s from %s", a.Name, b.Name)
	return time.Now()
}

func (pc *partitionCluster) heal(a, b *netns.Host) time.Time {
	require.NoError(pc.t, pc.nw.Heal(a, b))
	pc.obs.mark("healed %s-%s", a.Name, b.Name)
	return time.Now()
}

// clientCmd returns the command that runs the test binary as a partition
// client on the client host.
func (pc *partitionCluster) clientCmd(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	require.NoError(pc.t, err)
	args = append(args, "-signer", "crypto/org1/users/user1/msp", "-signer-mspid", "Org1MSP")
	cmd := pc.client.Command(exe, args...)
	cmd.Env = append(os.Environ(), partitionClientEnv+"=1")
	return cmd
}

// startLoad starts the load client, which sends to every node.
func (pc *partitionCluster) startLoad() {
	addrs := make([]string, len(pc.nodes))
	for i, n := range pc.nodes {
		addrs[i] = n.addr()
	}
	pc.load = pc.ps.startCmd("load client", pc.clientCmd("-mode", "load", "-orderers", strings.Join(addrs, ","), "-out", "load.jsonl"))
	pc.obs.mark("load started on the client host: 4 workers, 50 envelopes/s each, one at a time")
}

// stopLoad stops the load client and returns its events.
func (pc *partitionCluster) stopLoad() []clientEvent {
	t := pc.t
	select {
	case <-pc.load.done:
		t.Fatalf("the load client stopped early (%v): %s", pc.load.err, pc.load.output())
	default:
	}
	require.NoError(t, pc.load.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, pc.load.wait(15*time.Second), "load client still running 15s after SIGTERM")
	require.NoError(t, pc.load.err, pc.load.output())
	pc.obs.mark("load stopped")
	events, err := readEvents(filepath.Join(pc.ps.dir, "load.jsonl"), true)
	require.NoError(t, err)
	return events
}

// waitClientsBack waits until the load client has an envelope sent to
// node i after since acknowledged, and marks how long after since that
// was.
func (pc *partitionCluster) waitClientsBack(i int, since time.Time, after string) {
	pc.t.Helper()
	n := pc.nodes[i]
	var first time.Time
	pc.waitFor("the clients back on "+n.name, 30*time.Second, func() bool {
		events, err := readEvents(filepath.Join(pc.ps.dir, "load.jsonl"), false)
		require.NoError(pc.t, err)
		for _, e := range events {
			if e.Node == n.addr() && e.Outcome == "SUCCESS" && e.Sent.After(since) {
				first = e.At
				return true
			}
		}
		return false
	})
	pc.obs.mark("the clients' first envelope acknowledged by %s %v after %s", n.name, first.Sub(since).Round(time.Millisecond), after)
}

// probe broadcasts one envelope to node i and reads its blocks, from the
// client host.
func (pc *partitionCluster) probe(i int) probeResult {
	t := pc.t
	n := pc.nodes[i]
	p := pc.ps.startCmd("probe "+n.name, pc.clientCmd("-mode", "probe", "-orderers", n.addr()))
	require.True(t, p.wait(30*time.Second), "probe of %s did not end", n.name)
	require.NoError(t, p.err, p.output())
	var res probeResult
	require.NoError(t, json.Unmarshal([]byte(p.stdout.String()), &res), p.output())
	pc.probes[res.BroadcastTx] = res.Broadcast == "SUCCESS"
	pc.obs.mark("probe %s from the client host: Broadcast %s, Deliver BEST_EFFORT %d blocks %s, STRICT %d blocks %s",
		n.name, res.Broadcast, res.BestEffortBlocks, res.BestEffortStatus, res.StrictBlocks, res.StrictStatus)
	return res
}

// finish stops the load, waits until every node is ready at the same
// height, stops the nodes, checks their ledgers against what the clients
// sent, and logs the summary. It returns the load's events.
func (pc *partitionCluster) finish(title string) []clientEvent {
	t := pc.t
	events := pc.stopLoad()
	var h uint64
	var stableSince time.Time
	d := pc.waitFor("every node ready at the same height", 60*time.Second, func() bool {
		same := pc.allIn(stateReady)
		for i := range pc.nodes {
			same = same && pc.state(i).height == pc.state(0).height
		}
		if !same || pc.state(0).height != h {
			h, stableSince = pc.state(0).height, time.Now()
			return false
		}
		return time.Since(stableSince) >= time.Second
	})
	pc.obs.mark("every node ready at height %d (%v after the load stopped)", h, d.Round(time.Millisecond))
	pc.obs.close()
	for i, n := range pc.nodes {
		require.NotContains(t, pc.obs.statesSince(i, time.Time{}), stateHalted, "%s halted\n%s", n.name, pc.obs.timeline())
	}
	for _, n := range pc.nodes {
		pc.stopNode(n)
	}

	var ls []consensustest.NodeLedger
	for _, n := range pc.nodes {
		l, err := ledger.OpenFile(filepath.Join(pc.ps.dir, "data", n.name, testChannel))
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		ls = append(ls, consensustest.NodeLedger{Node: n.name, Ledger: l})
	}
	sent := maps.Clone(pc.probes)
	for _, e := range events {
		sent[e.Tx] = e.Outcome == "SUCCESS"
	}
	a, err := consensustest.CheckAgreement(ls, sent)
	require.NoError(t, err)
	st := summarize(events)
	require.Positive(t, st.acked, "no envelope acknowledged")
	t.Logf("%s\n%s\nclients: %s, ending at %+.2fs\nledgers: %d blocks on each of %d nodes, identical; %d transactions: the %d acknowledged exactly once, %d of the %d not acknowledged ordered anyway",
		title, pc.obs.timeline(), st, pc.obs.since(st.gapEnd), a.Height, len(ls), a.Transactions, a.Acknowledged, a.NotAcknowledgedOrdered, a.NotAcknowledged)
	return events
}

// loadStats is what the clients saw.
type loadStats struct {
	sent, acked, retried, maxAttempt int
	failed                           map[string]int // by outcome
	ackedBy                          map[string]int // by node address
	gap                              time.Duration  // longest time without an acknowledgement
	gapEnd                           time.Time      // when it ended
}

func summarize(events []clientEvent) loadStats {
	st := loadStats{failed: make(map[string]int), ackedBy: make(map[string]int)}
	var acks []time.Time
	for _, e := range events {
		st.sent++
		st.maxAttempt = max(st.maxAttempt, e.Attempt)
		if e.Attempt > 1 {
			st.retried++
		}
		if e.Outcome == "SUCCESS" {
			st.acked++
			st.ackedBy[e.Node]++
			acks = append(acks, e.At)
		} else {
			st.failed[e.Outcome]++
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(acks); i++ {
		if d := acks[i].Sub(acks[i-1]); d > st.gap {
			st.gap, st.gapEnd = d, acks[i]
		}
	}
	return st
}

func (st loadStats) String() string {
	var failed []string
	for o, c := range st.failed {
		failed = append(failed, fmt.Sprintf("%s %d", o, c))
	}
	sort.Strings(failed)
	var by []string
	for n, c := range st.ackedBy {
		by = append(by, fmt.Sprintf("%s %d", n, c))
	}
	sort.Strings(by)
	total := 0
	for _, c := range st.failed {
		total += c
	}
	return fmt.Sprintf("%d envelopes sent, %d acknowledged (%s), %d failed (%s), %d sent again after a failure (at most %d attempts for one payload); longest time without an acknowledgement %v",
		st.sent, st.acked, strings.Join(by, ", "), total, strings.Join(failed, ", "), st.retried, st.maxAttempt, st.gap.Round(time.Millisecond))
}

// acks counts the envelopes sent to node (any node if "") whose
// acknowledgement came in [from, to). (An envelope sent during a cut may
// still be acknowledged after the heal: a client's stream waits while its
// connection is dialled again.)
func acks(events []clientEvent, node string, from, to time.Time) int {
	n := 0
	for _, e := range events {
		if e.Outcome == "SUCCESS" && (node == "" || e.Node == node) && !e.At.Before(from) && e.At.Before(to) {
			n++
		}
	}
	return n
}

// observer polls every node's /healthz, from inside its host, and keeps a
// timeline of their states and of what the test did.
type observer struct {
	nodes []*partitionNode
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu      sync.Mutex
	start   time.Time
	latest  []observed
	history [][]observed // every read, by node
	entries []entry
}

// observed is what a node's /healthz said.
type observed struct {
	at     time.Time // when it was asked
	state  string
	detail string // the channel's status, or why /healthz did not answer
	height uint64
}

type entry struct {
	at   time.Time
	what string
}

func newObserver(nodes []*partitionNode) *observer {
	o := &observer{nodes: nodes, stop: make(chan struct{}), done: make(chan struct{}), start: time.Now(),
		latest: make([]observed, len(nodes)), history: make([][]observed, len(nodes))}
	for i := range o.latest {
		o.latest[i].state = "unknown"
	}
	go o.run()
	return o
}

func (o *observer) run() {
	defer close(o.done)
	t := time.NewTicker(statesPoll)
	defer t.Stop()
	for {
		for i, n := range o.nodes {
			o.record(i, poll(n))
		}
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
	}
}

func (o *observer) close() {
	o.once.Do(func() { close(o.stop) })
	<-o.done
}

// poll reads a node's /healthz.
func poll(n *partitionNode) observed {
	o := poll1(n)
	if n.stopping.Load() && o.state != stateDown {
		o.state = stateStopping
	}
	return o
}

func poll1(n *partitionNode) observed {
	at := time.Now()
	resp, err := n.http.Get("http://" + partitionMetrics + "/healthz")
	if err != nil {
		return observed{at: at, state: stateDown, detail: err.Error()}
	}
	defer resp.Body.Close()
	var body struct {
		Channels map[string]struct {
			Status string `json:"status"`
			Height uint64 `json:"height"`
		} `json:"channels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return observed{at: at, state: stateDown, detail: err.Error()}
	}
	ch := body.Channels[testChannel]
	o := observed{at: at, detail: ch.Status, height: ch.Height}
	switch {
	case ch.Status == "ready":
		o.state = stateReady
	case strings.HasPrefix(ch.Status, "halted"):
		o.state = stateHalted
	case strings.Contains(ch.Status, "cannot consume from kafka"):
		o.state = stateErrored
	default:
		o.state = stateStarting
	}
	return o
}

// record keeps a node's latest state, and a timeline entry when it
// changed.
func (o *observer) record(i int, s observed) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s.state != o.latest[i].state {
		what := fmt.Sprintf("%s %s at height %d", o.nodes[i].name, s.state, s.height)
		if s.state != stateReady {
			what += ": " + clip(s.detail, 110)
		}
		o.entries = append(o.entries, entry{time.Now(), what})
	}
	o.latest[i] = s
	o.history[i] = append(o.history[i], s)
}

// first returns the time of the first read of node i's /healthz after t
// that satisfies cond.
func (o *observer) first(i int, t time.Time, cond func(observed) bool) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.history[i] {
		if s.at.After(t) && cond(s) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// last returns node i's latest state.
func (o *observer) last(i int) observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.latest[i]
}

// mark adds what the test did to the timeline.
func (o *observer) mark(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.entries = append(o.entries, entry{time.Now(), "- " + fmt.Sprintf(format, args...)})
}

// restart makes the timeline start now, with the nodes' current states.
func (o *observer) restart() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.start = time.Now()
	o.entries = nil
	for i, s := range o.latest {
		o.entries = append(o.entries, entry{o.start, fmt.Sprintf("%s %s at height %d", o.nodes[i].name, s.state, s.height)})
	}
}

// statesSince returns the states node i was seen in from t on, in order,
// each once in a row, the one it was in at t first.
func (o *observer) statesSince(i int, t time.Time) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var states []string
	for j, s := range o.history[i] {
		next := j+1 < len(o.history[i]) && !o.history[i][j+1].at.After(t)
		if next || len(states) > 0 && states[len(states)-1] == s.state {
			continue
		}
		states = append(states, s.state)
	}
	return states
}

// since returns t in seconds since the start of the timeline.
func (o *observer) since(t time.Time) float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return t.Sub(o.start).Seconds()
}

// timeline returns the entries, one a line, with their time since the
// start.
func (o *observer) timeline() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for _, e := range o.entries {
		fmt.Fprintf(&b, "  %+7.2fs %s\n", e.at.Sub(o.start).Seconds(), e.what)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
