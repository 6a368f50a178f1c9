package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file is the chain's Kafka IO outside the steady loop: set-up (client,
// topic, Connect record) and reading what a log check needs (topic ID,
// offsets, the fingerprinted record), without producing anything.

// kafkaTimeout bounds each request of set-up and of a log check.
const kafkaTimeout = 10 * time.Second

// setUp makes sure the topic exists, retrying as the retry policy says.
func (ch *Chain) setUp() error {
	return ch.retry(step{"ensure topic", ch.ensureTopic})
}

// step is one step of retry.
type step struct {
	name string
	do   func() error
}

// retry runs steps in order, retrying a failing one as the retry policy
// says, until it succeeds, fails permanently or time is up.
func (ch *Chain) retry(steps ...step) error {
	start := time.Now()
	for _, st := range steps {
		for attempt := 1; ; attempt++ {
			err := st.do()
			if err == nil {
				break
			}
			var perm *permanentError
			if errors.As(err, &perm) {
				return perm.err
			}
			wait, ok := ch.cfg.retry.next(time.Since(start))
			if !ok {
				return fmt.Errorf("%s: giving up after %v: %w", st.name, time.Since(start).Round(time.Millisecond), err)
			}
			ch.quiet.Log(logWarn, "setup", "kafka set-up step failed, retrying", "step", st.name, "attempt", attempt, "in", wait, "err", err)
			cause := fmt.Errorf("%s: %w", st.name, err)
			ch.setState(func(s *state) { s.cause = cause })
			select {
			case <-time.After(wait):
			case <-ch.ctx.Done():
				return ch.ctx.Err()
			}
		}
	}
	ch.quiet.Reset("setup")
	ch.setState(func(s *state) { s.cause = nil })
	return nil
}

// permanentError is a set-up failure that retrying cannot mend.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (ch *Chain) ensureTopic() error {
	ctx, cancel := context.WithTimeout(ch.ctx, kafkaTimeout)
	defer cancel()
	created, err := EnsureTopic(ctx, kadm.NewClient(ch.kc.cl), ch.topic, ch.cfg.topic)
	var unsafe *UnsafeTopicError
	if errors.As(err, &unsafe) {
		if n := unsafe.maxMessageBytes(); n > 0 && n < ch.maxRecordBytes.Load() {
			ch.maxRecordBytes.Store(n)
		}
	}
	switch {
	case errors.As(err, &unsafe) && !ch.cfg.strictTopic:
		ch.log.Warn("topic has unsafe settings", "err", err)
	case errors.As(err, &unsafe):
		return &permanentError{err}
	case err != nil:
		return err
	case created:
		ch.log.Info("topic created", "topic", ch.topic)
	}
	return nil
}

// postConnect produces a Connect record: it proves, once the log is
// trusted, that the node may write to it.
func (ch *Chain) postConnect() error {
	ctx, cancel := context.WithTimeout(ch.ctx, kafkaTimeout)
	defer cancel()
	rec := &kgo.Record{Topic: ch.topic, Partition: 0, Key: recordKey, Value: connectMessage}
	return ch.kc.cl.ProduceSync(ctx, rec).FirstErr()
}

// errNoPartition reports a topic whose partition 0 has no leader now.
var errNoPartition = errors.New("partition 0 has no leader")

// readLog reads what Core.CheckLog needs of the partition: the topic ID,
// the log start and end offsets, and the record at fingerprint (when it is
// not negative and lies between them). It only reads.
func readLog(ctx context.Context, cl *kgo.Client, topic string, fingerprint int64) (LogView, error) {
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return LogView{}, err
	}
	td, ok := md.Topics[topic]
	switch {
	case !ok:
		return LogView{}, fmt.Errorf("topic %s: not in the metadata", topic)
	case td.Err != nil:
		return LogView{}, fmt.Errorf("topic %s: %w", topic, td.Err)
	}
	p, ok := td.Partitions[0]
	if !ok || p.Err != nil || p.Leader < 0 {
		return LogView{}, fmt.Errorf("topic %s: %w", topic, errors.Join(errNoPartition, p.Err))
	}
	var v LogView
	if td.ID != (kadm.TopicID{}) {
		v.TopicID = td.ID[:]
	}
	if v.Start, err = listOffset(ctx, adm.ListStartOffsets, topic); err != nil {
		return LogView{}, err
	}
	if v.End, err = listOffset(ctx, adm.ListEndOffsets, topic); err != nil {
		return LogView{}, err
	}
	if fingerprint >= 0 && fingerprint >= v.Start && fingerprint < v.End {
		r, err := fetchRecord(ctx, cl.Broker(int(p.Leader)), topic, td.ID, fingerprint)
		if err != nil {
			return LogView{}, fmt.Errorf("reading record %d: %w", fingerprint, err)
		}
		v.Fingerprinted = r
	}
	return v, nil
}

func listOffset(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) (int64, error) {
	offs, err := list(ctx, topic)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(topic, 0)
	switch {
	case !ok:
		return 0, fmt.Errorf("topic %s: no offsets for partition 0", topic)
	case o.Err != nil:
		return 0, fmt.Errorf("topic %s: listing offsets: %w", topic, o.Err)
	}
	return o.Offset, nil
}

// fetchRecord fetches, from the partition's leader, the first record at or
// after offset: nil when the answer holds none.
func fetchRecord(ctx context.Context, leader *kgo.Broker, topic string, id [16]byte, offset int64) (*Record, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = 64 << 20
	t := kmsg.NewFetchRequestTopic()
	t.Topic, t.TopicID = topic, id
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition, p.FetchOffset, p.PartitionMaxBytes = 0, offset, 64<<20
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, leader)
	if err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, errors.New("fetch answered without the partition")
	}
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic, Partition: 0, Offset: offset},
		&resp.Topics[0].Partitions[0], kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return nil, fp.Err
	}
	for _, r := range fp.Records {
		if r.Offset >= offset {
			return &Record{Offset: r.Offset, LeaderEpoch: r.LeaderEpoch, Value: r.Value}, nil
		}
	}
	return nil, nil
}
