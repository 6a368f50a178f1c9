package consensus_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
)

// userTimeouts records TCP_USER_TIMEOUT of each connection the Kafka
// client opens, read when the client reports it open: the consenter's own
// hook, registered before those of WithKgoOpts, has set it by then.
type userTimeouts struct {
	mu   sync.Mutex
	ms   []int
	errs []error
}

func (u *userTimeouts) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	if err != nil {
		return
	}
	v, err := testutil.TCPUserTimeout(conn)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ms = append(u.ms, v)
	u.errs = append(u.errs, err)
}

func (u *userTimeouts) values(t *testing.T) []int {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, err := range u.errs {
		require.NoError(t, err)
	}
	return append([]int(nil), u.ms...)
}

// TestStallTimeout checks that every connection to a broker carries the
// stall timeout as TCP_USER_TIMEOUT: the default, one set with
// WithStallTimeout, over TLS too, and the system's own (0) with
// WithStallTimeout(0).
func TestStallTimeout(t *testing.T) {
	certs, err := consensustest.SelfSignedTLS()
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		tls  bool
		opts []consensus.Option
		want int
	}{
		{"default", false, nil, int(consensus.DefaultStallTimeout / time.Millisecond)},
		{"set", false, []consensus.Option{consensus.WithStallTimeout(1500 * time.Millisecond)}, 1500},
		{"TLS", true, []consensus.Option{consensus.WithTLS(certs.Client), consensus.WithStallTimeout(2500 * time.Millisecond)}, 2500},
		{"off", false, []consensus.Option{consensus.WithStallTimeout(0)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kopts []consensustest.KafkaOption
			if tc.tls {
				kopts = append(kopts, consensustest.WithTLS(certs.Server))
			}
			k := secureKafka(t, kopts...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			seen := new(userTimeouts)
			ch, l, client, err := secureChain(t, ctx, k, append(tc.opts, consensus.WithKgoOpts(kgo.WithHooks(seen)))...)
			require.NoError(t, err)
			orderAndCheck(t, ctx, ch, l, client, 5)
			got := seen.values(t)
			require.NotEmpty(t, got, "no connection opened")
			for _, v := range got {
				require.Equal(t, tc.want, v, "TCP_USER_TIMEOUT of the connections: %v", got)
			}
		})
	}
}
