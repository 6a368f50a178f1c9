package consensus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Topic configuration keys EnsureTopic sets and checks.
const (
	configMinInsyncReplicas = "min.insync.replicas"
	configUncleanElection   = "unclean.leader.election.enable"
	configRetentionMs       = "retention.ms"
	configRetentionBytes    = "retention.bytes"
	configCleanupPolicy     = "cleanup.policy"
	configMaxMessageBytes   = "max.message.bytes"
)

// MaxTopicNameLen is the longest topic name Kafka accepts.
const MaxTopicNameLen = 249

var (
	// ErrUnsafeTopic is wrapped by the *UnsafeTopicError EnsureTopic
	// returns for an existing topic whose settings could lose or reorder
	// records.
	ErrUnsafeTopic = errors.New("consensus: unsafe topic settings")

	// ErrInvalidTopicName is wrapped by the errors of ValidTopicName.
	ErrInvalidTopicName = errors.New("consensus: invalid topic name")
)

// TopicSettings are the settings a channel's topic is created with and
// checked against. Whatever the settings, EnsureTopic always requires
// retention.ms=-1 and retention.bytes=-1 (an ordering node that falls behind
// must still find every record), cleanup.policy=delete (no compaction) and
// unclean.leader.election.enable=false (no acknowledged record may be lost
// to a leader that was not in sync).
type TopicSettings struct {
	// ReplicationFactor is the number of replicas of the topic's
	// partition. Zero means 3.
	ReplicationFactor int16

	// MinInsyncReplicas is the topic's min.insync.replicas: how many
	// replicas must have a record before a write with acks=all succeeds.
	// It must not exceed ReplicationFactor. Zero means 2.
	MinInsyncReplicas int

	// MaxMessageBytes is the topic's max.message.bytes: the largest record
	// batch a broker accepts, and so the producer's batch limit and the
	// largest envelope (plus about 100 bytes of framing) that can be
	// ordered. Keep it above every channel's AbsoluteMaxBytes. Zero means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int32
}

// DefaultMaxMessageBytes is the default TopicSettings.MaxMessageBytes:
// 16 MiB, well above Kafka's 1 MB default, which would refuse envelopes
// that Fabric's default AbsoluteMaxBytes (10 MB) allows.
const DefaultMaxMessageBytes = 16 << 20

// DefaultTopicSettings returns the settings for a production cluster:
// replication factor 3 and min.insync.replicas 2, so that one broker can fail
// without losing an acknowledged record or stopping writes.
func DefaultTopicSettings() TopicSettings {
	return TopicSettings{ReplicationFactor: 3, MinInsyncReplicas: 2, MaxMessageBytes: DefaultMaxMessageBytes}
}

func (s TopicSettings) withDefaults() TopicSettings {
	d := DefaultTopicSettings()
	if s.ReplicationFactor == 0 {
		s.ReplicationFactor = d.ReplicationFactor
	}
	if s.MinInsyncReplicas == 0 {
		s.MinInsyncReplicas = d.MinInsyncReplicas
	}
	if s.MaxMessageBytes == 0 {
		s.MaxMessageBytes = d.MaxMessageBytes
	}
	return s
}

func (s TopicSettings) validate() error {
	switch {
	case s.ReplicationFactor < 1:
		return fmt.Errorf("consensus: topic replication factor %d: must be at least 1", s.ReplicationFactor)
	case s.MinInsyncReplicas < 1:
		return fmt.Errorf("consensus: topic min.insync.replicas %d: must be at least 1", s.MinInsyncReplicas)
	case s.MaxMessageBytes < 1<<10:
		return fmt.Errorf("consensus: topic max.message.bytes %d: must be at least 1 KiB", s.MaxMessageBytes)
	case s.MinInsyncReplicas > int(s.ReplicationFactor):
		return fmt.Errorf("consensus: topic min.insync.replicas %d exceeds replication factor %d: every write with acks=all would fail",
			s.MinInsyncReplicas, s.ReplicationFactor)
	}
	return nil
}

// configs returns the topic configs a new topic is created with.
func (s TopicSettings) configs() map[string]*string {
	return map[string]*string{
		configMinInsyncReplicas: kadm.StringPtr(strconv.Itoa(s.MinInsyncReplicas)),
		configUncleanElection:   kadm.StringPtr("false"),
		configRetentionMs:       kadm.StringPtr("-1"),
		configRetentionBytes:    kadm.StringPtr("-1"),
		configCleanupPolicy:     kadm.StringPtr("delete"),
		configMaxMessageBytes:   kadm.StringPtr(strconv.Itoa(int(s.MaxMessageBytes))),
	}
}

