package main

import (
	"errors"
	"flag"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
)

// kafkaTimingFlags say how long a node waits on Kafka before it gives up
// (start): when its chains report themselves errored, how their Kafka
// set-up is retried (Fabric's Kafka.Retry settings), and how long the
// Kafka client waits for a connection and for an answer (Fabric's
// Kafka.Timeout settings). A broker that is silent, as behind a network
// partition, is noticed after the request timeout; the chain is errored
// the error timeout later. A connection whose sent data goes
// unacknowledged for the stall timeout is closed and dialled again. The defaults are the library's and franz-go's.
type kafkaTimingFlags struct {
	registered     bool // the flags were registered, so their values apply
	errorTimeout   time.Duration
	retry          consensus.RetryPolicy
	dialTimeout    time.Duration
	requestTimeout time.Duration
	stallTimeout   time.Duration
}

func (f *kafkaTimingFlags) register(fs *flag.FlagSet) {
	f.registered = true
	d := consensus.DefaultRetryPolicy()
	fs.DurationVar(&f.errorTimeout, "error-timeout", 2*time.Second, "how long consumption from Kafka may fail before a chain is errored (Broadcast answers SERVICE_UNAVAILABLE, /healthz 503)")
	fs.DurationVar(&f.retry.ShortInterval, "retry-short-interval", d.ShortInterval, "Kafka set-up (topic, log check) is retried this often during --retry-short-total")
	fs.DurationVar(&f.retry.ShortTotal, "retry-short-total", d.ShortTotal, "how long Kafka set-up is retried every --retry-short-interval")
	fs.DurationVar(&f.retry.LongInterval, "retry-long-interval", d.LongInterval, "then, Kafka set-up is retried this often during --retry-long-total, after which the chain halts")
	fs.DurationVar(&f.retry.LongTotal, "retry-long-total", d.LongTotal, "how long Kafka set-up is retried every --retry-long-interval")
	fs.DurationVar(&f.dialTimeout, "kafka-dial-timeout", 10*time.Second, "how long a connection to a broker may take")
	fs.DurationVar(&f.requestTimeout, "kafka-request-timeout", 10*time.Second, "how long a broker may take to answer, on top of the request's own timeout (franz-go's RequestTimeoutOverhead; at least 100ms)")
	fs.DurationVar(&f.stallTimeout, "kafka-stall-timeout", consensus.DefaultStallTimeout, "how long data sent to a broker may stay unacknowledged before the connection is closed and dialled again (Linux TCP_USER_TIMEOUT; 0: the system's own)")
}

// opts returns the consenter's options, none when the flags were not
// registered (a node configured in code).
func (f *kafkaTimingFlags) opts() ([]consensus.Option, error) {
	if !f.registered {
		return nil, nil
	}
	if f.dialTimeout <= 0 || f.requestTimeout < 100*time.Millisecond {
		return nil, errors.New("--kafka-dial-timeout must be positive and --kafka-request-timeout at least 100ms")
	}
	return []consensus.Option{
		consensus.WithErrorTimeout(f.errorTimeout),
		consensus.WithRetry(f.retry),
		consensus.WithStallTimeout(f.stallTimeout),
		consensus.WithKgoOpts(kgo.DialTimeout(f.dialTimeout), kgo.RequestTimeoutOverhead(f.requestTimeout)),
	}, nil
}
