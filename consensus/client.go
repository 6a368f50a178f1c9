package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// kafkaClient is the Kafka client a Consenter's chains share: one
// producer and one consumer for every channel, so that a node keeps a few
// connections per broker however many channels it serves.
//
// A dispatcher goroutine polls fetches and hands each chain the partition
// of its topic, in order, through the chain's inbox. Where a chain's
// consumption starts (or starts again at another offset) is changed only
// by the dispatcher, between two polls: a fetch polled before the change
// goes to the inbox of before, one polled after to the inbox of after, so
// a chain never sees records of a consumption it has left.
type kafkaClient struct {
	cl     *kgo.Client
	health brokerHealth

	mu         sync.Mutex
	requests   []consumeRequest
	cancelPoll context.CancelFunc // ends the poll in progress, to apply requests

	inboxes map[string]*inbox // by topic; only the dispatcher touches it

	cancel context.CancelFunc
	done   chan struct{}
}

// consumeRequest asks the dispatcher to consume topic from offset into in,
// or, with in nil, to stop consuming topic.
type consumeRequest struct {
	topic  string
	in     *inbox
	offset int64
	done   chan struct{}
}

// newKafkaClient creates the shared client with the consenter's settings
// and starts its dispatcher. It does not connect: franz-go dials when a
// chain first needs a broker.
func newKafkaClient(cfg *settings) (*kafkaClient, error) {
	kc := &kafkaClient{inboxes: make(map[string]*inbox), done: make(chan struct{})}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.seeds...),
		kgo.ClientID(cfg.clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(cfg.linger),
		kgo.ProducerBatchMaxBytes(cfg.topic.MaxMessageBytes),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.WithHooks(&kc.health, stallHook{cfg.stall, cfg.logger}),
		// Each chain bounds what it hands the producer (WithMaxInFlight),
		// so Produce never needs to block here.
		kgo.MaxBufferedRecords(math.MaxInt32),
		kgo.WithLogger(newKgoLog(cfg.logger.With("component", "kgo"))),
	}
	if cfg.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.tls))
	}
	if len(cfg.sasl) > 0 {
		opts = append(opts, kgo.SASL(cfg.sasl...))
	}
	opts = append(opts, cfg.kgoOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("consensus: kafka client options: %w", err)
	}
	kc.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	kc.cancel = cancel
	go kc.dispatch(ctx)
	return kc, nil
}

// close stops the dispatcher and closes the client.
func (kc *kafkaClient) close() {
	kc.cancel()
	<-kc.done
	kc.cl.Close()
}

// consume makes the dispatcher consume topic from offset into in (a fresh
// inbox for each start), and returns once it does.
func (kc *kafkaClient) consume(topic string, in *inbox, offset int64) {
	kc.request(consumeRequest{topic: topic, in: in, offset: offset})
}

// stop makes the dispatcher stop consuming topic, and returns once it has.
func (kc *kafkaClient) stop(topic string) { kc.request(consumeRequest{topic: topic}) }

func (kc *kafkaClient) request(r consumeRequest) {
	r.done = make(chan struct{})
	kc.mu.Lock()
	kc.requests = append(kc.requests, r)
	if kc.cancelPoll != nil {
		kc.cancelPoll()
	}
	kc.mu.Unlock()
	select {
	case <-r.done:
	case <-kc.done:
	}
}

// dispatch polls fetches until ctx ends and hands each topic's partition
// to its inbox, applying consume requests between polls.
func (kc *kafkaClient) dispatch(ctx context.Context) {
	defer close(kc.done)
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithCancel(ctx)
		kc.mu.Lock()
		requests := kc.requests
		kc.requests = nil
		if len(requests) == 0 {
			kc.cancelPoll = cancel
		}
		kc.mu.Unlock()
		if len(requests) > 0 {
			cancel()
			kc.apply(requests)
			continue
		}
		fs := kc.cl.PollFetches(pollCtx)
		kc.mu.Lock()
		kc.cancelPoll = nil
		kc.mu.Unlock()
		cancel()
		if fs.IsClientClosed() {
			return
		}
		fs.EachTopic(func(t kgo.FetchTopic) {
			in := kc.inboxes[t.Topic]
			if in == nil {
				return // not consumed any more
			}
			for _, p := range t.Partitions {
				if errors.Is(p.Err, context.Canceled) {
					continue // our own poll cancellation
				}
				in.push(kc.cl, delivery{topic: t.Topic, topicID: t.TopicID, part: p})
			}
		})
	}
}

