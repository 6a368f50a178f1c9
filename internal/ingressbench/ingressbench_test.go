package ingressbench

import (
	"context"
	"log"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve as the harness's child processes.
func TestMain(m *testing.M) {
	if child, err := RunChild(); child {
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	os.Exit(m.Run())
}

// TestMeasure runs the harness on a few envelopes: the children start,
// every envelope is acknowledged and in the ledger, and both figures are
// there.
func TestMeasure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka, clients and a node")
	}
	for _, cfg := range []Config{
		{Nodes: 1, Brokers: 1, Ledger: LedgerMemory, Format: FormatFabric, Streams: 4, Conns: 2},
		{Nodes: 2, Brokers: 1, Ledger: LedgerFile, Format: FormatOwn, Streams: 3},
	} {
		t.Run(string(cfg.Ledger), func(t *testing.T) {
			d := DefaultConfig()
			cfg.EnvSize, cfg.MaxMessageCount, cfg.PreferredMaxBytes, cfg.BatchTimeout = d.EnvSize, d.MaxMessageCount, d.PreferredMaxBytes, d.BatchTimeout
			cfg.Verifies, cfg.WarmUp = 20, 10
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			h, err := Start(ctx, cfg)
			require.NoError(t, err)
			defer h.Close()
			r, err := h.Measure(ctx, 100)
			require.NoError(t, err)
			require.Equal(t, 100, r.Envelopes)
			require.Positive(t, r.OrdererCPU)
			require.Positive(t, r.VerifyCPU)
			require.Positive(t, r.Ratio())
		})
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().validate())
	for _, c := range []func(*Config){
		func(c *Config) { c.Nodes = 0 },
		func(c *Config) { c.Streams = 0 },
		func(c *Config) { c.Conns = -1 },
		func(c *Config) { c.Ledger = "tape" },
		func(c *Config) { c.Format = "xml" },
	} {
		cfg := DefaultConfig()
		c(&cfg)
		require.Error(t, cfg.validate())
	}
}
