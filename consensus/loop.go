package consensus

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// This file is the chain's loop: the one goroutine that owns the core and
// the ledger's write side. It sets Kafka up, checks the log before trusting
// it (and catches up from other nodes when records are missing), then feeds
// every record to the core and carries out what it decides. While the log
// cannot be consumed it stops consuming and probes with metadata and
// offset requests only; it checks the log again before consuming again.

const (
	logWarn  = slog.LevelWarn
	logError = slog.LevelError
)

// probeInterval is how often an errored chain asks Kafka whether the log
// can be used again.
const probeInterval = 500 * time.Millisecond

// run is the chain's loop.
func (ch *Chain) run() {
	defer close(ch.done)
	defer ch.kc.stop(ch.topic)
	if err := ch.setUp(); err != nil {
		ch.fatal(fmt.Errorf("kafka set-up: %w", err))
		return
	}
	if err := ch.checkFits(ch.core.Config()); err != nil {
		ch.log.Warn("envelopes the configuration allows will not fit in the topic", "err", err)
	}
	if err := ch.retry(step{"check the log", ch.trustLog}, step{"post connect", ch.postConnect}); err != nil {
		ch.fatal(err)
		return
	}
	ch.consumeFrom()
	ch.setState(func(s *state) { s.status, s.resubmitting = statusReady, ch.core.Resubmitting() })
	ch.log.Info("chain ready", "height", ch.core.Height(), "next_offset", ch.core.Position())

	batch := time.NewTimer(time.Hour)
	batch.Stop()
	defer batch.Stop()
	check := time.NewTicker(min(max(ch.cfg.errorTimeout/4, 10*time.Millisecond), 250*time.Millisecond))
	defer check.Stop()

	for {
		select {
		case <-ch.ctx.Done():
			return
		case d := <-ch.in.c:
			ch.delivered(d, batch)
			for _, p := range ch.in.takeParked(ch.kc.cl, ch.topic) {
				ch.delivered(p, batch)
			}
		case <-check.C:
			ch.checkHealth()
		case <-batch.C:
			ch.apply(ch.core.TimerFired(), batch)
		}
	}
}

// fatal halts the chain for err (unless it is already stopping) and logs
// the cause at ERROR.
func (ch *Chain) fatal(err error) {
	if ch.ctx.Err() != nil {
		return
	}
	if !errors.Is(err, ErrHalted) {
		err = fmt.Errorf("%w: channel %s: %w", ErrHalted, ch.channel, err)
	}
	ch.log.Error("chain halted", "err", err)
	ch.halt(err)
}

// consumeFrom (re)starts consuming the partition at the core's position,
// into a fresh inbox: what the previous consumption fetched and the loop
// has not handled yet is dropped, and fetched again.
func (ch *Chain) consumeFrom() {
	ch.health.reset()
	ch.in = newInbox()
	ch.kc.consume(ch.topic, ch.in, ch.core.Position())
}

// trustLog reads the log and lets the core check it against the ledger.
// Missing records are caught up from the block sources; any other verdict
// is permanent. An error reading the log is returned as is, to be retried.
func (ch *Chain) trustLog() error {
	for {
		v, err := readLog(ch.ctx, ch.kc.cl, ch.topic, ch.core.FingerprintOffset())
		if err != nil {
			return err
		}
		err = ch.core.CheckLog(v)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrRecordsMissing) {
			return &permanentError{err}
		}
		var missing *LogError
		errors.As(err, &missing)
		switch caught := ch.catchUp(missing); {
		case errors.Is(caught, errSourcesBehind):
			return caught
		case caught != nil:
			return &permanentError{caught}
		}
	}
}

