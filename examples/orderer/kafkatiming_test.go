package main

import (
	"flag"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
)

// TestKafkaTimingFlags checks that start's error timeout, retry and Kafka
// timeout flags parse into the policy and options the consenter takes,
// with the library's defaults, and that bad values are refused.
func TestKafkaTimingFlags(t *testing.T) {
	parse := func(args ...string) *kafkaTimingFlags {
		var f kafkaTimingFlags
		fs := flag.NewFlagSet("start", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		require.NoError(t, fs.Parse(args))
		return &f
	}
	consenter := func(f *kafkaTimingFlags) error {
		opts, err := f.opts()
		if err != nil {
			return err
		}
		c, err := consensus.NewConsenter(append(opts, consensus.WithSeedBrokers("127.0.0.1:1"))...)
		if err == nil {
			c.Close()
		}
		return err
	}

	f := parse()
	require.Equal(t, consensus.DefaultRetryPolicy(), f.retry)
	require.Equal(t, 2*time.Second, f.errorTimeout)
	require.Equal(t, consensus.DefaultStallTimeout, f.stallTimeout)
	require.NoError(t, consenter(f))

	f = parse("--error-timeout", "500ms", "--retry-short-interval", "100ms", "--retry-short-total", "2s",
		"--retry-long-interval", "1s", "--retry-long-total", "1m", "--kafka-dial-timeout", "1s", "--kafka-request-timeout", "1500ms", "--kafka-stall-timeout", "3s")
	require.Equal(t, consensus.RetryPolicy{ShortInterval: 100 * time.Millisecond, ShortTotal: 2 * time.Second, LongInterval: time.Second, LongTotal: time.Minute}, f.retry)
	require.Equal(t, 500*time.Millisecond, f.errorTimeout)
	require.Equal(t, time.Second, f.dialTimeout)
	require.Equal(t, 1500*time.Millisecond, f.requestTimeout)
	require.Equal(t, 3*time.Second, f.stallTimeout)
	opts, err := f.opts()
	require.NoError(t, err)
	require.Len(t, opts, 4)
	require.NoError(t, consenter(f))

	require.ErrorContains(t, consenter(parse("--kafka-request-timeout", "50ms")), "--kafka-request-timeout")
	require.ErrorContains(t, consenter(parse("--kafka-dial-timeout", "0s")), "--kafka-dial-timeout")
	require.ErrorContains(t, consenter(parse("--retry-short-interval", "0s")), "retry policy")
	require.ErrorContains(t, consenter(parse("--error-timeout", "-1s")), "durations must not be negative")
	require.ErrorContains(t, consenter(parse("--kafka-stall-timeout", "-1s")), "durations must not be negative")

	// A node configured in code, without the flags, keeps the options it
	// is given.
	opts, err = new(kafkaTimingFlags).opts()
	require.NoError(t, err)
	require.Empty(t, opts)
}

// TestKafkaListenOtherHost checks that the kafka command listens on an
// address other than 127.0.0.1 when told, and advertises it, and that it
// refuses addresses the brokers cannot advertise.
func TestKafkaListenOtherHost(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", "[::]:0", "example.com:9092"} {
		_, err := startKafka(kafkaConfig{listen: listen, brokers: 3})
		require.ErrorContains(t, err, "want 127.0.0.1 or the IP address of one interface", listen)
	}
	_, err := startKafka(kafkaConfig{listen: "127.0.0.2:0", brokers: 3, tlsCAOut: "ca.pem"})
	require.ErrorContains(t, err, "for 127.0.0.1 only")

	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no address 127.0.0.2 on this machine: %v", err)
	}
	ln.Close()
	k, err := startKafka(kafkaConfig{listen: "127.0.0.2:0", brokers: 3})
	require.NoError(t, err)
	defer k.Close()
	require.Len(t, k.Addrs(), 3)
	for _, a := range k.Addrs() {
		require.True(t, strings.HasPrefix(a, "127.0.0.2:"), a)
	}
}
