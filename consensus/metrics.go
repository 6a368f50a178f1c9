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
		ms.fill, e = m.Float64Histogram(MetricBlockFillDuration, metric.WithUnit("s"),
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
		ms.latency, e = m.Float64Histogram(MetricOrderLatency, metric.WithUnit("s"),
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