// delivered handles one delivery of the chain's partition.
func (ch *Chain) delivered(d delivery, batch *time.Timer) {
	if id := ch.core.TopicID(); id != nil && d.topicID != ([16]byte{}) && !bytes.Equal(d.topicID[:], id) {
		// Records of another topic of the same name: consume nothing
		// more before checking the log.
		ch.errored(fmt.Errorf("fetch from topic ID %s", hexID(d.topicID[:])))
		return
	}
	if err := d.part.Err; err != nil {
		ch.health.partitionFailed()
		ch.quiet.Log(logWarn, "fetch", "cannot consume", "next", ch.core.Position(), "err", err)
		if errors.Is(err, kerr.OffsetOutOfRange) || errors.Is(err, kerr.UnknownTopicID) || errors.Is(err, kerr.UnknownTopicOrPartition) {
			// The log changed under the consumer: check it now.
			ch.errored(err)
		}
		return
	}
	for _, r := range d.part.Records {
		if ch.ctx.Err() != nil {
			return
		}
		ch.consume(r, batch)
	}
	if len(d.part.Records) > 0 {
		ch.health.recordConsumed()
	}
}

// checkHealth moves the chain between ready and errored: errored once
// consumption has failed for the error timeout; then, every probe
// interval, it reads the log and checks it, and consumes again once it
// can be trusted.
func (ch *Chain) checkHealth() {
	if ch.st.Load().status == statusErrored {
		if time.Since(ch.probedAt) >= probeInterval {
			ch.probedAt = time.Now()
			ch.probe()
		}
		return
	}
	if since := ch.health.failingSince(); !since.IsZero() && time.Since(since) >= ch.cfg.errorTimeout {
		ch.errored(fmt.Errorf("consumption failing since %v", since.Round(time.Millisecond)))
	}
}

// errored stops fetching and marks the chain errored, with cause.
func (ch *Chain) errored(cause error) {
	if ch.st.Load().status == statusErrored {
		return
	}
	ch.kc.pause(ch.topic)
	ch.probedAt = time.Time{}
	ch.log.Warn("cannot consume from kafka, chain errored", "err", cause)
	ch.setState(func(s *state) { s.status, s.cause = statusErrored, cause })
}

// probe reads the log of an errored chain; once it can be read and
// trusted, the chain consumes again from its position.
func (ch *Chain) probe() {
	err := ch.trustLog()
	var perm *permanentError
	switch {
	case errors.As(err, &perm):
		ch.fatal(perm.err)
	case err != nil:
		ch.quiet.Log(logWarn, "probe", "kafka still unusable", "err", err)
		ch.setState(func(s *state) { s.cause = err })
	default:
		ch.quiet.Reset("probe")
		ch.quiet.Reset("fetch")
		ch.consumeFrom()
		ch.log.Info("consuming again", "next_offset", ch.core.Position())
		// A catch-up may have replaced the core: publish its gate.
		resub := ch.core.Resubmitting()
		ch.setState(func(s *state) { s.status, s.cause, s.resubmitting = statusReady, nil, resub })
	}
}

func (ch *Chain) consume(r *kgo.Record, batch *time.Timer) {
	if r.Partition != 0 || r.Topic != ch.topic || r.Offset < ch.core.Position() {
		return // not ours, or delivered again after a consumer restart
	}
	ready := ch.core.Step(Record{Offset: r.Offset, LeaderEpoch: r.LeaderEpoch, Value: r.Value})
	if len(r.Headers) > 0 {
		ch.tracing.consumed(r, ready.Notes)
	}
	ch.apply(ready, batch)
}