// apply carries out consume requests, in order.
func (kc *kafkaClient) apply(requests []consumeRequest) {
	for _, r := range requests {
		if _, ok := kc.inboxes[r.topic]; ok {
			kc.cl.RemoveConsumePartitions(map[string][]int32{r.topic: {0}})
			kc.cl.ResumeFetchTopics(r.topic)
			kc.cl.ResumeFetchPartitions(map[string][]int32{r.topic: {0}})
			delete(kc.inboxes, r.topic)
		}
		if r.in != nil {
			kc.inboxes[r.topic] = r.in
			kc.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: {0: kgo.NewOffset().At(r.offset)}})
		}
		close(r.done)
	}
}

// pause stops fetching topic without moving its consumption: a resumed
// topic goes on where it stopped.
func (kc *kafkaClient) pause(topic string) {
	kc.cl.PauseFetchPartitions(map[string][]int32{topic: {0}})
}

// resume undoes pause.
func (kc *kafkaClient) resume(topic string) {
	kc.cl.ResumeFetchPartitions(map[string][]int32{topic: {0}})
}

// delivery is one partition of a fetch, for the chain of its topic.
type delivery struct {
	topic   string
	topicID [16]byte
	part    kgo.FetchPartition
}

// inboxSize is how many deliveries a chain's inbox holds before the
// dispatcher pauses the chain's topic.
const inboxSize = 16

// inbox hands a chain its deliveries in order without ever blocking the
// dispatcher, so that a slow chain (a ledger waiting on its disk) does not
// hold up the others: when the channel is full, the dispatcher pauses the
// chain's topic and parks what it still receives for it; the chain takes
// the parked deliveries once it has drained the channel, and resumes the
// topic. What is parked is bounded by what the client had buffered for the
// topic when it was paused.
type inbox struct {
	c chan delivery

	mu     sync.Mutex
	paused bool
	parked []delivery
}

func newInbox() *inbox { return &inbox{c: make(chan delivery, inboxSize)} }

// push queues d, pausing its topic when the chain falls behind.
func (in *inbox) push(cl *kgo.Client, d delivery) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.paused {
		select {
		case in.c <- d:
			return
		default:
			in.paused = true
			cl.PauseFetchTopics(d.topic)
		}
	}
	in.parked = append(in.parked, d)
}

// takeParked returns the parked deliveries, which follow everything in the
// channel, once the chain has drained the channel, and resumes the topic;
// nil otherwise.
func (in *inbox) takeParked(cl *kgo.Client, topic string) []delivery {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.paused || len(in.c) > 0 {
		return nil
	}
	parked := in.parked
	in.parked, in.paused = nil, false
	cl.ResumeFetchTopics(topic)
	return parked
}

// kgoLog is the Kafka client's logger: franz-go's kslog, with warnings
// and errors rate-limited by message as the chain's own (a broker that is
// down makes franz-go warn at every dial).
type kgoLog struct {
	*kslog.Logger
	quiet *quietLog
}

func newKgoLog(l *slog.Logger) kgoLog { return kgoLog{kslog.New(l), newQuietLog(l)} }

// KafkaLogger returns the logger a Consenter gives its Kafka client:
// franz-go's messages through l, warnings and errors rate-limited by
// message (the first logged, then at most one a period with a count). Use
// it to give the client a logger of its own (WithKgoOpts(kgo.WithLogger(
// KafkaLogger(l)))), for example at another level.
func KafkaLogger(l *slog.Logger) kgo.Logger { return newKgoLog(l) }

// Log logs debug and info messages as kslog does, and warnings and errors
// through the rate limit.
func (l kgoLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.quiet.Log(slog.LevelError, msg, msg, keyvals...)
	case kgo.LogLevelWarn:
		l.quiet.Log(slog.LevelWarn, msg, msg, keyvals...)
	default:
		l.Logger.Log(level, msg, keyvals...)
	}
}
