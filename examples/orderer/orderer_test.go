package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

const testChannel = "mychannel"

// network is a Kafka cluster, the crypto material of two organisations
// (Org1MSP for clients, OrdererMSP for the nodes), a genesis block and
// running ordering nodes.
type network struct {
	t       *testing.T
	dir     string
	kafka   *consensustest.Kafka
	genesis string
	nodes   []*node
	cfgs    []nodeConfig
	// creds are the transport credentials of the test's gRPC clients.
	creds credentials.TransportCredentials
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("ORDERER_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// newNetwork starts Kafka and n nodes, with the genesis written by the
// genesis command from folders written by the cryptogen command. Each
// configure function may change a node's configuration (i is the node's
// index) before it starts.
func newNetwork(t *testing.T, n int, configure ...func(nw *network, i int, c *nodeConfig)) *network {
	t.Helper()
	nw := &network{t: t, dir: t.TempDir(), creds: insecure.NewCredentials()}
	k, err := consensustest.StartKafka()
	require.NoError(t, err)
	nw.kafka = k
	t.Cleanup(k.Close)

	ctx := context.Background()
	var out bytes.Buffer
	crypto := filepath.Join(nw.dir, "crypto")
	require.NoError(t, dispatch(ctx, []string{"cryptogen", "--out", filepath.Join(crypto, "org1"), "--mspid", "Org1MSP", "--domain", "org1.example.com", "--orderers", "0"}, &out, &out))
	require.NoError(t, dispatch(ctx, []string{"cryptogen", "--out", filepath.Join(crypto, "orderer"), "--mspid", "OrdererMSP", "--orderers", fmt.Sprint(n), "--users", "0"}, &out, &out))
	nw.genesis = filepath.Join(nw.dir, testChannel+".block")
	require.NoError(t, dispatch(ctx, []string{"genesis", "--channel", testChannel,
		"--org", "Org1MSP=" + filepath.Join(crypto, "org1", "msp"),
		"--orderer-org", "OrdererMSP=" + filepath.Join(crypto, "orderer", "msp"),
		"--max-message-count", "10", "--absolute-max-bytes", "65536", "--preferred-max-bytes", "32768",
		"--batch-timeout", "100ms", "--format", formatOwn, "-o", nw.genesis}, &out, &out), out.String())

	for i := 0; i < n; i++ {
		nw.cfgs = append(nw.cfgs, nodeConfig{
			listen:          "127.0.0.1:0",
			metricsListen:   "127.0.0.1:0",
			brokers:         k.Addrs(),
			genesis:         []string{nw.genesis},
			dataDir:         filepath.Join(nw.dir, fmt.Sprintf("orderer%d", i)),
			signer:          signerFlags{dir: filepath.Join(crypto, "orderer", "orderers", fmt.Sprintf("orderer%d", i), "msp"), mspID: "OrdererMSP"},
			replication:     3,
			minInsync:       2,
			shutdownTimeout: 2 * time.Second,
			syncEvery:       1,
			logger:          testLogger(t).With("node", i),
			retry:           &consensus.RetryPolicy{ShortInterval: 50 * time.Millisecond, ShortTotal: 10 * time.Second, LongInterval: time.Second, LongTotal: 10 * time.Second},
		})
		nw.nodes = append(nw.nodes, nil)
	}
	for i := range nw.cfgs {
		for _, f := range configure {
			f(nw, i, &nw.cfgs[i])
		}
	}
	for i := range nw.cfgs {
		nw.start(i)
	}
	return nw
}

// start starts node i (again) and waits until it is healthy.
func (nw *network) start(i int) *node {
	nw.t.Helper()
	nd, err := startNode(nw.cfgs[i])
	require.NoError(nw.t, err)
	nw.nodes[i] = nd
	nw.t.Cleanup(nd.Close)
	require.Eventually(nw.t, func() bool {
		code, _ := httpGet(nd.MetricsAddr(), "/healthz")
		return code == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond, "node %d never became healthy", i)
	return nd
}

func (nw *network) signer(path, mspID string) msp.SigningIdentity {
	nw.t.Helper()
	si, err := msp.LoadSigningIdentity(filepath.Join(nw.dir, "crypto", path), mspID)
	require.NoError(nw.t, err)
	return si
}

func (nw *network) client(i int) ab.AtomicBroadcastClient {
	nw.t.Helper()
	conn, err := dialOrderer(nw.nodes[i].Addr(), nw.creds, atomicbroadcast.DefaultClientStallTimeout)
	require.NoError(nw.t, err)
	nw.t.Cleanup(func() { conn.Close() })
	return ab.NewAtomicBroadcastClient(conn)
}

// send broadcasts n envelopes ("tag 0", "tag 1", ...) through node i and
// requires that each is answered SUCCESS.
func (nw *network) send(i, n int, tag string) {
	nw.t.Helper()
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := broadcast(ctx, nw.client(i), n, func(j int) (*cb.Envelope, error) {
		return protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, testChannel, fmt.Appendf(nil, "%s %d", tag, j), user)
	})
	require.NoError(nw.t, err)
	require.Equal(nw.t, n, res.statuses[cb.Status_SUCCESS], res.infos)
}

func httpGet(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func txEnvelope(t *testing.T, signer msp.SigningIdentity, channel string, data []byte) *cb.Envelope {
	t.Helper()
	env, err := protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, channel, data, signer)
	require.NoError(t, err)
	return env
}

// broadcastOne sends one envelope on a fresh stream and returns the answer.
func broadcastOne(t *testing.T, c ab.AtomicBroadcastClient, env *cb.Envelope) *ab.BroadcastResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := atomicbroadcast.BroadcastOne(ctx, c, env)
	require.NoError(t, err)
	return r
}

// deliverBlocks sends one seek request and returns the blocks and status.
func deliverBlocks(t *testing.T, c ab.AtomicBroadcastClient, env *cb.Envelope) ([]*cb.Block, cb.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var blocks []*cb.Block
	st, err := atomicbroadcast.ReadBlocks(ctx, c, env, func(b *cb.Block) error { blocks = append(blocks, b); return nil })
	require.NoError(t, err)
	return blocks, st
}

func seek(t *testing.T, signer msp.SigningIdentity, channel string, start, stop *ab.SeekPosition, behavior ab.SeekInfo_SeekBehavior) *cb.Envelope {
	t.Helper()
	env, err := atomicbroadcast.NewSeekEnvelope(signer, channel, &ab.SeekInfo{Start: start, Stop: stop, Behavior: behavior})
	require.NoError(t, err)
	return env
}

// followUntil delivers from block 0 until the blocks after genesis hold
// want envelopes, and returns the blocks.
func followUntil(t *testing.T, c ab.AtomicBroadcastClient, signer msp.SigningIdentity, want int) []*cb.Block {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := c.Deliver(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(seek(t, signer, testChannel, seekOldest(), seekSpecified(1<<62), ab.SeekInfo_BLOCK_UNTIL_READY)))
	var blocks []*cb.Block
	got := 0
	for got < want {
		r, err := stream.Recv()
		require.NoError(t, err, "after %d envelopes", got)
		b := r.GetBlock()
		require.NotNil(t, b, "status %v", r.GetStatus())
		blocks = append(blocks, b)
		if b.GetHeader().GetNumber() > 0 {
			got += len(b.GetData().GetData())
		}
	}
	require.Equal(t, want, got)
	return blocks
}

// checkChain verifies the hash chain and data hashes of blocks 0..n.
func checkChain(t *testing.T, blocks []*cb.Block) {
	t.Helper()
	for i, b := range blocks {
		require.Equal(t, uint64(i), b.GetHeader().GetNumber())
		require.NoError(t, protoutil.CheckDataHash(b), "block %d", i)
		if i > 0 {
			require.Equal(t, protoutil.HeaderHash(blocks[i-1].GetHeader()), b.GetHeader().GetPreviousHash(), "block %d", i)
		}
	}
}

func TestTwoNodesBroadcastDeliver(t *testing.T) {
	nw := newNetwork(t, 2)
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	clients := []ab.AtomicBroadcastClient{nw.client(0), nw.client(1)}

	const perNode = 300
	var wg sync.WaitGroup
	results := make([]broadcastResult, 2)
	errs := make([]error, 2)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			results[i], errs[i] = broadcast(ctx, clients[i], perNode, func(j int) (*cb.Envelope, error) {
				return protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, testChannel, fmt.Appendf(nil, "node %d tx %d", i, j), user)
			})
		}()
	}
	wg.Wait()
	for i := range clients {
		require.NoError(t, errs[i])
		require.Equal(t, map[cb.Status]int{cb.Status_SUCCESS: perNode}, results[i].statuses, "node %d: %v", i, results[i].infos)
	}

	blocks0 := followUntil(t, clients[0], user, 2*perNode)
	checkChain(t, blocks0)
	last := blocks0[len(blocks0)-1].GetHeader().GetNumber()
	blocks1, st := deliverBlocks(t, clients[1], seek(t, user, testChannel, seekOldest(), seekSpecified(last), ab.SeekInfo_BLOCK_UNTIL_READY))
	require.Equal(t, cb.Status_SUCCESS, st)
	require.Len(t, blocks1, len(blocks0))
	for i := range blocks0 {
		require.Equal(t, protoutil.HeaderHash(blocks0[i].GetHeader()), protoutil.HeaderHash(blocks1[i].GetHeader()), "block %d", i)
		require.Equal(t, blocks0[i].GetHeader().GetDataHash(), blocks1[i].GetHeader().GetDataHash(), "block %d", i)
		require.Equal(t, blocks0[i].GetData().GetData(), blocks1[i].GetData().GetData(), "block %d", i)
	}
	// Every envelope appears once, in per-node order.
	seen := make(map[string]bool)
	next := [2]int{}
	for _, b := range blocks0[1:] {
		for _, raw := range b.GetData().GetData() {
			env, err := protoutil.UnmarshalEnvelope(raw)
			require.NoError(t, err)
			h, err := protoutil.EnvelopeHeaders(env)
			require.NoError(t, err)
			d := string(h.Payload.GetData())
			require.False(t, seen[d], "duplicate %s", d)
			seen[d] = true
			var node, tx int
			_, err = fmt.Sscanf(d, "node %d tx %d", &node, &tx)
			require.NoError(t, err)
			require.Equal(t, next[node], tx, "order of node %d's envelopes", node)
			next[node]++
		}
	}

	// Newest, and a specified single block.
	newest, st := deliverBlocks(t, clients[1], seek(t, user, testChannel, seekNewest(), seekNewest(), ab.SeekInfo_BLOCK_UNTIL_READY))
	require.Equal(t, cb.Status_SUCCESS, st)
	require.Len(t, newest, 1)
	require.Equal(t, last, newest[0].GetHeader().GetNumber())
	one, st := deliverBlocks(t, clients[0], seek(t, user, testChannel, seekSpecified(2), seekSpecified(2), ab.SeekInfo_FAIL_IF_NOT_READY))
	require.Equal(t, cb.Status_SUCCESS, st)
	require.Len(t, one, 1)
	require.Equal(t, protoutil.HeaderHash(blocks0[2].GetHeader()), protoutil.HeaderHash(one[0].GetHeader()))

	for i, nd := range nw.nodes {
		code, body := httpGet(nd.MetricsAddr(), "/metrics")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "consensus_kafka_last_offset_persisted", "node %d", i)
		require.Contains(t, body, `channel="mychannel"`)
		code, body = httpGet(nd.MetricsAddr(), "/healthz")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"mychannel":{"status":"ready"`)
	}
}

// TestGenesisPolicies checks, on a running node, the policies of the block
// the genesis command writes: members of Org1MSP write and read, members of
// the orderer organisation read, another organisation does neither, and a
// config update needs the admins of both organisations (MAJORITY Admins);
// once ordered, it takes effect. The statuses themselves are the
// atomicbroadcast package's, and tested there.
func TestGenesisPolicies(t *testing.T) {
	nw := newNetwork(t, 1)
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	ordererNode := nw.signer("orderer/orderers/orderer0/msp", "OrdererMSP")
	org1Admin, ordererAdmin := nw.signer("org1/users/admin/msp", "Org1MSP"), nw.signer("orderer/users/admin/msp", "OrdererMSP")
	c := nw.client(0)
	var out bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"cryptogen", "--out", filepath.Join(nw.dir, "crypto", "org9"), "--mspid", "Org9MSP", "--orderers", "0"}, &out, &out))
	outsider := nw.signer("org9/users/user1/msp", "Org9MSP")

	for _, tc := range []struct {
		name string
		env  *cb.Envelope
		want cb.Status
	}{
		{"member writes", txEnvelope(t, user, testChannel, []byte("ok")), cb.Status_SUCCESS},
		{"orderer node writes", txEnvelope(t, ordererNode, testChannel, []byte("ok")), cb.Status_SUCCESS},
		{"outsider writes", txEnvelope(t, outsider, testChannel, []byte("x")), cb.Status_FORBIDDEN},
		{"config signed by one admin of two", configUpdate(t, nw, 1, org1Admin), cb.Status_FORBIDDEN},
	} {
		r := broadcastOne(t, c, tc.env)
		require.Equal(t, tc.want, r.GetStatus(), "%s: %s", tc.name, r.GetInfo())
	}
	for _, tc := range []struct {
		name   string
		signer msp.SigningIdentity
		want   cb.Status
	}{
		{"member reads", user, cb.Status_SUCCESS},
		{"orderer node reads", ordererNode, cb.Status_SUCCESS},
		{"outsider reads", outsider, cb.Status_FORBIDDEN},
	} {
		_, st := deliverBlocks(t, c, seek(t, tc.signer, testChannel, seekOldest(), seekOldest(), ab.SeekInfo_BLOCK_UNTIL_READY))
		require.Equal(t, tc.want, st, tc.name)
	}

	// Signed by the admins of both organisations, the config update is
	// ordered alone in its block and takes effect.
	r := broadcastOne(t, c, configUpdate(t, nw, 1, org1Admin, ordererAdmin))
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
	require.Eventually(t, func() bool {
		return nw.nodes[0].chains[testChannel].Config().Sequence() == 1
	}, 10*time.Second, 10*time.Millisecond)
	blocks, st := deliverBlocks(t, c, seek(t, user, testChannel, seekNewest(), seekNewest(), ab.SeekInfo_FAIL_IF_NOT_READY))
	require.Equal(t, cb.Status_SUCCESS, st)
	idx, err := protoutil.LastConfigIndex(blocks[0])
	require.NoError(t, err)
	require.Equal(t, blocks[0].GetHeader().GetNumber(), idx)
	// The new limit (absolute max 32 KiB) applies.
	r = broadcastOne(t, c, txEnvelope(t, user, testChannel, make([]byte, 40000)))
	require.Equal(t, cb.Status_REQUEST_ENTITY_TOO_LARGE, r.GetStatus(), r.GetInfo())
}

// configUpdate returns a CONFIG envelope that halves AbsoluteMaxBytes at
// sequence seq, signed by admins and submitted by the first.
func configUpdate(t *testing.T, nw *network, seq uint64, admins ...msp.SigningIdentity) *cb.Envelope {
	t.Helper()
	cfg := nw.nodes[0].chains[testChannel].Config().(consensus.BundleConfig).Bundle.Config()
	cfg.Sequence = seq
	cfg.BatchSize.AbsoluteMaxBytes = 32768
	env, err := channelconfig.NewConfigEnvelope(cfg, admins[0], admins...)
	require.NoError(t, err)
	return env
}

func TestRestartCatchesUp(t *testing.T) {
	nw := newNetwork(t, 2)
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	nw.send(1, 25, "before")
	followUntil(t, nw.client(1), user, 25)

	nw.nodes[1].Close()
	nw.send(0, 40, "while down")
	nw.start(1)
	nw.send(1, 15, "after")

	blocks0 := followUntil(t, nw.client(0), user, 80)
	blocks1 := followUntil(t, nw.client(1), user, 80)
	checkChain(t, blocks1)
	require.Equal(t, len(blocks0), len(blocks1))
	for i := range blocks0 {
		require.Equal(t, protoutil.HeaderHash(blocks0[i].GetHeader()), protoutil.HeaderHash(blocks1[i].GetHeader()), "block %d", i)
	}
}

func TestHelp(t *testing.T) {
	for _, c := range commands {
		err := dispatch(context.Background(), []string{c.name, "--help"}, io.Discard, io.Discard)
		require.ErrorIs(t, err, flag.ErrHelp, c.name)
	}
	var out bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"--help"}, &out, &out))
	for _, c := range commands {
		require.True(t, strings.Contains(out.String(), c.name))
	}
	require.ErrorIs(t, dispatch(context.Background(), []string{"nope"}, io.Discard, io.Discard), errUsage)
}
