package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

// topicEnv starts a three-broker Kafka and an admin client on it. It checks
// for leaked goroutines once the test's other cleanups have run (the
// package has no TestMain of its own).
func topicEnv(t *testing.T) (*consensustest.Kafka, *kadm.Client, context.Context) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // registered first, runs last
	k, err := consensustest.StartKafka(consensustest.WithBrokers(3))
	require.NoError(t, err)
	t.Cleanup(k.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return k, kadm.NewClient(cl), ctx
}

func topicConfigs(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) map[string]string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	require.NoError(t, err)
	rc, err := rcs.On(topic, nil)
	require.NoError(t, err)
	require.NoError(t, rc.Err)
	m := make(map[string]string)
	for _, c := range rc.Configs {
		m[c.Key] = c.MaybeValue()
	}
	return m
}

func TestEnsureTopicCreatesAndIsIdempotent(t *testing.T) {
	_, adm, ctx := topicEnv(t)

	created, err := consensus.EnsureTopic(ctx, adm, "mychannel", consensus.DefaultTopicSettings())
	require.NoError(t, err)
	require.True(t, created)

	tds, err := adm.ListTopics(ctx, "mychannel")
	require.NoError(t, err)
	td := tds["mychannel"]
	require.NoError(t, td.Err)
	require.Len(t, td.Partitions, 1)
	require.Len(t, td.Partitions[0].Replicas, 3)

	cfg := topicConfigs(t, ctx, adm, "mychannel")
	require.Equal(t, "2", cfg["min.insync.replicas"])
	require.Equal(t, "-1", cfg["retention.ms"])
	require.Equal(t, "-1", cfg["retention.bytes"])
	require.Equal(t, "delete", cfg["cleanup.policy"])
	// kfake keeps configs it does not know as given at creation and
	// reports them back; a real Kafka knows this one.
	require.Equal(t, "false", cfg["unclean.leader.election.enable"])

	created, err = consensus.EnsureTopic(ctx, adm, "mychannel", consensus.DefaultTopicSettings())
	require.NoError(t, err)
	require.False(t, created)

	// Zero settings mean the defaults.
	created, err = consensus.EnsureTopic(ctx, adm, "mychannel", consensus.TopicSettings{})
	require.NoError(t, err)
	require.False(t, created)
}

func TestEnsureTopicUnsafeExisting(t *testing.T) {
	_, adm, ctx := topicEnv(t)
	_, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"retention.ms":                   kadm.StringPtr("1000"),
		"unclean.leader.election.enable": kadm.StringPtr("true"),
		"min.insync.replicas":            kadm.StringPtr("1"),
	}, "unsafe")
	require.NoError(t, err)

	created, err := consensus.EnsureTopic(ctx, adm, "unsafe", consensus.DefaultTopicSettings())
	require.False(t, created)
	require.ErrorIs(t, err, consensus.ErrUnsafeTopic)
	var ue *consensus.UnsafeTopicError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "unsafe", ue.Topic)
	require.ElementsMatch(t, []consensus.TopicProblem{
		{Setting: "replication.factor", Got: "1", Want: ">= 3"},
		{Setting: "min.insync.replicas", Got: "1", Want: ">= 2"},
		{Setting: "unclean.leader.election.enable", Got: "true", Want: "false"},
		{Setting: "retention.ms", Got: "1000", Want: "-1"},
		{Setting: "max.message.bytes", Got: "1048588", Want: ">= 16777216"}, // kfake's default, Kafka's too
	}, ue.Problems)
	require.Contains(t, err.Error(), `topic "unsafe" has unsafe settings`)
	require.Contains(t, err.Error(), "retention.ms is 1000, want -1")

	// The same topic is fine for a single-replica development setting,
	// apart from its configs.
	_, err = consensus.EnsureTopic(ctx, adm, "unsafe", consensus.TopicSettings{ReplicationFactor: 1, MinInsyncReplicas: 1, MaxMessageBytes: 1 << 20})
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Problems, 2)
}

func TestEnsureTopicMinInsyncAboveReplicas(t *testing.T) {
	_, adm, ctx := topicEnv(t)
	_, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{
		"retention.ms":        kadm.StringPtr("-1"),
		"min.insync.replicas": kadm.StringPtr("4"),
		"max.message.bytes":   kadm.StringPtr("16777216"),
	}, "stuck")
	require.NoError(t, err)

	_, err = consensus.EnsureTopic(ctx, adm, "stuck", consensus.DefaultTopicSettings())
	var ue *consensus.UnsafeTopicError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, []consensus.TopicProblem{
		{Setting: "min.insync.replicas", Got: "4", Want: "<= replication factor 3"},
	}, ue.Problems)
}

