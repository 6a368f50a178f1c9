package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Signer signs blocks on behalf of a node: msp.SigningIdentity satisfies
// it.
type Signer = protoutil.Signer

// RetryPolicy is how a chain retries its Kafka set-up (topic, producer,
// consumer), as Fabric's Kafka.Retry settings: every ShortInterval until
// ShortTotal has passed, then every LongInterval until LongTotal has passed,
// then the chain halts.
type RetryPolicy struct {
	ShortInterval time.Duration
	ShortTotal    time.Duration
	LongInterval  time.Duration
	LongTotal     time.Duration
}

// DefaultRetryPolicy retries every second for a minute, then every 10
// seconds for an hour.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{ShortInterval: time.Second, ShortTotal: time.Minute, LongInterval: 10 * time.Second, LongTotal: time.Hour}
}

func (p RetryPolicy) validate() error {
	if p.ShortInterval <= 0 || p.LongInterval <= 0 || p.ShortTotal < 0 || p.LongTotal < 0 {
		return fmt.Errorf("retry policy %+v: intervals must be positive and totals not negative", p)
	}
	return nil
}

// next returns how long to wait before the next attempt, given how long
// the attempts have lasted, or false when time is up.
func (p RetryPolicy) next(elapsed time.Duration) (time.Duration, bool) {
	switch {
	case elapsed < p.ShortTotal:
		return p.ShortInterval, true
	case elapsed < p.ShortTotal+p.LongTotal:
		return p.LongInterval, true
	default:
		return 0, false
	}
}

type settings struct {
	seeds        []string
	tls          *tls.Config
	sasl         []sasl.Mechanism
	clientID     string
	retry        RetryPolicy
	topic        TopicSettings
	strictTopic  bool
	errorTimeout time.Duration
	maxInFlight  int
	linger       time.Duration
	stall        time.Duration
	logger       *slog.Logger
	meters       metric.MeterProvider
	tracers      trace.TracerProvider
	signer       Signer
	parser       ConfigParser
	kgoOpts      []kgo.Opt
	sources      []BlockSource
	verifier     func(ChannelConfig, *cb.Block) error
	validateAll  bool
}

func defaultSettings() settings {
	return settings{
		clientID:     "kafkaconsensus",
		retry:        DefaultRetryPolicy(),
		topic:        DefaultTopicSettings(),
		errorTimeout: 2 * time.Second,
		maxInFlight:  10000,
		linger:       0,
		stall:        DefaultStallTimeout,
		parser:       DefaultConfigParser(),
	}
}

// coreOpts are the options the chains' cores are made with.
func (c *settings) coreOpts() []CoreOption {
	if c.validateAll {
		return []CoreOption{ValidateEveryEnvelope()}
	}
	return nil
}

