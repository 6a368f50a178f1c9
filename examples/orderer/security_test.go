package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// TestStartKafkaTLSSASL runs the kafka command's cluster with TLS and SASL
// SCRAM-SHA-256, and the start command (its flag parsing included) with the
// matching --kafka-tls-ca and --kafka-sasl-* flags, then broadcasts
// envelopes and delivers the blocks that hold them.
func TestStartKafkaTLSSASL(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "kafka-ca.pem")
	k, err := startKafka(kafkaConfig{listen: "127.0.0.1:0", brokers: 3, tlsCAOut: caFile,
		saslUser: "orderer", saslPassword: "s3cret", saslMechanism: "scram-sha-256"})
	require.NoError(t, err)
	t.Cleanup(k.Close)
	_, err = startKafka(kafkaConfig{listen: "127.0.0.1:0", brokers: 1, saslUser: "orderer"})
	require.ErrorContains(t, err, "go together")
	_, err = startKafka(kafkaConfig{listen: "127.0.0.1:0", brokers: 1, saslUser: "orderer", saslPassword: "x", saslMechanism: "GSSAPI"})
	require.ErrorContains(t, err, "unknown mechanism")

	ctx := context.Background()
	var out bytes.Buffer
	crypto := filepath.Join(dir, "crypto")
	require.NoError(t, dispatch(ctx, []string{"cryptogen", "--out", filepath.Join(crypto, "org1"), "--mspid", "Org1MSP", "--domain", "org1.example.com", "--orderers", "0"}, &out, &out), out.String())
	require.NoError(t, dispatch(ctx, []string{"cryptogen", "--out", filepath.Join(crypto, "orderer"), "--mspid", "OrdererMSP", "--orderers", "1", "--users", "0"}, &out, &out), out.String())
	genesis := filepath.Join(dir, testChannel+".block")
	require.NoError(t, dispatch(ctx, []string{"genesis", "--channel", testChannel,
		"--org", "Org1MSP=" + filepath.Join(crypto, "org1", "msp"),
		"--orderer-org", "OrdererMSP=" + filepath.Join(crypto, "orderer", "msp"),
		"--max-message-count", "10", "--batch-timeout", "50ms", "-o", genesis}, &out, &out), out.String())

	runCtx, stop := context.WithCancel(ctx)
	stdout := new(syncBuffer)
	done := make(chan error, 1)
	// The password from a file, as a deployment gives it.
	passFile := filepath.Join(dir, "kafka-password")
	require.NoError(t, os.WriteFile(passFile, []byte("s3cret\n"), 0o600))
	go func() {
		done <- dispatch(runCtx, []string{"start",
			"--listen", "127.0.0.1:0",
			"--brokers", strings.Join(k.Addrs(), ","),
			"--genesis", genesis,
			"--data", filepath.Join(dir, "orderer0"),
			"--signer", filepath.Join(crypto, "orderer", "orderers", "orderer0", "msp"),
			"--signer-mspid", "OrdererMSP",
			"--kafka-tls", "--kafka-tls-ca", caFile,
			"--kafka-sasl-user", "orderer", "--kafka-sasl-password-file", passFile, "--kafka-sasl-mechanism", "SCRAM-SHA-256",
			"--log-level", "error", "--kafka-log-level", "error",
		}, stdout, stdout)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("start did not return after its context ended")
		}
	})

	// start prints its address once the node serves; chains may still be
	// setting up Kafka, and Broadcast answers SERVICE_UNAVAILABLE until
	// they are ready.
	listening := regexp.MustCompile(`orderer listening on (\S+),`)
	var addr string
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			t.Fatalf("start returned: %v\n%s", err, stdout.String())
		default:
		}
		if m := listening.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "start did not listen: %s", stdout.String())
	conn, err := dialOrderer(addr, insecure.NewCredentials(), atomicbroadcast.DefaultClientStallTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	client := ab.NewAtomicBroadcastClient(conn)

	signer, err := msp.LoadSigningIdentity(filepath.Join(crypto, "org1", "users", "user1", "msp"), "Org1MSP")
	require.NoError(t, err)
	const n = 5
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < n; {
		env := txEnvelope(t, signer, testChannel, fmt.Appendf(nil, "secure tx %d", i))
		r := broadcastOne(t, client, env)
		switch {
		case r.GetStatus() == cb.Status_SUCCESS:
			i++
		case r.GetStatus() == cb.Status_SERVICE_UNAVAILABLE && time.Now().Before(deadline):
			time.Sleep(20 * time.Millisecond) // the chain is not ready yet
		default:
			t.Fatalf("envelope %d: %v %s", i, r.GetStatus(), r.GetInfo())
		}
	}
	blocks := followUntil(t, client, signer, n)
	checkChain(t, blocks)
	var got []string
	for _, b := range blocks[1:] {
		for _, raw := range b.GetData().GetData() {
			env, err := protoutil.UnmarshalEnvelope(raw)
			require.NoError(t, err)
			h, err := protoutil.EnvelopeHeaders(env)
			require.NoError(t, err)
			got = append(got, string(h.Payload.GetData()))
		}
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("secure tx %d", i)
	}
	require.Equal(t, want, got)
}

