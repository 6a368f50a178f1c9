package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// TestReadmeProcesses builds the orderer program and runs the README's
// "A 3-node orderer on one machine" steps as child processes on loopback:
// the kafka subcommand, cryptogen, genesis and two start nodes. It
// broadcasts through node 0, kills node 1 with SIGKILL in the middle of a
// second broadcast, restarts it with the same command line, and checks
// that both nodes deliver the same blocks; then it checks the statuses of
// bad envelopes over gRPC and that SIGTERM stops every process cleanly.
func TestReadmeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program and runs it as child processes")
	}
	dir := t.TempDir()
	bin := buildOrderer(t, dir)
	ps := &procs{t: t, bin: bin, dir: dir}
	t.Cleanup(ps.dumpOnFailure)

	used := make(map[int]bool)
	kafkaPort := freeConsecutivePorts(t, 3, used)
	var grpcPorts, metricsPorts [2]int
	for i := range 2 {
		grpcPorts[i] = freePort(t, used)
		metricsPorts[i] = freePort(t, used)
	}
	brokers := make([]string, 3)
	for i := range brokers {
		brokers[i] = fmt.Sprintf("127.0.0.1:%d", kafkaPort+i)
	}

	// Kafka: 3 embedded brokers, kept in ./kafka-data.
	kafka := ps.start("kafka", "kafka", "--listen", brokers[0], "--brokers", "3", "--data", "kafka-data")
	line := kafka.waitFor(t, "kafka brokers: ", 20*time.Second)
	require.Equal(t, strings.Join(brokers, ","), strings.TrimPrefix(line, "kafka brokers: "))
	for _, b := range brokers {
		c, err := net.DialTimeout("tcp", b, time.Second)
		require.NoError(t, err, "broker %s", b)
		c.Close()
	}

	// Identities and the channel's genesis block.
	ps.run("cryptogen org1", 30*time.Second, "cryptogen", "--out", "crypto/org1", "--mspid", "Org1MSP", "--domain", "org1.example.com", "--orderers", "0")
	ps.run("cryptogen orderer", 30*time.Second, "cryptogen", "--out", "crypto/orderer", "--mspid", "OrdererMSP", "--domain", "example.com", "--orderers", "3", "--users", "0")
	ps.run("genesis", 30*time.Second, "genesis", "--channel", "mychannel", "--org", "Org1MSP=crypto/org1/msp",
		"--orderer-org", "OrdererMSP=crypto/orderer/msp", "--batch-timeout", "500ms", "-o", "mychannel.block")

	// Two orderer nodes.
	nodeArgs := func(i int) []string {
		return []string{"start", "--listen", fmt.Sprintf("127.0.0.1:%d", grpcPorts[i]), "--brokers", strings.Join(brokers, ","),
			"--genesis", "mychannel.block", "--data", fmt.Sprintf("data/orderer%d", i),
			"--signer", fmt.Sprintf("crypto/orderer/orderers/orderer%d/msp", i), "--signer-mspid", "OrdererMSP",
			"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPorts[i])}
	}
	ordererAddr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", grpcPorts[i]) }
	metricsAddr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", metricsPorts[i]) }
	nodes := make([]*proc, 2)
	for i := range nodes {
		nodes[i] = ps.start(fmt.Sprintf("orderer%d", i), nodeArgs(i)...)
	}
	for i := range nodes {
		waitHealthy(t, nodes[i], metricsAddr(i), 30*time.Second)
	}

	clientArgs := func(cmd string, i int, extra ...string) []string {
		return append([]string{cmd, "--orderer", ordererAddr(i), "--channel", "mychannel",
			"--signer", "crypto/org1/users/user1/msp", "--signer-mspid", "Org1MSP"}, extra...)
	}

	// Broadcast through node 0.
	out := ps.run("broadcast 1", 30*time.Second, clientArgs("broadcast", 0, "-n", "500")...)
	requireAllSuccess(t, out, 500)

	// In-process gRPC clients of both nodes.
	user, err := msp.LoadSigningIdentity(filepath.Join(dir, "crypto/org1/users/user1/msp"), "Org1MSP")
	require.NoError(t, err)
	var clients [2]ab.AtomicBroadcastClient
	for i := range clients {
		conn, err := dialOrderer(ordererAddr(i), insecure.NewCredentials(), atomicbroadcast.DefaultClientStallTimeout)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		clients[i] = ab.NewAtomicBroadcastClient(conn)
	}

	// SIGKILL node 1 while node 0 orders a second batch, as soon as node
	// 1 writes a block of it.
	h := uint64(len(followUntil(t, clients[1], user, 500)))
	second := ps.start("broadcast 2", clientArgs("broadcast", 0, "-n", "500")...)
	killedAt := h
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if nh, err := height(metricsAddr(1)); err == nil && nh > h {
			killedAt = nh
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-second.done:
		t.Logf("the second broadcast ended before node 1 was killed")
	default:
		t.Logf("killing node 1 during the second broadcast")
	}
	require.NoError(t, nodes[1].cmd.Process.Kill())
	require.True(t, nodes[1].wait(10*time.Second), "node 1 still running after SIGKILL")
	t.Logf("killed node 1 at height %d or more (%d before the second broadcast)", killedAt, h)
	require.True(t, second.wait(30*time.Second), "second broadcast did not end")
	require.NoError(t, second.err, second.output())
	requireAllSuccess(t, second.stdout.String(), 500)

	// Restart node 1 with the same command line: it resumes from its
	// ledger and catches up.
	nodes[1] = ps.start("orderer1 (restarted)", nodeArgs(1)...)
	waitHealthy(t, nodes[1], metricsAddr(1), 30*time.Second)
	// It reopened its ledger with the blocks it had written: at least
	// those of the first broadcast.
	opened := openedHeight(t, nodes[1])
	require.GreaterOrEqual(t, opened, h, "node 1 reopened its ledger at height %d", opened)
	t.Logf("node 1 reopened its ledger at height %d", opened)
	if strings.Contains(nodes[1].stderr.String(), "ledger recovered a torn tail") {
		t.Logf("node 1 recovered a torn ledger tail")
	}

	// Both nodes deliver the same blocks, holding the 1000 envelopes.
	var delivered [2][]string
	for i := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := ps.run(fmt.Sprintf("deliver %d", i), 30*time.Second, clientArgs("deliver", i, "--start", "oldest", "--stop", "newest")...)
			blocks, txs := parseDeliver(t, out)
			if txs == 1000 {
				delivered[i] = blocks
				break
			}
			require.Less(t, txs, 1000, "node %d delivered too many envelopes", i)
			require.True(t, time.Now().Before(deadline), "node %d delivered %d envelopes of 1000", i, txs)
			time.Sleep(200 * time.Millisecond)
		}
	}
	require.Equal(t, delivered[0], delivered[1], "the nodes deliver different blocks")
	require.Equal(t, delivered[0][len(delivered[0])-1], delivered[1][len(delivered[1])-1], "newest block")
	t.Logf("both nodes deliver %d blocks; newest %s", len(delivered[0]), delivered[0][len(delivered[0])-1])

	// Over gRPC: the blocks form a valid chain (data hashes, previous
	// hashes) with the header hashes the deliver command printed, and the
	// node answers bad envelopes with Fabric's statuses.
	var chains [2][]*cb.Block
	for i, c := range clients {
		blocks, st := deliverBlocks(t, c, seek(t, user, testChannel, seekOldest(), seekSpecified(uint64(len(delivered[i])-1)), ab.SeekInfo_FAIL_IF_NOT_READY))
		require.Equal(t, cb.Status_SUCCESS, st, "node %d", i)
		checkChain(t, blocks)
		require.Len(t, blocks, len(delivered[i]))
		for j, b := range blocks {
			require.Equal(t, fmt.Sprintf("block %d: %d transactions, header hash %x", j, len(b.GetData().GetData()), protoutil.HeaderHash(b.GetHeader())), delivered[i][j])
		}
		chains[i] = blocks

		unsigned := txEnvelope(t, user, testChannel, []byte("unsigned"))
		unsigned.Signature = nil
		for _, tc := range []struct {
			name string
			env  *cb.Envelope
			want cb.Status
		}{
			{"unsigned", unsigned, cb.Status_FORBIDDEN},
			{"oversized", txEnvelope(t, user, testChannel, make([]byte, 10<<20+1)), cb.Status_REQUEST_ENTITY_TOO_LARGE},
			{"wrong channel", txEnvelope(t, user, "otherchannel", []byte("x")), cb.Status_NOT_FOUND},
		} {
			r := broadcastOne(t, c, tc.env)
			require.Equal(t, tc.want, r.GetStatus(), "node %d, %s: %s", i, tc.name, r.GetInfo())
		}
	}
	for j := range chains[0] {
		require.Equal(t, protoutil.HeaderHash(chains[0][j].GetHeader()), protoutil.HeaderHash(chains[1][j].GetHeader()), "block %d", j)
		require.Equal(t, chains[0][j].GetData().GetData(), chains[1][j].GetData().GetData(), "block %d", j)
	}

	// SIGTERM: the nodes, then Kafka, exit 0 within a few seconds.
	for i, p := range []*proc{nodes[0], nodes[1], kafka} {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		start := time.Now()
		require.True(t, p.wait(5*time.Second), "%s still running 5s after SIGTERM", p.name)
		require.NoError(t, p.err, "%s: %s", p.name, p.output())
		if i < len(nodes) {
			require.Contains(t, p.stdout.String(), "orderer: shutting down")
		}
		t.Logf("%s exited 0 %v after SIGTERM", p.name, time.Since(start).Round(time.Millisecond))
	}
}

