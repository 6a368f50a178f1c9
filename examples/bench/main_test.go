package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/internal/chainbench"
)

var testSetup = setup{Nodes: 3, Brokers: 3, Ledger: "memory", Signed: true, Payload: "random", EnvSize: 1024, LingerMS: 2}

// testRecords are fixed results of the three patterns.
func testRecords() []record {
	return []record{
		newRecord(pattern{name: oneAtATime, callers: 1}, testSetup, 2000, chainbench.Result{
			Chain: 400, Raw: 1000, P50: 2500 * time.Microsecond, P99: 5 * time.Millisecond,
			RawP50: 1000 * time.Microsecond, RawP99: 2 * time.Millisecond,
			ChainCPU: 300 * time.Microsecond, RawCPU: 150 * time.Microsecond, MedianRoundRatio: 0.41,
		}),
		newRecord(pattern{name: callersPat, callers: 64}, testSetup, 20000, chainbench.Result{
			Chain: 15000, Raw: 30000, P50: 4 * time.Millisecond, P99: 9 * time.Millisecond,
			RawP50: 2 * time.Millisecond, RawP99: 6 * time.Millisecond,
			ChainCPU: 40 * time.Microsecond, RawCPU: 32 * time.Microsecond, MedianRoundRatio: 0.52,
		}),
		newRecord(pattern{name: pipelined, inFlight: 1000}, testSetup, 20000, chainbench.Result{
			Chain: 60000, Raw: 80000, P50: 15 * time.Millisecond, P99: 30 * time.Millisecond,
			RawP50: 12 * time.Millisecond, RawP99: 20 * time.Millisecond,
			ChainCPU: 20 * time.Microsecond, RawCPU: 16 * time.Microsecond, MedianRoundRatio: 0.74,
		}),
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	for _, r := range testRecords() {
		require.NoError(t, writeJSON(&buf, r))
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, 3, "one line per pattern")

	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	want := map[string]any{
		"pattern": "one-at-a-time", "callers": 1.0, "nodes": 3.0, "brokers": 3.0, "ledger": "memory",
		"signed": true, "payload": "random", "env_size": 1024.0, "linger_ms": 2.0, "envelopes": 2000.0,
		"chain_env_per_s": 400.0, "raw_env_per_s": 1000.0, "ratio": 0.4, "median_round_ratio": 0.41,
		"chain_p50_us": 2500.0, "chain_p99_us": 5000.0, "raw_p50_us": 1000.0, "raw_p99_us": 2000.0,
		"p50_ratio": 2.5, "p99_ratio": 2.5,
		"chain_cpu_us_per_env": 300.0, "raw_cpu_us_per_env": 150.0, "cpu_ratio": 2.0,
	}
	assert.Len(t, got, len(want))
	for k, v := range want {
		if f, ok := v.(float64); ok {
			assert.InDelta(t, f, got[k], 1e-9, "field %s", k)
		} else {
			assert.Equal(t, v, got[k], "field %s", k)
		}
	}

	got = nil
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &got))
	assert.Equal(t, "pipelined", got["pattern"])
	assert.InDelta(t, 1000.0, got["in_flight"], 0)
	assert.NotContains(t, got, "callers", "a pipelined pattern has no callers")
	assert.InDelta(t, 0.75, got["ratio"], 1e-9)
	assert.InDelta(t, 1.25, got["cpu_ratio"], 1e-9)
}

func TestRatioOfMissingSideIsZero(t *testing.T) {
	r := newRecord(pattern{name: pipelined, inFlight: 10}, testSetup, 100, chainbench.Result{Chain: 100, P50: time.Millisecond})
	assert.Zero(t, r.Ratio)
	assert.Zero(t, r.P50Ratio)
	assert.Zero(t, r.CPURatio)
	var buf bytes.Buffer
	require.NoError(t, writeJSON(&buf, r), "a missing side must still encode (no infinities)")
}

func TestTable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, writeTable(&buf, testRecords()))
	out := buf.String()
	for _, want := range []string{"one-at-a-time", "64 callers", "pipelined 1000", "0.40", "2.50ms", "300.0µs", "2.00"} {
		assert.Contains(t, out, want)
	}
}

func TestChartSVG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.svg")
	header := []string{"chain vs raw", "linux/amd64, 2 CPUs, Test CPU, 2026-01-02"}
	require.NoError(t, writeChart(path, header, testRecords()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	svg := string(b)
	assert.True(t, strings.HasPrefix(svg, "<?xml"), "an SVG document")
	for _, want := range []string{
		"<svg", "linux/amd64, 2 CPUs, Test CPU, 2026-01-02",
		"one-at-a-time: env/s, chain/raw 0.40", "64 callers: env/s, chain/raw 0.50", "pipelined 1000: env/s, chain/raw 0.75",
		"latency ms, chain/raw p50 2.50, p99 2.50", "CPU µs/env, chain/raw 2.00",
		"raw franz-go", ">60000<", ">2.50<",
	} {
		assert.Contains(t, svg, want)
	}
}

func TestChartPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.png")
	require.NoError(t, writeChart(path, []string{"title"}, testRecords()[:2]))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	require.NoError(t, err)
	// vgimg draws at 96 dpi: 11in wide, a header and two rows high.
	assert.Equal(t, 11*96, cfg.Width)
	assert.InDelta(t, (chartHeader + 2*chartRow).Dots(96), cfg.Height, 1)
}

func TestChartRejects(t *testing.T) {
	dir := t.TempDir()
	assert.ErrorContains(t, writeChart(filepath.Join(dir, "c.svg"), nil, nil), "no results")
	assert.ErrorContains(t, writeChart(filepath.Join(dir, "c.doc"), nil, testRecords()), "unsupported format")
	assert.NoFileExists(t, filepath.Join(dir, "c.doc"))
}

func TestParsePatterns(t *testing.T) {
	ps, err := parsePatterns("one-at-a-time,callers,pipelined", "1,16", 64, 500)
	require.NoError(t, err)
	assert.Equal(t, []pattern{
		{name: oneAtATime, callers: 1},
		{name: callersPat, callers: 1}, {name: callersPat, callers: 16},
		{name: pipelined, inFlight: 500},
	}, ps)
	ps, err = parsePatterns("callers", "", 64, 500)
	require.NoError(t, err)
	assert.Equal(t, []pattern{{name: callersPat, callers: 64}}, ps)
	for _, bad := range [][2]string{{"bogus", ""}, {"callers", "1,x"}, {"callers", "0"}} {
		_, err := parsePatterns(bad[0], bad[1], 64, 500)
		assert.Error(t, err, "%v", bad)
	}
}

func TestCPUModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpuinfo")
	require.NoError(t, os.WriteFile(path, []byte("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU @ 2.0GHz\n\nprocessor\t: 1\nmodel name\t: Some CPU @ 2.0GHz\n"), 0o600))
	assert.Equal(t, "Some CPU @ 2.0GHz", cpuModel(path))
	assert.Empty(t, cpuModel(filepath.Join(t.TempDir(), "missing")))
}