func TestEnsureTopicReplicationExceedsBrokers(t *testing.T) {
	_, adm, ctx := topicEnv(t)
	created, err := consensus.EnsureTopic(ctx, adm, "toobig", consensus.TopicSettings{ReplicationFactor: 4, MinInsyncReplicas: 2})
	require.False(t, created)
	require.ErrorIs(t, err, kerr.InvalidReplicationFactor)
	require.False(t, errors.Is(err, consensus.ErrUnsafeTopic))
	require.Contains(t, err.Error(), "replication factor 4 needs at least 4 brokers, the cluster has 3")

	tds, err := adm.ListTopics(ctx, "toobig")
	require.NoError(t, err)
	require.ErrorIs(t, tds["toobig"].Err, kerr.UnknownTopicOrPartition)
}

// TestEnsureTopicCreateRace makes the first metadata request report the
// topic as missing although it exists, as when another node creates it
// between our look-up and our CreateTopics: TOPIC_ALREADY_EXISTS is then
// not an error, and the existing topic is checked.
func TestEnsureTopicCreateRace(t *testing.T) {
	k, adm, ctx := topicEnv(t)
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "raced")
	require.NoError(t, err)

	h := k.Cluster().Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Metadata},
		Topic: "raced",
		Err:   kerr.UnknownTopicOrPartition,
	})
	created, err := consensus.EnsureTopic(ctx, adm, "raced", consensus.DefaultTopicSettings())
	require.Equal(t, 1, h.Hits())
	require.False(t, created)
	var ue *consensus.UnsafeTopicError // replication factor 1 was found
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "replication.factor", ue.Problems[0].Setting)
}

func TestEnsureTopicConcurrent(t *testing.T) {
	_, adm, ctx := topicEnv(t)
	const nodes = 5
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		creates int
		errs    []error
	)
	for range nodes {
		wg.Go(func() {
			created, err := consensus.EnsureTopic(ctx, adm, "shared", consensus.DefaultTopicSettings())
			mu.Lock()
			defer mu.Unlock()
			if created {
				creates++
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Equal(t, 1, creates)
}

func TestEnsureTopicInvalidArguments(t *testing.T) {
	// Nothing reaches the cluster, so no admin client is needed.
	var adm *kadm.Client
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		topic string
		s     consensus.TopicSettings
		want  string
	}{
		{"bad name", "my channel", consensus.DefaultTopicSettings(), "illegal character"},
		{"min isr above rf", "ch", consensus.TopicSettings{ReplicationFactor: 2, MinInsyncReplicas: 3}, "exceeds replication factor 2"},
		{"negative rf", "ch", consensus.TopicSettings{ReplicationFactor: -1}, "must be at least 1"},
		{"negative min isr", "ch", consensus.TopicSettings{MinInsyncReplicas: -2}, "must be at least 1"},
		{"default min isr above rf 1", "ch", consensus.TopicSettings{ReplicationFactor: 1}, "min.insync.replicas 2 exceeds replication factor 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created, err := consensus.EnsureTopic(ctx, adm, tc.topic, tc.s)
			require.False(t, created)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidTopicName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // "" for valid
	}{
		{"mychannel", ""},
		{"My_Channel-1.2", ""},
		{"a", ""},
		{"...", ""},
		{strings.Repeat("x", consensus.MaxTopicNameLen), ""},
		{"", "empty"},
		{".", "reserved"},
		{"..", "reserved"},
		{strings.Repeat("x", consensus.MaxTopicNameLen+1), "250 characters, at most 249"},
		{"my channel", `illegal character ' ' at byte 2`},
		{"ch/1", `illegal character '/'`},
		{"ch:1", `illegal character ':'`},
		{"kanäle", "illegal character"},
	} {
		t.Run(fmt.Sprintf("%.20q", tc.name), func(t *testing.T) {
			err := consensus.ValidTopicName(tc.name)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, consensus.ErrInvalidTopicName)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func ExampleEnsureTopic() {
	k, err := consensustest.StartKafka() // three brokers on 127.0.0.1
	if err != nil {
		fmt.Println(err)
		return
	}
	defer k.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()

	created, err := consensus.EnsureTopic(ctx, adm, "mychannel", consensus.DefaultTopicSettings())
	fmt.Println(created, err)

	created, err = consensus.EnsureTopic(ctx, adm, "mychannel", consensus.DefaultTopicSettings())
	fmt.Println(created, err)

	// An existing topic that could lose records is reported; the caller
	// decides whether to stop or to log it and go on.
	_, _ = adm.CreateTopic(ctx, 1, 3, map[string]*string{"retention.ms": kadm.StringPtr("86400000")}, "legacy")
	_, err = consensus.EnsureTopic(ctx, adm, "legacy", consensus.DefaultTopicSettings())
	var ue *consensus.UnsafeTopicError
	if errors.As(err, &ue) {
		for _, p := range ue.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// true <nil>
	// false <nil>
	// min.insync.replicas is 1, want >= 2
	// retention.ms is 86400000, want -1
	// max.message.bytes is 1048588, want >= 16777216
}
