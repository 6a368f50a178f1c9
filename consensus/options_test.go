package consensus_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
)

// TestNewConsenterInvalidOptions checks that NewConsenter refuses each
// invalid option with an error that names it, and joins several.
func TestNewConsenterInvalidOptions(t *testing.T) {
	seeds := consensus.WithSeedBrokers("127.0.0.1:9092")
	for name, tc := range map[string]struct {
		opts []consensus.Option
		want []string
	}{
		"no seeds":               {nil, []string{"no seed brokers"}},
		"retry":                  {[]consensus.Option{seeds, consensus.WithRetry(consensus.RetryPolicy{})}, []string{"intervals must be positive"}},
		"topic":                  {[]consensus.Option{seeds, consensus.WithTopicSettings(consensus.TopicSettings{ReplicationFactor: 1, MinInsyncReplicas: 2})}, []string{"exceeds replication factor"}},
		"max in flight":          {[]consensus.Option{seeds, consensus.WithMaxInFlight(0)}, []string{"max in flight 0"}},
		"error timeout":          {[]consensus.Option{seeds, consensus.WithErrorTimeout(-time.Second)}, []string{"must not be negative"}},
		"linger":                 {[]consensus.Option{seeds, consensus.WithProduceLinger(-time.Millisecond)}, []string{"must not be negative"}},
		"negative stall":         {[]consensus.Option{seeds, consensus.WithStallTimeout(-time.Second)}, []string{"must not be negative"}},
		"stall beyond the C int": {[]consensus.Option{seeds, consensus.WithStallTimeout(1 << 31 * time.Millisecond)}, []string{"stall timeout", "must be at most"}},
		"several":                {[]consensus.Option{consensus.WithMaxInFlight(-1)}, []string{"no seed brokers", "max in flight -1"}},
	} {
		t.Run(name, func(t *testing.T) {
			cons, err := consensus.NewConsenter(tc.opts...)
			require.Nil(t, cons)
			require.ErrorContains(t, err, "consensus: invalid options")
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	// The largest stall timeout is accepted.
	cons, err := consensus.NewConsenter(seeds, consensus.WithStallTimeout((1<<31-1)*time.Millisecond))
	require.NoError(t, err)
	cons.Close()
}