// buildOrderer builds the program of this directory into dir.
func buildOrderer(t *testing.T, dir string) string {
	t.Helper()
	start := time.Now()
	bin, err := goBuild(dir)
	require.NoError(t, err)
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// goBuild builds the program of this directory into dir and returns its
// path.
func goBuild(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "orderer")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w: %s", err, out)
	}
	return bin, nil
}

// procs starts the child processes of a test, all in one directory, and
// kills those still running when the test ends.
type procs struct {
	t   *testing.T
	bin string
	dir string
	mu  sync.Mutex
	all []*proc
}

// proc is a child process.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has exited
	err            error         // of Wait, set before done is closed
}

func (ps *procs) start(name string, args ...string) *proc {
	ps.t.Helper()
	return ps.startCmd(name, exec.Command(ps.bin, args...))
}

// startCmd starts cmd, in ps's directory, as the process called name.
func (ps *procs) startCmd(name string, cmd *exec.Cmd) *proc {
	ps.t.Helper()
	p := &proc{name: name, cmd: cmd, stdout: new(syncBuffer), stderr: new(syncBuffer), done: make(chan struct{})}
	p.cmd.Dir = ps.dir
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	require.NoError(ps.t, p.cmd.Start(), name)
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	ps.t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Kill()
		if !p.wait(10 * time.Second) {
			ps.t.Errorf("%s: still running after SIGKILL", name)
		}
	})
	return p
}

