package consensus_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/goleak"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Tests of a chain on an embedded one-broker Kafka that requires SASL, TLS
// or both (consensus.WithSASL, consensus.WithTLS).

const secureChannel = "secure"

// secureKafka starts a one-broker Kafka with opts and registers the leak
// check, which runs after every later cleanup.
func secureKafka(t *testing.T, opts ...consensustest.KafkaOption) *consensustest.Kafka {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // registered first, runs last
	k, err := consensustest.StartKafka(append([]consensustest.KafkaOption{consensustest.WithBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(k.Close)
	return k
}

// secureChain creates and starts a chain on k with opts, and returns it
// once WaitReady returned, with WaitReady's error.
func secureChain(t *testing.T, ctx context.Context, k *consensustest.Kafka, opts ...consensus.Option) (*consensus.Chain, *ledger.Memory, *testutil.Identity, error) {
	t.Helper()
	ca := testutil.NewCA(t, "Org1")
	genesis := testutil.GenesisBlock(t, testutil.ChannelConfig(secureChannel, []*testutil.CA{ca},
		testutil.WithBatchSize(10, 1<<20, 1<<19), testutil.WithBatchTimeout(30*time.Millisecond)))
	opts = append([]consensus.Option{
		consensus.WithSeedBrokers(k.Addrs()...),
		consensus.WithRetry(consensustest.FastRetryPolicy()),
		consensus.WithTopicSettings(consensus.TopicSettings{ReplicationFactor: 1, MinInsyncReplicas: 1}),
		consensus.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	cons, err := consensus.NewConsenter(opts...)
	require.NoError(t, err)
	t.Cleanup(cons.Close)
	l := ledger.NewMemory()
	ch, err := cons.NewChain(secureChannel, l, genesis)
	require.NoError(t, err)
	ch.Start()
	return ch, l, ca.Issue("client"), ch.WaitReady(ctx)
}

// orderAndCheck orders n envelopes on ch and waits until l holds them all,
// in order, after the genesis block.
func orderAndCheck(t *testing.T, ctx context.Context, ch *consensus.Chain, l *ledger.Memory, client *testutil.Identity, n int) {
	t.Helper()
	var want []string
	for i := range n {
		data := fmt.Sprint("tx", i)
		want = append(want, data)
		env := testutil.Envelope(client, secureChannel, cb.HeaderType_ENDORSER_TRANSACTION, []byte(data))
		seq, err := ch.ProcessNormal(env)
		require.NoError(t, err)
		require.NoError(t, ch.Order(ctx, env, seq))
	}
	var got []string
	for h := uint64(1); len(got) < n; h++ {
		for l.Height() <= h {
			select {
			case <-ctx.Done():
				t.Fatalf("height %d, %d of %d envelopes ordered", l.Height(), len(got), n)
			case <-time.After(5 * time.Millisecond):
			}
		}
		b, err := l.Block(h)
		require.NoError(t, err)
		data, _ := blockEnvelopes(t, b)
		got = append(got, data...)
	}
	require.Equal(t, want, got)
}

// failFast makes a chain give up its Kafka set-up after about
// 300ms, and kgo give up retrying a request after 200ms.
func failFast() []consensus.Option {
	return []consensus.Option{
		consensus.WithRetry(consensus.RetryPolicy{
			ShortInterval: 50 * time.Millisecond, ShortTotal: 300 * time.Millisecond,
			LongInterval: 50 * time.Millisecond, LongTotal: 0,
		}),
		consensus.WithKgoOpts(kgo.RetryTimeout(200 * time.Millisecond)),
	}
}

func scram256(user, pass string) sasl.Mechanism {
	return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
}

// TestChainSecurity orders envelopes through a chain on a Kafka that
// requires SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), TLS, mutual TLS, or
// TLS and SASL.
func TestChainSecurity(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kafka func(*consensustest.TLSCerts) []consensustest.KafkaOption
		chain func(*consensustest.TLSCerts) []consensus.Option
	}{
		{
			name: "SASLPlain",
			kafka: func(*consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithSASLUser(consensustest.SASLPlain, "orderer", "s3cret")}
			},
			chain: func(*consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithSASL(plain.Auth{User: "orderer", Pass: "s3cret"}.AsMechanism())}
			},
		},
		{
			name: "SASLScramSHA256",
			kafka: func(*consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithSASLUser(consensustest.SASLScramSHA256, "orderer", "s3cret")}
			},
			chain: func(*consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithSASL(scram256("orderer", "s3cret"))}
			},
		},
		{
			name: "SASLScramSHA512",
			kafka: func(*consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithSASLUser(consensustest.SASLScramSHA512, "orderer", "s3cret")}
			},
			chain: func(*consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithSASL(scram.Auth{User: "orderer", Pass: "s3cret"}.AsSha512Mechanism())}
			},
		},
		{
			name: "TLS",
			kafka: func(c *consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithTLS(c.Server)}
			},
			chain: func(c *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithTLS(c.Client)}
			},
		},
		{
			name: "MutualTLS",
			kafka: func(c *consensustest.TLSCerts) []consensustest.KafkaOption {
				server := c.Server.Clone()
				server.ClientAuth = tls.RequireAndVerifyClientCert
				return []consensustest.KafkaOption{consensustest.WithTLS(server)}
			},
			chain: func(c *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithTLS(c.MutualClient)}
			},
		},
		{
			name: "TLSAndSASL",
			kafka: func(c *consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithTLS(c.Server),
					consensustest.WithSASLUser(consensustest.SASLScramSHA256, "orderer", "s3cret")}
			},
			chain: func(c *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithTLS(c.Client), consensus.WithSASL(scram256("orderer", "s3cret"))}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := consensustest.SelfSignedTLS()
			require.NoError(t, err)
			k := secureKafka(t, tc.kafka(certs)...)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ch, l, client, err := secureChain(t, ctx, k, tc.chain(certs)...)
			require.NoError(t, err)
			orderAndCheck(t, ctx, ch, l, client, 15)
		})
	}
}