func (c *settings) validate() error {
	var errs []error
	if len(c.seeds) == 0 {
		errs = append(errs, errors.New("no seed brokers (use WithSeedBrokers)"))
	}
	if err := c.retry.validate(); err != nil {
		errs = append(errs, err)
	}
	c.topic = c.topic.withDefaults()
	if err := c.topic.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.maxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max in flight %d: must be at least 1", c.maxInFlight))
	}
	if c.errorTimeout < 0 || c.linger < 0 || c.stall < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.stall > maxStallTimeout {
		errs = append(errs, fmt.Errorf("stall timeout %v: must be at most %v", c.stall, maxStallTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("consensus: invalid options: %w", errors.Join(errs...))
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.meters == nil {
		c.meters = otel.GetMeterProvider()
	}
	if c.tracers == nil {
		c.tracers = otel.GetTracerProvider()
	}
	return nil
}

// Option configures a Consenter.
type Option func(*settings)

// WithSeedBrokers sets the Kafka brokers to bootstrap from ("host:port").
func WithSeedBrokers(addrs ...string) Option { return func(c *settings) { c.seeds = addrs } }

// WithTLS connects to Kafka over TLS.
func WithTLS(cfg *tls.Config) Option { return func(c *settings) { c.tls = cfg } }

// WithSASL authenticates to Kafka with the given mechanisms (see
// github.com/twmb/franz-go/pkg/sasl).
func WithSASL(m ...sasl.Mechanism) Option { return func(c *settings) { c.sasl = m } }

// WithClientID sets the Kafka client ID (default "kafkaconsensus").
func WithClientID(id string) Option { return func(c *settings) { c.clientID = id } }

// WithRetry sets how Kafka set-up is retried (default DefaultRetryPolicy).
func WithRetry(p RetryPolicy) Option { return func(c *settings) { c.retry = p } }

// WithTopicSettings sets the settings channel topics are created with and
// checked against (default DefaultTopicSettings; zero fields take their
// default). MaxMessageBytes is also the producer's batch limit.
func WithTopicSettings(s TopicSettings) Option { return func(c *settings) { c.topic = s } }

// WithStrictTopic makes a chain refuse to start on an existing topic with
// unsafe settings, instead of logging them.
func WithStrictTopic() Option { return func(c *settings) { c.strictTopic = true } }

// WithErrorTimeout sets how long consumption may fail before the chain
// reports itself errored (default 2s; 0 reports at the first error).
func WithErrorTimeout(d time.Duration) Option { return func(c *settings) { c.errorTimeout = d } }

// WithMaxInFlight bounds, per chain, the envelopes handed to Kafka and not
// yet acknowledged (default 10,000). Order and OrderAsync wait for room,
// on their caller's context, when the bound is reached.
func WithMaxInFlight(n int) Option { return func(c *settings) { c.maxInFlight = n } }

// WithProduceLinger sets how long the producer waits to fill a batch
// (default 0). With no linger a lone envelope goes out at once, and under
// load batches still form: while the producer has requests in flight to a
// broker (up to 5 with idempotence), the envelopes that arrive wait for the
// next request. A linger trades latency at light load for fewer, larger
// requests (less CPU per envelope) under moderate load.
func WithProduceLinger(d time.Duration) Option { return func(c *settings) { c.linger = d } }

// DefaultStallTimeout is the default of WithStallTimeout: the 10s
// Fabric's Kafka client (sarama) waits on a write to a broker.
const DefaultStallTimeout = 10 * time.Second

// maxStallTimeout is the largest stall timeout the socket option holds
// (milliseconds in a C int).
const maxStallTimeout = math.MaxInt32 * time.Millisecond

// WithStallTimeout sets how long data sent to a broker may stay
// unacknowledged by the broker's host before the connection is closed
// (default DefaultStallTimeout; 0 leaves the operating system's default,
// about 15 minutes on Linux). Behind a network partition, a connection
// with a request in flight stalls rather than fails: TCP retransmits with
// a backoff that doubles while the link is down, so after the link heals
// the request waits for the next retransmission, or for its own deadline
// (franz-go's ProduceRequestTimeout, 10s, plus RequestTimeoutOverhead),
// before anything it carries is acknowledged. Closed at the stall timeout,
// the connection is dialled again, and the request retried on the new
// one (the producer is idempotent: nothing is written twice). A healthy
// broker's host acknowledges within a round trip, however busy the
// broker, so the timeout need only exceed the network's worst round trip
// and the retransmissions it allows. It is Linux's TCP_USER_TIMEOUT, set
// on every connection to a broker once it is open; on other systems the
// option does nothing.
func WithStallTimeout(d time.Duration) Option { return func(c *settings) { c.stall = d } }

// WithLogger sets the logger; nil, like the default, means
// slog.Default(). The Kafka client logs through it too (franz-go's kslog),
// at the levels it enables.
func WithLogger(l *slog.Logger) Option { return func(c *settings) { c.logger = l } }

// WithMeterProvider sets the OpenTelemetry meter provider (default the
// global one).
func WithMeterProvider(p metric.MeterProvider) Option { return func(c *settings) { c.meters = p } }

// WithTracerProvider sets the OpenTelemetry tracer provider (default the
// global one).
func WithTracerProvider(p trace.TracerProvider) Option { return func(c *settings) { c.tracers = p } }

// WithSigner makes the node sign every block it writes (SIGNATURES
// metadata). Without it blocks are not signed.
func WithSigner(s Signer) Option { return func(c *settings) { c.signer = s } }

// WithConfigParser sets how channel configurations are read from config
// blocks; it is the validation hook (see ChannelConfig). The default is
// DefaultConfigParser(): Fabric's config tree or this project's own format,
// as the genesis block holds.
func WithConfigParser(p ConfigParser) Option { return func(c *settings) { c.parser = p } }

// WithBlockSources gives the chains other nodes to catch up from when
// their log no longer holds records they need (see BlockSource), tried in
// order. Without sources, such a chain halts with ErrRecordsMissing.
func WithBlockSources(srcs ...BlockSource) Option {
	return func(c *settings) { c.sources = append(c.sources, srcs...) }
}

// WithBlockVerifier replaces how the signatures of a block pulled from a
// BlockSource are verified (by default, the configuration's BlockVerifier:
// one valid signature of an orderer organisation's member). verify gets
// the configuration in force before the block; the block's number, hashes
// and metadata are checked whatever it does.
func WithBlockVerifier(verify func(cfg ChannelConfig, b *cb.Block) error) Option {
	return func(c *settings) { c.verifier = verify }
}

// WithEnvelopeValidation makes every node validate each normal envelope it
// consumes against the configuration in force at that point of the log
// (signature, Writers policy), and skip invalid ones identically (see
// ValidateEveryEnvelope), instead of trusting the node that produced it.
// Off by default: Kafka ACLs that let only orderers write to channel
// topics make it unnecessary. Its cost is one validation per envelope on
// every node: with the default configuration, a signature verification and
// a policy evaluation, about 115 µs of CPU per envelope per node on a 2-core
// machine (measured with examples/bench -validate-all, 3 nodes in one
// process, signed 1 KiB envelopes, pipelined: 360 µs of CPU per envelope
// against 14 µs without, and 5.4k envelopes/s against 130k). A node then
// validates at most about 9,000 envelopes a second per core.
func WithEnvelopeValidation() Option { return func(c *settings) { c.validateAll = true } }

// WithKgoOpts adds franz-go client options, after the chain's own (for
// example kgo.WithHooks for kotel or kslog).
func WithKgoOpts(opts ...kgo.Opt) Option {
	return func(c *settings) { c.kgoOpts = append(c.kgoOpts, opts...) }
}
