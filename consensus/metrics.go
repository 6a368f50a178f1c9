package consensus

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrument names. The first two are Fabric's, so that dashboards built
// for Fabric's Kafka consenter keep working.
const (
	MetricLastOffsetPersisted = "consensus_kafka_last_offset_persisted"
	MetricBlockFillDuration   = "blockcutter_block_fill_duration"
	MetricBlocksWritten       = "kafkaconsensus_blocks_written"
	MetricEnvelopesWritten    = "kafkaconsensus_envelopes_written"
	MetricEnvelopesRejected   = "kafkaconsensus_envelopes_rejected"
	MetricRecordsSkipped      = "kafkaconsensus_records_skipped"
	MetricOrderLatency        = "kafkaconsensus_order_latency"
	MetricChainState          = "kafkaconsensus_chain_state"
	MetricLedgerHeight        = "kafkaconsensus_ledger_height"
)

// Histogram buckets, in seconds: acknowledgements take milliseconds, block
// fills up to the batch timeout (seconds).
var (
	latencyBuckets = []float64{0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	fillBuckets    = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}
)

const meterName = "github.com/kafkaconsensus/kafkaconsensus/consensus"

type metrics struct {
	channel   metric.MeasurementOption
	attrs     []attribute.KeyValue
	offset    metric.Int64Gauge
	fill      metric.Float64Histogram
	blocks    metric.Int64Counter
	envelopes metric.Int64Counter
	rejected  metric.Int64Counter
	skipped   metric.Int64Counter
	latency   metric.Float64Histogram
}

func newMetrics(p metric.MeterProvider, channel string) (*metrics, error) {
	m := p.Meter(meterName)
	ms := &metrics{attrs: []attribute.KeyValue{attribute.String("channel", channel)}}
	ms.channel = metric.WithAttributes(ms.attrs...)
	var err error
	try := func(f func() error) {
		if err == nil {
			err = f()
		}
	}
	try(func() (e error) {
		ms.offset, e = m.Int64Gauge(MetricLastOffsetPersisted, metric.WithDescription("Offset of the last record persisted in a block."))
		return
	})
	try(func() (e error) {
		ms.fill, e = m.Float64Histogram(MetricBlockFillDuration, metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(fillBuckets...),
			metric.WithDescription("Time from the first envelope of a batch to the cut of its block."))
		return
	})
	try(func() (e error) {
		ms.blocks, e = m.Int64Counter(MetricBlocksWritten, metric.WithDescription("Blocks appended to the ledger."))
		return
	})
	try(func() (e error) {
		ms.envelopes, e = m.Int64Counter(MetricEnvelopesWritten, metric.WithDescription("Envelopes appended to the ledger."))
		return
	})
	try(func() (e error) {
		ms.rejected, e = m.Int64Counter(MetricEnvelopesRejected, metric.WithDescription("Envelopes refused at ingress or dropped on re-validation, by reason."))
		return
	})
	try(func() (e error) {
		ms.skipped, e = m.Int64Counter(MetricRecordsSkipped, metric.WithDescription("Records of the partition that produced no block, by kind."))
		return
	})
	try(func() (e error) {
		ms.latency, e = m.Float64Histogram(MetricOrderLatency, metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...),
			metric.WithDescription("Time from Order to Kafka's acknowledgement."))
		return
	})
	return ms, err
}

func (m *metrics) reason(r string) metric.MeasurementOption {
	return metric.WithAttributes(append(m.attrs[:len(m.attrs):len(m.attrs)], attribute.String("reason", r))...)
}

func (m *metrics) blockWritten(ctx context.Context, b Block, fill time.Duration) {
	m.blocks.Add(ctx, 1, m.channel)
	m.envelopes.Add(ctx, int64(len(b.Block.Data.Data)), m.channel)
	m.offset.Record(ctx, b.Metadata.LastOffsetPersisted, m.channel)
	if !b.IsConfig {
		m.fill.Record(ctx, fill.Seconds(), m.channel)
	}
}

// observe registers the gauges read from ch when metrics are collected:
// its state (1 for the state it is in, 0 for the others, by state) and its
// ledger's height. The registration ends when the chain is done.
func (m *metrics) observe(p metric.MeterProvider, ch *Chain) error {
	meter := p.Meter(meterName)
	state, err := meter.Int64ObservableGauge(MetricChainState,
		metric.WithDescription("1 for the state the chain is in (starting, ready, errored, halted), 0 for the others."))
	if err != nil {
		return err
	}
	height, err := meter.Int64ObservableGauge(MetricLedgerHeight, metric.WithDescription("Blocks in the chain's ledger."))
	if err != nil {
		return err
	}
	byState := make([]metric.ObserveOption, len(statusNames))
	for i, name := range statusNames {
		byState[i] = metric.WithAttributes(append(m.attrs[:len(m.attrs):len(m.attrs)], attribute.String("state", name))...)
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		cur := ch.st.Load().status
		for s, opt := range byState {
			v := int64(0)
			if status(s) == cur {
				v = 1
			}
			o.ObserveInt64(state, v, opt)
		}
		o.ObserveInt64(height, int64(ch.ledger.Height()), metric.WithAttributes(m.attrs...))
		return nil
	}, state, height)
	if err != nil {
		return err
	}
	go func() {
		<-ch.done
		reg.Unregister()
	}()
	return nil
}
