package consensustest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

func selfSigned(t *testing.T) *consensustest.TLSCerts {
	t.Helper()
	c, err := consensustest.SelfSignedTLS()
	require.NoError(t, err)
	return c
}

func TestSecurityOptionsRejected(t *testing.T) {
	certs := selfSigned(t)
	for _, tc := range []struct {
		opts []consensustest.KafkaOption
		want string
	}{
		{[]consensustest.KafkaOption{consensustest.WithTLS(nil)}, "WithTLS(nil)"},
		{[]consensustest.KafkaOption{consensustest.WithTLS(&tls.Config{})}, "no certificate"},
		{[]consensustest.KafkaOption{consensustest.WithTLS(&tls.Config{Certificates: certs.Server.Certificates,
			MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS12})}, "MinVersion"},
		{[]consensustest.KafkaOption{consensustest.WithSASLUser("GSSAPI", "u", "p")}, "unknown mechanism"},
		{[]consensustest.KafkaOption{consensustest.WithSASLUser("PLAIN", "", "p")}, "empty user or password"},
		{[]consensustest.KafkaOption{consensustest.WithSASLUser("SCRAM-SHA-256", "u", "")}, "empty user or password"},
		{[]consensustest.KafkaOption{consensustest.WithSASLUser("PLAIN", "u", "p\x00")}, "NUL"},
		{[]consensustest.KafkaOption{consensustest.WithSASLUser("PLAIN", "u", "p"), consensustest.WithSASLUser("plain", "u", "q")},
			"given twice with different passwords"},
	} {
		_, err := consensustest.StartKafka(tc.opts...)
		require.ErrorContains(t, err, tc.want)
	}
	// The same user for two mechanisms, or added twice alike, is fine.
	startKafka(t, consensustest.WithBrokers(1),
		consensustest.WithSASLUser("plain", "u", "p"), consensustest.WithSASLUser("PLAIN", "u", "p"),
		consensustest.WithSASLUser(consensustest.SASLScramSHA512, "u", "q"))
}

func TestSelfSignedTLS(t *testing.T) {
	c := selfSigned(t)
	block, _ := pem.Decode(c.CAPEM)
	require.NotNil(t, block)
	ca, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.True(t, ca.IsCA)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	server, err := x509.ParseCertificate(c.Server.Certificates[0].Certificate[0])
	require.NoError(t, err)
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		_, err = server.Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
		require.NoError(t, err, host)
	}
	_, err = tls.X509KeyPair(c.ClientCertPEM, c.ClientKeyPEM)
	require.NoError(t, err)
	require.Empty(t, c.Client.Certificates)
	require.Len(t, c.MutualClient.Certificates, 1)
	// Two calls make two CAs.
	require.NotEqual(t, c.CAPEM, selfSigned(t).CAPEM)
}

// TestKafkaTLSSASLFaults checks that the fault methods work through TLS and
// SASL: the tracked connections are the TCP connections under TLS.
func TestKafkaTLSSASLFaults(t *testing.T) {
	certs := selfSigned(t)
	k := startKafka(t, consensustest.WithTLS(certs.Server),
		consensustest.WithSASLUser(consensustest.SASLScramSHA256, "alice", "secret"))
	ctx := testCtx(t, 20*time.Second)
	auth := []kgo.Opt{kgo.DialTLSConfig(certs.Client), kgo.SASL(scram.Auth{User: "alice", Pass: "secret"}.AsSha256Mechanism())}

	adm := kadm.NewClient(newClient(t, k, auth...))
	_, err := adm.CreateTopic(ctx, 1, 3, nil, testTopic)
	require.NoError(t, err)

	var h connHook
	p := newClient(t, k, append(auth, kgo.WithHooks(&h))...)
	require.NoError(t, p.ProduceSync(ctx, rec("before")).FirstErr())
	connects := h.connects.Load()

	k.DropConnections()
	require.NoError(t, p.ProduceSync(ctx, rec("dropped")).FirstErr())
	require.Positive(t, h.disconnects.Load())
	require.Greater(t, h.connects.Load(), connects)

	k.Pause()
	done := produceHeld(t, ctx, p, rec("paused"))
	require.NoError(t, k.Resume())
	require.NoError(t, <-done)

	c := newClient(t, k, append(auth, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		testTopic: {0: kgo.NewOffset().At(0)},
	}))...)
	var got []string
	for len(got) < 3 && ctx.Err() == nil {
		c.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	require.Equal(t, []string{"before", "dropped", "paused"}, got)
}

// TestKafkaSASLAuthenticationFailed checks that unknown credentials are
// refused as Kafka refuses them, so that kgo fails at once instead of
// retrying.
func TestKafkaSASLAuthenticationFailed(t *testing.T) {
	k := startKafka(t, consensustest.WithBrokers(1),
		consensustest.WithSASLUser(consensustest.SASLPlain, "alice", "secret"),
		consensustest.WithSASLUser(consensustest.SASLScramSHA512, "bob", "secret"))
	ctx := testCtx(t, 10*time.Second)
	for _, tc := range []struct {
		name string
		opt  kgo.Opt
		ok   bool
	}{
		{"plain", kgo.SASL(plain.Auth{User: "alice", Pass: "secret"}.AsMechanism()), true},
		{"plain wrong password", kgo.SASL(plain.Auth{User: "alice", Pass: "nope"}.AsMechanism()), false},
		{"plain unknown user", kgo.SASL(plain.Auth{User: "bob", Pass: "secret"}.AsMechanism()), false},
		{"scram", kgo.SASL(scram.Auth{User: "bob", Pass: "secret"}.AsSha512Mechanism()), true},
		{"scram unknown user", kgo.SASL(scram.Auth{User: "alice", Pass: "secret"}.AsSha512Mechanism()), false},
	} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), tc.opt)
		require.NoError(t, err)
		start := time.Now()
		err = cl.Ping(ctx)
		cl.Close()
		if tc.ok {
			require.NoError(t, err, tc.name)
			continue
		}
		require.ErrorIs(t, err, kerr.SaslAuthenticationFailed, tc.name)
		require.Less(t, time.Since(start), time.Second, "%s: not refused at once", tc.name)
	}
}