// run runs a command to its end and returns its standard output; it fails
// the test unless the command exits 0 within timeout.
func (ps *procs) run(name string, timeout time.Duration, args ...string) string {
	ps.t.Helper()
	p := ps.start(name, args...)
	require.True(ps.t, p.wait(timeout), "%s did not end within %v", name, timeout)
	require.NoError(ps.t, p.err, "%s: %s", name, p.output())
	return p.stdout.String()
}

// dumpOnFailure logs the output of every process if the test failed.
func (ps *procs) dumpOnFailure() {
	if !ps.t.Failed() {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.all {
		ps.t.Logf("=== %s: %s\n%s", p.name, strings.Join(p.cmd.Args[1:], " "), p.output())
	}
}

// wait waits for the process to exit and reports whether it did within
// timeout.
func (p *proc) wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

func (p *proc) output() string {
	return "stdout:\n" + p.stdout.String() + "stderr:\n" + p.stderr.String()
}

// waitFor waits until the process prints a line starting with prefix on
// its standard output and returns the line.
func (p *proc) waitFor(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q: %s", p.name, p.err, prefix, p.output())
		default:
		}
		require.True(t, time.Now().Before(deadline), "%s did not print %q within %v: %s", p.name, prefix, timeout, p.output())
		time.Sleep(20 * time.Millisecond)
	}
}

