package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
)

// channelHealth returns the status code of node i's /healthz and the
// status it reports for the test channel.
func (nw *network) channelHealth(i int) (int, string) {
	code, body := httpGet(nw.nodes[i].MetricsAddr(), "/healthz")
	var h struct {
		Channels map[string]struct {
			Status string `json:"status"`
		} `json:"channels"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		return code, body
	}
	return code, h.Channels[testChannel].Status
}

// seekWith returns a signed seek request of blocks start to stop with the
// given error response.
func seekWith(t *testing.T, signer msp.SigningIdentity, start, stop *ab.SeekPosition, behavior ab.SeekInfo_SeekBehavior, er ab.SeekInfo_SeekErrorResponse) *cb.Envelope {
	t.Helper()
	env, err := atomicbroadcast.NewSeekEnvelope(signer, testChannel, &ab.SeekInfo{Start: start, Stop: stop, Behavior: behavior, ErrorResponse: er})
	require.NoError(t, err)
	return env
}

// endOffset returns the end offset of the test channel's partition.
func endOffset(t *testing.T, ctx context.Context, k *consensustest.Kafka) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, testChannel)
	require.NoError(t, err)
	o, ok := offs.Lookup(testChannel, 0)
	require.True(t, ok)
	require.NoError(t, o.Err)
	return o.Offset
}

// TestHealthAndDeliverWhileErrored pauses every Kafka broker: /healthz
// answers 503 with the cause, a STRICT Deliver waiting for a block is cut,
// STRICT requests are refused, BEST_EFFORT ones (the deliver command's
// --best-effort) are served; once Kafka is back, /healthz answers 200.
func TestHealthAndDeliverWhileErrored(t *testing.T) {
	nw := newNetwork(t, 1)
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	c := nw.client(0)
	nw.send(0, 3, "tx")
	height := uint64(len(followUntil(t, c, user, 3)))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waiting, err := c.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, waiting.Send(seekWith(t, user, seekSpecified(height), seekSpecified(height), ab.SeekInfo_BLOCK_UNTIL_READY, ab.SeekInfo_STRICT)))

	nw.kafka.Pause()
	require.Eventually(t, func() bool {
		code, st := nw.channelHealth(0)
		return code == http.StatusServiceUnavailable && strings.Contains(st, "cannot consume from kafka: ")
	}, 15*time.Second, 20*time.Millisecond, "no 503 with the cause")
	code, st := nw.channelHealth(0)
	t.Logf("/healthz %d: %s", code, st)

	r, err := waiting.Recv()
	require.NoError(t, err)
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, r.GetStatus(), "%v", r)

	blocks, status := deliverBlocks(t, c, seekWith(t, user, seekOldest(), seekNewest(), ab.SeekInfo_BLOCK_UNTIL_READY, ab.SeekInfo_STRICT))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, status)
	require.Empty(t, blocks)
	blocks, status = deliverBlocks(t, c, seekWith(t, user, seekOldest(), seekNewest(), ab.SeekInfo_BLOCK_UNTIL_READY, ab.SeekInfo_BEST_EFFORT))
	require.Equal(t, cb.Status_SUCCESS, status)
	require.Len(t, blocks, int(height))
	checkChain(t, blocks)

	var out bytes.Buffer
	args := []string{"deliver", "--orderer", nw.nodes[0].Addr(), "--channel", testChannel,
		"--signer", filepath.Join(nw.dir, "crypto", "org1", "users", "user1", "msp"), "--signer-mspid", "Org1MSP"}
	require.Error(t, dispatch(ctx, args, &out, &out))
	require.Contains(t, out.String(), "status SERVICE_UNAVAILABLE")
	out.Reset()
	require.NoError(t, dispatch(ctx, append(args, "--best-effort"), &out, &out), out.String())
	lines, _ := parseDeliver(t, out.String())
	require.Len(t, lines, int(height))

	nw.kafka.Resume()
	require.Eventually(t, func() bool {
		code, _ := nw.channelHealth(0)
		return code == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond, "not healthy again after Kafka came back")
	_, st = nw.channelHealth(0)
	require.Equal(t, "ready", st)
}

// errDiskFull is the error of a failingLedger.
var errDiskFull = errors.New("no space left on device")

// failingLedger is a file ledger whose Append fails once failing is set,
// as on a full disk.
type failingLedger struct {
	*ledger.File
	failing atomic.Bool
}

func (l *failingLedger) Append(b *cb.Block) error {
	if l.failing.Load() {
		return errDiskFull
	}
	return l.File.Append(b)
}

// AppendBuilt overrides the embedded ledger's, which would bypass Append.
func (l *failingLedger) AppendBuilt(b *cb.Block) error {
	if l.failing.Load() {
		return errDiskFull
	}
	return l.File.AppendBuilt(b)
}

// TestHealthAndDeliverWhenHalted makes the ledger fail: the chain halts,
// /healthz answers 503 with the ledger's error, STRICT Deliver requests
// are refused and BEST_EFFORT ones served.
func TestHealthAndDeliverWhenHalted(t *testing.T) {
	var fl atomic.Pointer[failingLedger]
	nw := newNetwork(t, 1, func(_ *network, _ int, c *nodeConfig) {
		c.wrapLedger = func(_ string, l *ledger.File) consensus.Ledger {
			f := &failingLedger{File: l}
			fl.Store(f)
			return f
		}
	})
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	c := nw.client(0)
	code, st := nw.channelHealth(0)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready", st)
	nw.send(0, 2, "tx")
	height := uint64(len(followUntil(t, c, user, 2)))

	fl.Load().failing.Store(true)
	nw.send(0, 1, "not written") // Kafka acknowledges it; writing its block fails
	require.Eventually(t, func() bool {
		code, _ := nw.channelHealth(0)
		return code == http.StatusServiceUnavailable
	}, 10*time.Second, 20*time.Millisecond)
	code, st = nw.channelHealth(0)
	t.Logf("/healthz %d: %s", code, st)
	require.True(t, strings.HasPrefix(st, "halted: "), st)
	require.Contains(t, st, fmt.Sprintf("appending block %d: %v", height, errDiskFull))
	require.ErrorIs(t, nw.nodes[0].chains[testChannel].Err(), errDiskFull)

	blocks, status := deliverBlocks(t, c, seekWith(t, user, seekOldest(), seekNewest(), ab.SeekInfo_BLOCK_UNTIL_READY, ab.SeekInfo_STRICT))
	require.Equal(t, cb.Status_SERVICE_UNAVAILABLE, status)
	require.Empty(t, blocks)
	blocks, status = deliverBlocks(t, c, seekWith(t, user, seekOldest(), seekNewest(), ab.SeekInfo_BLOCK_UNTIL_READY, ab.SeekInfo_BEST_EFFORT))
	require.Equal(t, cb.Status_SUCCESS, status)
	require.Len(t, blocks, int(height))
}

// TestPeersCatchUp runs 3 nodes that know each other's addresses
// (--peers). Node 2 stops, the others order more, and the channel's records
// are deleted from Kafka up to the end of the log; one more envelope makes
// a block past the gap. Restarted, node 2 pulls the blocks it lacks from a
// peer over Deliver, its ledger then equals the others', and it orders
// again.
func TestPeersCatchUp(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tls       bool
		firstDown bool // node 2's first peer has nothing listening
	}{
		{name: "plaintext"},
		{name: "TLS", tls: true},
		{name: "first peer down", firstDown: true},
	} {
		t.Run(tc.name, func(t *testing.T) { testPeersCatchUp(t, tc.tls, tc.firstDown) })
	}
}

func testPeersCatchUp(t *testing.T, useTLS, firstDown bool) {
	used := make(map[int]bool)
	addrs := make([]string, 3)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t, used))
	}
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t, used))
	log2 := new(syncBuffer)
	nw := newNetwork(t, 3, func(nw *network, i int, c *nodeConfig) {
		c.listen = addrs[i]
		c.peerTimeout = 5 * time.Second
		for j, a := range addrs {
			if j != i {
				c.peers = append(c.peers, a)
			}
		}
		if useTLS {
			dir := filepath.Join(nw.dir, "crypto", "orderer", "orderers", fmt.Sprintf("orderer%d", i), "tls")
			c.tls = serverTLSFlags{cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key")}
			c.peerTLS.caFile = filepath.Join(dir, "ca.crt")
			creds, _, err := c.peerTLS.credentials()
			require.NoError(t, err)
			nw.creds = creds
		}
		if i == 2 {
			c.logger = slog.New(slog.NewTextHandler(log2, nil)).With("node", 2)
			if firstDown {
				c.peers = []string{dead, addrs[1]}
			}
		}
	})
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	nw.send(0, 10, "before")
	followUntil(t, nw.client(2), user, 10)
	nw.nodes[2].Close()
	nw.send(0, 25, "while down")
	for i := range 2 {
		followUntil(t, nw.client(i), user, 35)
	}
	// Delete the log once nodes 0 and 1 consumed all of it (a node's late
	// time-to-cut may follow the last block).
	end := endOffset(t, ctx, nw.kafka)
	for {
		time.Sleep(300 * time.Millisecond)
		e := endOffset(t, ctx, nw.kafka)
		if e == end {
			break
		}
		end = e
	}
	require.NoError(t, nw.kafka.DeleteRecords(ctx, testChannel, end))
	nw.send(0, 1, "after the gap")
	followUntil(t, nw.client(0), user, 36)

	nw.start(2)
	followUntil(t, nw.client(2), user, 36)
	source := addrs[0]
	if firstDown {
		source = addrs[1]
		require.True(t, logged(log2.String(), "block source skipped", dead), log2.String())
	}
	require.True(t, logged(log2.String(), "caught up from a block source", source), log2.String())

	nw.send(2, 5, "after")
	for i := range 3 {
		followUntil(t, nw.client(i), user, 41)
	}
	ref := nw.nodes[0].ledgers[0]
	require.Eventually(t, func() bool {
		return nw.nodes[1].ledgers[0].Height() == ref.Height() && nw.nodes[2].ledgers[0].Height() == ref.Height()
	}, 10*time.Second, 10*time.Millisecond)
	for i := 1; i < 3; i++ {
		require.NoError(t, consensustest.CompareLedgers(ref, nw.nodes[i].ledgers[0]), "node 0 vs node %d", i)
	}
}

// logged reports whether logs (text records) hold a record with message
// msg naming the peer at addr as its source.
func logged(logs, msg, addr string) bool {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, fmt.Sprintf("msg=%q", msg)) && strings.Contains(l, fmt.Sprintf("source=%q", "peer "+addr)) {
			return true
		}
	}
	return false
}

// anySigner signs with no key: enough for a server whose configuration
// lets anyone read.
type anySigner struct{ msp.SigningIdentity }

func (anySigner) Serialize() ([]byte, error)      { return []byte("reader"), nil }
func (anySigner) Sign(msg []byte) ([]byte, error) { return []byte("signature"), nil }

// TestPeerSourcesFlags checks the flags --peers goes with.
func TestPeerSourcesFlags(t *testing.T) {
	_, err := peerSources(nodeConfig{peers: []string{"127.0.0.1:7051"}}, nil)
	require.ErrorContains(t, err, "--peers needs --signer")
	_, err = peerSources(nodeConfig{peerTLS: clientTLSFlags{caFile: "ca.pem"}}, anySigner{})
	require.ErrorContains(t, err, "--peer-tls-ca needs --peers")
	_, err = peerSources(nodeConfig{peers: []string{"127.0.0.1:7051"}, peerTLS: clientTLSFlags{caFile: filepath.Join(t.TempDir(), "none.pem")}}, anySigner{})
	require.ErrorContains(t, err, "--peer-tls-ca")
	_, err = peerSources(nodeConfig{peers: []string{"127.0.0.1:7051"}, peerTimeout: -time.Second}, anySigner{})
	require.ErrorContains(t, err, "peer timeout -1s: must be positive")
	srcs, err := peerSources(nodeConfig{peers: []string{"127.0.0.1:7051", "127.0.0.1:7052"}}, anySigner{})
	require.NoError(t, err)
	require.Len(t, srcs, 2)
	require.IsType(t, &atomicbroadcast.PeerSource{}, srcs[1])
	require.Equal(t, "peer 127.0.0.1:7052", srcs[1].(fmt.Stringer).String())
}