// TopicProblem is one unsafe setting of an existing topic.
type TopicProblem struct {
	Setting string // "replication.factor" or the topic config key
	Got     string // the topic's value
	Want    string // what is required, such as "-1" or ">= 3"
}

// String returns the problem as "setting is got, want want".
func (p TopicProblem) String() string {
	return fmt.Sprintf("%s is %s, want %s", p.Setting, p.Got, p.Want)
}

// UnsafeTopicError reports an existing topic whose settings do not give the
// guarantees the ordering protocol relies on. It unwraps to ErrUnsafeTopic.
//
// The topic is still usable, so a caller may log the error and carry on:
// a chain does so unless it is configured to be strict. Inspect it with
// errors.As.
type UnsafeTopicError struct {
	Topic    string
	Problems []TopicProblem
}

// Error lists every problem.
func (e *UnsafeTopicError) Error() string {
	ps := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		ps[i] = p.String()
	}
	return fmt.Sprintf("consensus: topic %q has unsafe settings: %s", e.Topic, strings.Join(ps, "; "))
}

// maxMessageBytes returns the topic's max.message.bytes when it is one of
// the problems (smaller than required), or 0.
func (e *UnsafeTopicError) maxMessageBytes() int64 {
	for _, p := range e.Problems {
		if p.Setting == configMaxMessageBytes {
			if n, err := strconv.ParseInt(p.Got, 10, 64); err == nil {
				return n
			}
		}
	}
	return 0
}

// Unwrap returns ErrUnsafeTopic.
func (e *UnsafeTopicError) Unwrap() error { return ErrUnsafeTopic }

// ValidTopicName returns nil if name is a legal Kafka topic name: 1 to
// MaxTopicNameLen characters from [a-zA-Z0-9._-], and neither "." nor "..".
// The error wraps ErrInvalidTopicName. Note that Kafka treats '.' and '_' as
// the same character when it checks for colliding topic names.
func ValidTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w %q: reserved", ErrInvalidTopicName, name)
	case len(name) > MaxTopicNameLen:
		return fmt.Errorf("%w %.20q...: %d characters, at most %d allowed", ErrInvalidTopicName, name, len(name), MaxTopicNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("%w %q: illegal character %q at byte %d (allowed: a-z A-Z 0-9 . _ -)", ErrInvalidTopicName, name, rune(c), i)
	}
	return nil
}

// EnsureTopic makes sure topic exists with settings s (zero fields take
// their DefaultTopicSettings value).
//
// A missing topic is created with one partition, replication factor
// s.ReplicationFactor and the configs min.insync.replicas,
// unclean.leader.election.enable=false, retention.ms=-1, retention.bytes=-1,
// cleanup.policy=delete and max.message.bytes; created is then true. If another node creates
// it at the same time (TOPIC_ALREADY_EXISTS), the topic is checked as an
// existing one.
//
// An existing topic is checked: it must have partition 0, at least
// s.ReplicationFactor replicas, min.insync.replicas between
// s.MinInsyncReplicas and its replication factor, max.message.bytes at
// least s.MaxMessageBytes, and the configs above. A
// topic failing any of these checks is reported as an *UnsafeTopicError
// (wrapping ErrUnsafeTopic) listing every problem, with created false. The
// topic can still be used: the caller decides whether to stop or to log and
// continue. Configs the broker does not report are not checked.
//
// Any other error means the topic could not be created or checked: an
// invalid name (ErrInvalidTopicName), invalid settings, a replication factor
// larger than the number of brokers (wrapping
// kerr.InvalidReplicationFactor), authorization or connection failures.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, s TopicSettings) (created bool, err error) {
	if err := ValidTopicName(topic); err != nil {
		return false, err
	}
	s = s.withDefaults()
	if err := s.validate(); err != nil {
		return false, err
	}

	meta, td, exists, err := describeTopic(ctx, adm, topic)
	if err != nil {
		return false, err
	}
	if exists {
		return false, checkTopic(ctx, adm, td, s)
	}

	resp, err := adm.CreateTopic(ctx, 1, s.ReplicationFactor, s.configs(), topic)
	switch {
	case err == nil:
		// Our look-up left the topic cached as missing in the client
		// that adm wraps; refresh it for the caller's next kadm calls.
		// A broker that has not yet learnt of the topic answers as
		// before, which is harmless.
		_, _, _, _ = describeTopic(ctx, adm, topic)
		return true, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, checkCreatedElsewhere(ctx, adm, topic, s)
	case errors.Is(err, kerr.InvalidReplicationFactor):
		return false, fmt.Errorf("consensus: creating topic %q: replication factor %d needs at least %d brokers, the cluster has %d: %w",
			topic, s.ReplicationFactor, s.ReplicationFactor, len(meta.Brokers), err)
	case resp.ErrMessage != "":
		return false, fmt.Errorf("consensus: creating topic %q: %w: %s", topic, err, resp.ErrMessage)
	default:
		return false, fmt.Errorf("consensus: creating topic %q: %w", topic, err)
	}
}