// openedHeight returns the height of mychannel's ledger that the node
// logged when it opened the channel.
func openedHeight(t *testing.T, p *proc) uint64 {
	t.Helper()
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if !strings.Contains(l, `msg="channel opened"`) || !strings.Contains(l, "channel="+testChannel) {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "height="); ok {
				h, err := strconv.ParseUint(v, 10, 64)
				require.NoError(t, err, "line %q", l)
				return h
			}
		}
	}
	t.Fatalf("%s did not log the height of its ledger: %s", p.name, p.output())
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort returns a port of 127.0.0.1 that was free a moment ago and is
// not in used, and adds it to used.
func freePort(t *testing.T, used map[int]bool) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !used[p] {
			used[p] = true
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// freeConsecutivePorts returns the first of n consecutive free ports of
// 127.0.0.1, none in used, and adds them to used.
func freeConsecutivePorts(t *testing.T, n int, used map[int]bool) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		base := ln.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{ln}
		ok := base+n-1 <= 65535
		for i := 0; ok && i < n; i++ {
			if used[base+i] {
				ok = false
				break
			}
			if i == 0 {
				continue
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if ok {
			for i := range n {
				used[base+i] = true
			}
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

var healthClient = &http.Client{Timeout: 2 * time.Second}

// health returns the status code and the height of mychannel that
// /healthz reports.
func health(addr string) (int, uint64, error) {
	resp, err := healthClient.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Channels map[string]struct {
			Height uint64 `json:"height"`
		} `json:"channels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, 0, err
	}
	ch, ok := body.Channels[testChannel]
	if !ok {
		return resp.StatusCode, 0, errors.New("no channel " + testChannel + " in /healthz")
	}
	return resp.StatusCode, ch.Height, nil
}

func height(addr string) (uint64, error) {
	_, h, err := health(addr)
	return h, err
}

// waitHealthy waits until the node's /healthz answers 200.
func waitHealthy(t *testing.T, p *proc, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, _, err := health(addr)
		if err == nil && code == http.StatusOK {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v): %s", p.name, p.err, p.output())
		default:
		}
		require.True(t, time.Now().Before(deadline), "%s not healthy within %v (last: %d, %v): %s", p.name, timeout, code, err, p.output())
		time.Sleep(50 * time.Millisecond)
	}
}

// requireAllSuccess checks that the output of the broadcast command
// reports n SUCCESS answers and no other status.
func requireAllSuccess(t *testing.T, out string, n int) {
	t.Helper()
	statuses := make(map[string]int)
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		if _, known := cb.Status_value[f[0]]; !known {
			continue
		}
		c, err := strconv.Atoi(f[1])
		require.NoError(t, err, "line %q", l)
		statuses[f[0]] += c
	}
	require.Equal(t, map[string]int{"SUCCESS": n}, statuses, out)
	require.Contains(t, out, fmt.Sprintf("%d sent, %d answered", n, n))
}

// parseDeliver returns the block lines of the deliver command's output,
// checking they are numbered from 0 and end with status SUCCESS, and the
// number of envelopes in the blocks after genesis.
func parseDeliver(t *testing.T, out string) (blocks []string, txs int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.NotEmpty(t, lines)
	require.Equal(t, "status SUCCESS", lines[len(lines)-1], out)
	blocks = lines[:len(lines)-1]
	require.NotEmpty(t, blocks, out)
	for i, l := range blocks {
		var num, n int
		var hash string
		_, err := fmt.Sscanf(l, "block %d: %d transactions, header hash %s", &num, &n, &hash)
		require.NoError(t, err, "line %q", l)
		require.Equal(t, i, num, "line %q", l)
		require.Len(t, hash, 64, "line %q", l)
		if num > 0 {
			txs += n
		}
	}
	return blocks, txs
}