// rejectedCase is a Kafka (kafka) and a chain's options (chain) that it
// refuses: own are the certificates the Kafka may use, other those of
// another CA.
type rejectedCase struct {
	name  string
	kafka func(own *consensustest.TLSCerts) []consensustest.KafkaOption
	chain func(own, other *consensustest.TLSCerts) []consensus.Option
	is    error  // if not nil, the error wraps it
	want  string // the error contains it
}

// testRejected starts the chain of each case: it must halt once its retry
// policy is used up, without having become ready, with an error that names
// the cause.
func testRejected(t *testing.T, cases []rejectedCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			own, err := consensustest.SelfSignedTLS()
			require.NoError(t, err)
			other, err := consensustest.SelfSignedTLS()
			require.NoError(t, err)
			k := secureKafka(t, tc.kafka(own)...)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			ch, _, _, err := secureChain(t, ctx, k, append(failFast(), tc.chain(own, other)...)...)
			require.ErrorIs(t, err, consensus.ErrHalted)
			require.Less(t, time.Since(start), 3*time.Second, "halted too late")
			require.ErrorContains(t, err, "ensure topic")
			require.ErrorContains(t, err, tc.want)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			require.ErrorIs(t, ch.Available(), consensus.ErrHalted)
		})
	}
}

// TestChainSASLRejected starts chains with SASL credentials the brokers
// refuse, or none. A wrong SCRAM password is the odd one: the embedded Kafka
// closes the connection where Kafka answers SASL_AUTHENTICATION_FAILED, so
// the chain sees io.EOF.
func TestChainSASLRejected(t *testing.T) {
	testRejected(t, []rejectedCase{
		{
			name: "WrongPasswordPlain",
			kafka: func(*consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithSASLUser(consensustest.SASLPlain, "orderer", "s3cret")}
			},
			chain: func(_, _ *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithSASL(plain.Auth{User: "orderer", Pass: "wrong"}.AsMechanism())}
			},
			is:   kerr.SaslAuthenticationFailed,
			want: "Invalid username or password",
		},
		{
			name: "WrongPasswordScram",
			kafka: func(*consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithSASLUser(consensustest.SASLScramSHA256, "orderer", "s3cret")}
			},
			chain: func(_, _ *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithSASL(scram256("orderer", "wrong"))}
			},
			is:   io.EOF,
			want: "EOF",
		},
		{
			name: "UnknownUserScram",
			kafka: func(*consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithSASLUser(consensustest.SASLScramSHA256, "orderer", "s3cret")}
			},
			chain: func(_, _ *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithSASL(scram256("intruder", "s3cret"))}
			},
			is:   kerr.SaslAuthenticationFailed,
			want: "invalid credentials",
		},
		{
			name: "TLSAndWrongPasswordPlain",
			kafka: func(c *consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithTLS(c.Server),
					consensustest.WithSASLUser(consensustest.SASLPlain, "orderer", "s3cret")}
			},
			chain: func(own, _ *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithTLS(own.Client), consensus.WithSASL(plain.Auth{User: "orderer", Pass: "wrong"}.AsMechanism())}
			},
			is:   kerr.SaslAuthenticationFailed,
			want: "Invalid username or password",
		},
		{
			name: "NoSASL",
			kafka: func(*consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithSASLUser(consensustest.SASLScramSHA256, "orderer", "s3cret")}
			},
			chain: func(_, _ *consensustest.TLSCerts) []consensus.Option { return nil },
			want:  "is SASL missing?",
		},
	})
}

// TestChainTLSRejected starts chains whose TLS settings the brokers refuse,
// or that refuse the brokers' certificate.
func TestChainTLSRejected(t *testing.T) {
	testRejected(t, []rejectedCase{
		{
			name: "UntrustedCA",
			kafka: func(c *consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithTLS(c.Server)}
			},
			chain: func(_, other *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithTLS(other.Client)}
			},
			want: "certificate signed by unknown authority",
		},
		{
			name: "NoTLS",
			kafka: func(c *consensustest.TLSCerts) []consensustest.KafkaOption {
				return []consensustest.KafkaOption{consensustest.WithTLS(c.Server)}
			},
			chain: func(_, _ *consensustest.TLSCerts) []consensus.Option { return nil },
			want:  "is TLS missing?",
		},
		{
			name: "NoClientCert",
			kafka: func(c *consensustest.TLSCerts) []consensustest.KafkaOption {
				server := c.Server.Clone()
				server.ClientAuth = tls.RequireAndVerifyClientCert
				return []consensustest.KafkaOption{consensustest.WithTLS(server)}
			},
			chain: func(own, _ *consensustest.TLSCerts) []consensus.Option {
				return []consensus.Option{consensus.WithTLS(own.Client)}
			},
			want: "certificate required",
		},
	})
}
