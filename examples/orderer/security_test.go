package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials/insecure"

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
	go func() {
		done <- dispatch(runCtx, []string{"start",
			"--listen", "127.0.0.1:0",
			"--brokers", strings.Join(k.Addrs(), ","),
			"--genesis", genesis,
			"--data", filepath.Join(dir, "orderer0"),
			"--signer", filepath.Join(crypto, "orderer", "orderers", "orderer0", "msp"),
			"--signer-mspid", "OrdererMSP",
			"--kafka-tls", "--kafka-tls-ca", caFile,
			"--kafka-sasl-user", "orderer", "--kafka-sasl-password", "s3cret", "--kafka-sasl-mechanism", "SCRAM-SHA-256",
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
	conn, err := dialOrderer(addr, insecure.NewCredentials())
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
