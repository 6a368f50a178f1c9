package chainbench

import (
	"context"
	"testing"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/internal/cputime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigRejected(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"nodes":   func(c *Config) { c.Nodes = -1 },
		"brokers": func(c *Config) { c.Brokers = -1 },
		"ledger":  func(c *Config) { c.Ledger = "disk" },
		"payload": func(c *Config) { c.Payload = "ones" },
		"linger":  func(c *Config) { c.Linger = -time.Millisecond },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		_, err := Start(context.Background(), cfg)
		assert.ErrorContains(t, err, "chainbench: invalid config", name)
	}
}

// A small single-node run of both kinds of pattern: each side reports its
// latencies and CPU time, the raw clients are paused between their rounds,
// and a chain-only run leaves the raw figures at zero.
func TestMeasureSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Kafka")
	}
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Brokers, cfg.Unsigned = 1, 1, true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := Start(ctx, cfg)
	require.NoError(t, err)
	defer h.Close()

	for _, r := range []Run{{Total: 200, Round: 100, Callers: 4}, {Total: 400, Round: 200, InFlight: 50}} {
		res, err := h.Measure(ctx, r)
		require.NoError(t, err)
		assert.Positive(t, res.Chain, "%+v", r)
		assert.Positive(t, res.Raw, "%+v", r)
		assert.Positive(t, res.P50, "%+v", r)
		assert.GreaterOrEqual(t, res.P99, res.P50, "%+v", r)
		assert.Positive(t, res.RawP50, "%+v", r)
		assert.GreaterOrEqual(t, res.RawP99, res.RawP50, "%+v", r)
		assert.Positive(t, res.MedianRoundRatio, "%+v", r)
		if cputime.Process() > 0 {
			assert.Positive(t, res.ChainCPU, "%+v", r)
			assert.Positive(t, res.RawCPU, "%+v", r)
		}
		for _, cl := range h.raw {
			assert.Equal(t, []string{rawTopic}, cl.PauseFetchTopics(), "raw fetching paused after the rounds")
		}
	}

	res, err := h.Measure(ctx, Run{Total: 100, Round: 100, Callers: 2, ChainOnly: true})
	require.NoError(t, err)
	assert.Positive(t, res.Chain)
	assert.Zero(t, res.Raw)
	assert.Zero(t, res.RawP50)
	assert.Zero(t, res.RawCPU)

	_, err = h.Measure(ctx, Run{Total: 10})
	assert.ErrorContains(t, err, "need callers, or at least one in flight")

	// A lone envelope waits for the batch timer: never less than the
	// timeout from acknowledgement to the ledger.
	p50, p99, err := h.LedgerLatency(ctx, 3, 2*cfg.BatchTimeout)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, p50, cfg.BatchTimeout)
	assert.GreaterOrEqual(t, p99, p50)
	assert.Less(t, p50, cfg.BatchTimeout+time.Second)
}