// apply carries out a Ready: append and sign blocks, produce messages, set
// the timer, log and count notes, publish the new config and gate.
func (ch *Chain) apply(r *Ready, batch *time.Timer) {
	ctx := ch.ctx
	now := time.Now()
	for _, b := range r.Blocks {
		if err := ch.write(ctx, b); err != nil {
			ch.fatal(err)
			return
		}
		fill := time.Duration(0)
		if !ch.batchStart.IsZero() {
			fill = now.Sub(ch.batchStart)
			ch.batchStart = time.Time{}
		}
		ch.metrics.blockWritten(ctx, b, fill)
	}
	if r.Config != nil {
		ch.config.Store(&configBox{r.Config})
		ch.log.Info("config applied", "sequence", r.Config.Sequence())
	}
	if r.Pending > 0 && ch.batchStart.IsZero() {
		ch.batchStart = now
	}
	ch.produceAll(ctx, r)
	switch r.Timer {
	case TimerStart:
		batch.Reset(r.BatchTimeout)
	case TimerStop:
		batch.Stop()
	}
	for _, n := range r.Notes {
		ch.metrics.skipped.Add(ctx, 1, ch.metrics.reason(n.Kind.String()))
		switch n.Kind {
		case NoteSkipped, NoteInvalid, NoteEmptyTimeToCut, NoteFutureTimeToCut:
			ch.quiet.Log(logWarn, "note:"+n.Kind.String(), "record not ordered", "kind", n.Kind, "offset", n.Offset, "err", n.Err)
		default:
			ch.log.Debug("record", "kind", n.Kind, "offset", n.Offset)
		}
	}
	if r.Resubmitting != ch.st.Load().resubmitting {
		ch.setState(func(s *state) { s.resubmitting = r.Resubmitting })
	}
}

// produceAll produces what the core asked for: its messages, then the
// configurations it computed again, signed by this node. A node that
// cannot sign one halts: every node must re-submit it, or a re-submission
// it makes later could overtake the configuration in the log, which every
// node would then drop as a duplicate (NewChain refuses such a channel
// without a signer, so only a signature the configuration no longer
// accepts gets here).
func (ch *Chain) produceAll(ctx context.Context, r *Ready) {
	for _, m := range r.Produce {
		ch.produceMessage(ctx, m)
	}
	for _, rs := range r.ConfigResubmissions {
		m, err := rs.Message(ch.cfg.signer)
		if err != nil {
			ch.fatal(fmt.Errorf("signing the configuration computed again for the config message at offset %d: %w", rs.OriginalOffset, err))
			return
		}
		ch.produceMessage(ctx, m)
	}
}

// produceMessage produces m, logging a failure: the protocol does not
// need any one node's message to land, since every node produces its own
// copy.
func (ch *Chain) produceMessage(ctx context.Context, m *ab.KafkaMessage) {
	rec := &kgo.Record{Topic: ch.topic, Partition: 0, Key: recordKey, Value: encodeMessage(m)}
	ch.kc.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil && ctx.Err() == nil {
			ch.quiet.Log(logWarn, "produce", "producing", "message", m.String(), "err", err)
		}
	})
}

// write signs block b and appends it to the ledger.
func (ch *Chain) write(ctx context.Context, b Block) error {
	span := ch.tracing.start(ctx, ch.channel, b)
	err := ch.sign(b.Block)
	if err != nil {
		err = fmt.Errorf("signing block %d: %w", b.Block.Header.Number, err)
	} else if err = ledger.AppendBuilt(ch.ledger, b.Block); err != nil {
		err = fmt.Errorf("appending block %d: %w", b.Block.Header.Number, err)
	}
	endSpan(span, err)
	return err
}

// sign adds the node's signature to the block's SIGNATURES slot: over the
// slot's value (set by the core), the signature header and the block
// header bytes.
func (ch *Chain) sign(b *cb.Block) error {
	if ch.cfg.signer == nil {
		return nil
	}
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sh, err := protoutil.Marshal(&cb.SignatureHeader{Creator: ch.creator, Nonce: nonce})
	if err != nil {
		return err
	}
	md, err := protoutil.Metadata(b, cb.BlockMetadataIndex_SIGNATURES)
	if err != nil {
		return err
	}
	hb := protoutil.HeaderBytes(b.Header)
	msg := make([]byte, 0, len(md.Value)+len(sh)+len(hb))
	msg = append(append(append(msg, md.Value...), sh...), hb...)
	sig, err := ch.cfg.signer.Sign(msg)
	if err != nil {
		return err
	}
	md.Signatures = []*cb.MetadataSignature{{SignatureHeader: sh, Signature: sig}}
	protoutil.SetMetadata(b, cb.BlockMetadataIndex_SIGNATURES, md)
	return nil
}