// TestStartMutualTLS runs a node with --tls-client-auth: the clients of
// its channel's organisations connect with the TLS client certificates
// cryptogen wrote, and are served when their requests are bound to them
// (the broadcast and deliver commands bind theirs); a client of another
// organisation's CA, or without a certificate, is refused at the
// handshake; another orderer pulls blocks with its own TLS certificate
// (--peers). The receive limit follows the channel's AbsoluteMaxBytes.
func TestStartMutualTLS(t *testing.T) {
	var ordererTLS string
	nw := newNetwork(t, 1, func(nw *network, i int, c *nodeConfig) {
		ordererTLS = filepath.Join(nw.dir, "crypto", "orderer", "orderers", "orderer0", "tls")
		c.tls = serverTLSFlags{cert: filepath.Join(ordererTLS, "server.crt"), key: filepath.Join(ordererTLS, "server.key"), clientAuth: true}
	})
	ctx := context.Background()
	caFile := filepath.Join(ordererTLS, "ca.crt")
	userDir := filepath.Join(nw.dir, "crypto", "org1", "users", "user1")
	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	connect := func(certDir string) (ab.AtomicBroadcastClient, []byte) {
		f := clientTLSFlags{caFile: caFile}
		if certDir != "" {
			f.cert, f.key = filepath.Join(certDir, "tls", "client.crt"), filepath.Join(certDir, "tls", "client.key")
		}
		creds, hash, err := f.credentials()
		require.NoError(t, err)
		conn, err := dialOrderer(nw.nodes[0].Addr(), creds, atomicbroadcast.DefaultClientStallTimeout)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return ab.NewAtomicBroadcastClient(conn), hash
	}
	c, hash := connect(userDir)
	bound := func(h []byte, data []byte) *cb.Envelope {
		env, err := protoutil.NewSignedEnvelopeWithTLSBinding(cb.HeaderType_ENDORSER_TRANSACTION, testChannel, data, user, h)
		require.NoError(t, err)
		return env
	}
	r := broadcastOne(t, c, bound(hash, []byte("bound")))
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
	r = broadcastOne(t, c, bound(nil, []byte("not bound")))
	require.Equal(t, cb.Status_BAD_REQUEST, r.GetStatus(), r.GetInfo())
	require.Contains(t, r.GetInfo(), "not bound to the client's TLS certificate")
	_, st := deliverBlocks(t, c, seek(t, user, testChannel, seekOldest(), seekOldest(), ab.SeekInfo_BLOCK_UNTIL_READY))
	require.Equal(t, cb.Status_BAD_REQUEST, st, "an unbound seek request")

	// The largest message is the channel's AbsoluteMaxBytes (64 KiB) and
	// 1 KiB: gRPC refuses more before the server reads it.
	stream, err := c.Broadcast(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(bound(hash, make([]byte, 66<<10))))
	_, err = stream.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)

	// The commands, with the client certificate.
	var out bytes.Buffer
	clientArgs := func(cmd string, extra ...string) []string {
		return append([]string{cmd, "--orderer", nw.nodes[0].Addr(), "--channel", testChannel,
			"--signer", filepath.Join(userDir, "msp"), "--signer-mspid", "Org1MSP", "--tls-ca", caFile,
			"--tls-cert", filepath.Join(userDir, "tls", "client.crt"), "--tls-key", filepath.Join(userDir, "tls", "client.key")}, extra...)
	}
	require.NoError(t, dispatch(ctx, clientArgs("broadcast", "-n", "5"), &out, &out), out.String())
	require.Regexp(t, `SUCCESS\s+5\n`, out.String())
	out.Reset()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, dispatch(dctx, clientArgs("deliver", "--start", "oldest", "--stop", "newest"), &out, &out), out.String())
	require.Contains(t, out.String(), "block 0: 1 transactions")
	require.Contains(t, out.String(), "status SUCCESS")
	require.Eventually(t, func() bool {
		env, err := atomicbroadcast.NewSeekEnvelopeWithTLSBinding(user, testChannel, &ab.SeekInfo{Start: seekOldest(), Stop: seekNewest()}, hash)
		require.NoError(t, err)
		blocks, st := deliverBlocks(t, c, env)
		require.Equal(t, cb.Status_SUCCESS, st)
		txs := 0
		for _, b := range blocks[1:] {
			txs += len(b.GetData().GetData())
		}
		return txs == 6
	}, 10*time.Second, 50*time.Millisecond, "the bound envelope and the command's 5")

	// Another organisation's CA, and no certificate, do not get through.
	require.NoError(t, dispatch(ctx, []string{"cryptogen", "--out", filepath.Join(nw.dir, "crypto", "org9"), "--mspid", "Org9MSP", "--domain", "org9.example.com", "--orderers", "0"}, &out, &out))
	for name, dir := range map[string]string{"another CA": filepath.Join(nw.dir, "crypto", "org9", "users", "user1"), "no certificate": ""} {
		c, _ := connect(dir)
		stream, err := c.Broadcast(ctx)
		if err == nil {
			if err = stream.Send(bound(hash, nil)); err == nil {
				_, err = stream.Recv()
			}
		}
		require.Equal(t, codes.Unavailable, status.Code(err), "%s: %v", name, err)
	}

	// Another orderer pulls blocks with its TLS certificate, its seek
	// requests bound to it.
	peerCfg := nodeConfig{peers: []string{nw.nodes[0].Addr()}, tls: nw.cfgs[0].tls, peerTLS: clientTLSFlags{caFile: caFile}}
	srcs, err := peerSources(peerCfg, nw.signer("orderer/orderers/orderer0/msp", "OrdererMSP"))
	require.NoError(t, err)
	var pulled int
	require.NoError(t, srcs[0].Blocks(ctx, testChannel, 0, func(*cb.Block) error { pulled++; return nil }))
	require.Positive(t, pulled)
}