// describeTopic reads the cluster's metadata for topic, bypassing the kgo
// client's metadata cache (which could still hold the topic as missing) by
// asking for authorized operations, which kadm always requests directly.
func describeTopic(ctx context.Context, adm *kadm.Client, topic string) (kadm.Metadata, kadm.TopicDetail, bool, error) {
	meta, err := adm.Metadata(kadm.WithAuthorizedOps(ctx), topic)
	if err != nil {
		return meta, kadm.TopicDetail{}, false, fmt.Errorf("consensus: reading metadata of topic %q: %w", topic, err)
	}
	td, ok := meta.Topics[topic]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return meta, td, false, nil
	case td.Err != nil && !errors.Is(td.Err, kerr.LeaderNotAvailable):
		return meta, td, false, fmt.Errorf("consensus: reading metadata of topic %q: %w", topic, td.Err)
	}
	return meta, td, true, nil
}

// checkCreatedElsewhere checks a topic that another node has just created;
// the broker answering metadata may learn of it a moment later.
func checkCreatedElsewhere(ctx context.Context, adm *kadm.Client, topic string, s TopicSettings) error {
	const tries, wait = 20, 100 * time.Millisecond
	for i := 0; ; i++ {
		_, td, exists, err := describeTopic(ctx, adm, topic)
		if err != nil {
			return err
		}
		if exists {
			return checkTopic(ctx, adm, td, s)
		}
		if i == tries {
			return fmt.Errorf("consensus: topic %q already exists but the cluster's metadata does not show it", topic)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensus: waiting for metadata of topic %q: %w", topic, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// checkTopic compares an existing topic's replicas and configs with s.
func checkTopic(ctx context.Context, adm *kadm.Client, td kadm.TopicDetail, s TopicSettings) error {
	topic := td.Topic
	p0, ok := td.Partitions[0]
	if !ok {
		return fmt.Errorf("consensus: topic %q exists but has no partition 0", topic)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("consensus: reading configs of topic %q: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("consensus: reading configs of topic %q: %w", topic, err)
	}
	configs := make(map[string]string, len(rc.Configs))
	for _, c := range rc.Configs {
		if c.Value != nil {
			configs[c.Key] = *c.Value
		}
	}

	var problems []TopicProblem
	add := func(setting, got, want string) {
		problems = append(problems, TopicProblem{Setting: setting, Got: got, Want: want})
	}

	rf := len(p0.Replicas)
	if rf < int(s.ReplicationFactor) {
		add("replication.factor", strconv.Itoa(rf), ">= "+strconv.Itoa(int(s.ReplicationFactor)))
	}
	if v, ok := configs[configMinInsyncReplicas]; ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < s.MinInsyncReplicas:
			add(configMinInsyncReplicas, v, ">= "+strconv.Itoa(s.MinInsyncReplicas))
		case n > rf:
			add(configMinInsyncReplicas, v, "<= replication factor "+strconv.Itoa(rf))
		}
	}
	// Kafka has defaulted unclean.leader.election.enable to false since
	// 0.11; only a topic or broker that turns it on is unsafe.
	if v, ok := configs[configUncleanElection]; ok && !strings.EqualFold(v, "false") {
		add(configUncleanElection, v, "false")
	}
	if v, ok := configs[configRetentionMs]; ok && v != "-1" {
		add(configRetentionMs, v, "-1")
	}
	if v, ok := configs[configRetentionBytes]; ok && v != "-1" {
		add(configRetentionBytes, v, "-1")
	}
	if v, ok := configs[configCleanupPolicy]; ok && strings.Contains(v, "compact") {
		add(configCleanupPolicy, v, "delete")
	}
	// A smaller limit makes the broker refuse large batches: envelopes the
	// channel allows would fail to be ordered (never lost: Order errs).
	if v, ok := configs[configMaxMessageBytes]; ok {
		if n, err := strconv.Atoi(v); err != nil || n < int(s.MaxMessageBytes) {
			add(configMaxMessageBytes, v, ">= "+strconv.Itoa(int(s.MaxMessageBytes)))
		}
	}
	if len(problems) > 0 {
		return &UnsafeTopicError{Topic: topic, Problems: problems}
	}
	return nil
}
