package consensus

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Record is one record of a channel's partition as the core sees it.
type Record struct {
	// Offset is the record's offset in the partition.
	Offset int64
	// LeaderEpoch is the partition leader epoch of the record's batch, as
	// the broker returns it: part of the record's fingerprint (see
	// LogFingerprint).
	LeaderEpoch int32
	// Value is the record's value: a marshalled orderer.KafkaMessage when
	// an orderer wrote it. The core decodes it without copying: the
	// envelopes it holds, and the blocks cut from them, share Value's
	// bytes, so Value must not be modified or reused after Step.
	Value []byte
}

// Block is a block the core cut, to be appended to the ledger.
type Block struct {
	// Block is the block with its header, data, and the ORDERER and
	// LAST_CONFIG metadata set; its SIGNATURES slot is left for the node to
	// sign.
	Block *cb.Block
	// Metadata is the KafkaMetadata stored in the block's ORDERER slot.
	Metadata *ab.KafkaMetadata
	// IsConfig says the block holds a config envelope (and nothing else).
	IsConfig bool
}

// TimerAction tells the node what to do with the batch timer.
type TimerAction int

const (
	// TimerKeep leaves the timer as it is.
	TimerKeep TimerAction = iota
	// TimerStart (re)starts the timer with the current BatchTimeout.
	TimerStart
	// TimerStop stops the timer.
	TimerStop
)

var timerNames = [...]string{"keep", "start", "stop"}

// String returns "keep", "start" or "stop".
func (a TimerAction) String() string {
	if a >= 0 && int(a) < len(timerNames) {
		return timerNames[a]
	}
	return fmt.Sprintf("TimerAction(%d)", int(a))
}

// NoteKind classifies a Note.
type NoteKind int

const (
	// NoteSkipped: a record that is not a valid orderer message was skipped.
	NoteSkipped NoteKind = iota + 1
	// NoteInvalid: a stale message failed re-validation and was dropped.
	NoteInvalid
	// NoteDuplicate: a re-submitted message already processed was dropped.
	NoteDuplicate
	// NoteResubmitted: a stale message passed re-validation and is
	// re-submitted (see Ready.Produce).
	NoteResubmitted
	// NoteStaleTimeToCut: a time-to-cut for an already cut block was ignored.
	NoteStaleTimeToCut
	// NoteEmptyTimeToCut: a time-to-cut for the next block found nothing
	// pending and was ignored.
	NoteEmptyTimeToCut
	// NoteFutureTimeToCut: a time-to-cut for a block beyond the next one
	// was skipped. No node of this chain writes one (a node asks only for
	// its next block, and every node has cut the same blocks at the same
	// offset), so another writer put it there; every node skips it alike.
	NoteFutureTimeToCut
)

var noteNames = map[NoteKind]string{
	NoteSkipped: "skipped", NoteInvalid: "invalid", NoteDuplicate: "duplicate",
	NoteResubmitted: "resubmitted", NoteStaleTimeToCut: "stale_ttc", NoteEmptyTimeToCut: "empty_ttc",
	NoteFutureTimeToCut: "future_ttc",
}

// String returns the kind's name, as used in metrics.
func (k NoteKind) String() string {
	if s, ok := noteNames[k]; ok {
		return s
	}
	return fmt.Sprintf("NoteKind(%d)", int(k))
}

// Note reports something the core did with a record that produced no block,
// for logs and metrics.
type Note struct {
	Kind   NoteKind
	Offset int64
	Err    error // the reason, for NoteSkipped and NoteInvalid
}

// Ready is everything a step of the core (Step or TimerFired) asks of the
// node, and everything about the core's state that the node needs
// afterwards: the node carries it out in this order, and needs to ask the
// core nothing else. A Ready and its slices are valid until the next call
// into the core.
type Ready struct {
	// Blocks are the blocks cut, in order: the node signs each one and
	// appends it to its ledger before anything else. Empty if none.
	Blocks []Block
	// Produce are the messages the node must produce to the partition, in
	// order, after appending Blocks: time-to-cuts and re-submissions. Every
	// node produces the same ones; the log keeps the first. Empty if none.
	Produce []*ab.KafkaMessage
	// ConfigResubmissions are the configurations the core computed again
	// for config messages that another configuration change overtook in
	// the log (see ConfigReprocessor): the node signs each one and
	// produces it (ConfigResubmission.Message) after Produce, and the log
	// keeps the first node's. Every node must: one that did not could
	// produce a later re-submission ahead of the others' copies, and
	// raise the duplicate watermark past this one, so a node that cannot
	// sign must stop (a Chain halts). Empty if none.
	ConfigResubmissions []ConfigResubmission
	// Timer says what to do with the batch timer: start it for
	// BatchTimeout, stop it, or leave it as it is.
	Timer TimerAction
	// BatchTimeout is the batch timeout in force, the duration of a timer
	// that Timer starts.
	BatchTimeout time.Duration
	// Config is the configuration in force after this step when the step
	// applied a config block, nil if the configuration did not change.
	Config ChannelConfig
	// Resubmitting reports whether a re-submitted config message is in
	// flight after this step (see Core.Resubmitting): while it is, the node
	// must not accept new envelopes.
	Resubmitting bool
	// Pending is the number of envelopes waiting in the block cutter after
	// this step: a batch is open when it is not zero.
	Pending int
	// Notes says what the step did with records that produced no block,
	// for logs and metrics. Empty if none.
	Notes []Note
}

// Core is the deterministic ordering state machine of one channel: it takes
// the records of the channel's partition in order and decides which blocks
// to cut, what to (re)produce and what to do with the batch timer. It has no
// goroutines, clock or IO, and is not safe for concurrent use. Two cores
// started from the same ledger state and fed the same records return the
// same blocks, byte for byte.
type Core struct {
	channel string
	config  ChannelConfig
	cutter  *blockcutter.Cutter

	nextNumber      uint64 // number of the next block to cut (ledger height)
	prevHash        []byte // header hash of the last block
	lastConfigBlock uint64 // number of the last config block

	lastOffsetPersisted         int64
	lastOriginalOffsetProcessed int64
	lastResubmittedConfigOffset int64
	// resubmittedAgain holds the original offsets of re-submitted normal
	// messages that were stale again and re-submitted once more: their
	// other copies are duplicates (see KafkaMetadata.resubmitted_again).
	// Entries at or below lastOriginalOffsetProcessed are pruned when a
	// block is cut.
	resubmittedAgain map[int64]bool

	timerRunning bool

	// validateAll makes the core validate every normal envelope it
	// consumes, not only those validated under an older sequence.
	validateAll bool

	// The log's identity: its topic ID (nil until known), the record
	// consumed last and the one before it, from which cutBlock takes the
	// fingerprint of the last persisted record. prev starts as the
	// fingerprint of the last block, which is the record before the first
	// one a restarted core consumes.
	topicID []byte
	prev    fingerprinted
	cur     fingerprinted

	ready Ready

	// pendingRaw holds the marshalled bytes of the envelopes waiting in
	// the cutter, in the same order (nil where not known), so that blocks
	// reuse the bytes read from the log instead of marshalling again.
	pendingRaw [][]byte
}

// CoreState is where a core resumes: the ledger's last block and the
// configuration of its last config block.
type CoreState struct {
	// LastBlock is the last block of the ledger (the genesis block for a
	// new channel).
	LastBlock *cb.Block
	// Config is the configuration in force after LastBlock.
	Config ChannelConfig
}

// CoreOption configures a Core.
type CoreOption func(*Core)

// ValidateEveryEnvelope makes the core validate every normal envelope it
// consumes against the configuration in force at that point of the log
// (ChannelConfig.ValidateNormal), and skip an invalid one (NoteInvalid),
// instead of trusting that the node which produced it validated it. Every
// node then orders only envelopes that pass, whoever wrote them into the
// topic. It costs one validation per envelope on every node (a signature
// check and a policy evaluation with the default configuration).
func ValidateEveryEnvelope() CoreOption { return func(c *Core) { c.validateAll = true } }

// NewCore returns a core for channel that continues after st.LastBlock,
// restoring the offsets and the log identity from its ORDERER metadata (a
// genesis block without it starts before the partition's first record).
func NewCore(channel string, st CoreState, opts ...CoreOption) (*Core, error) {
	if st.LastBlock.GetHeader() == nil {
		return nil, errors.New("consensus: core needs the ledger's last block")
	}
	if st.Config == nil {
		return nil, errors.New("consensus: core needs the channel configuration")
	}
	c := &Core{
		channel:             channel,
		config:              st.Config,
		nextNumber:          st.LastBlock.Header.Number + 1,
		prevHash:            protoutil.HeaderHash(st.LastBlock.Header),
		lastOffsetPersisted: OffsetBeforeOldest,
	}
	c.cutter = blockcutter.New(func() blockcutter.Limits { return c.config.BatchLimits() })

	lc, err := protoutil.LastConfigIndex(st.LastBlock)
	if err != nil {
		return nil, fmt.Errorf("consensus: channel %s: %w", channel, err)
	}
	c.lastConfigBlock = lc
	md, err := KafkaMetadataOf(st.LastBlock)
	if err != nil {
		return nil, fmt.Errorf("consensus: channel %s: %w", channel, err)
	}
	if md != nil {
		c.lastOffsetPersisted = md.LastOffsetPersisted
		c.lastOriginalOffsetProcessed = md.LastOriginalOffsetProcessed
		c.lastResubmittedConfigOffset = md.LastResubmittedConfigOffset
		for _, o := range md.ResubmittedAgain {
			c.markResubmittedAgain(o)
		}
		if len(md.TopicId) > 0 {
			c.topicID = md.TopicId
		}
		if fp := md.Persisted; fp != nil {
			c.prev = fingerprinted{offset: fp.Offset, epoch: fp.LeaderEpoch, hash: fp.ValueHash}
		}
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// OffsetBeforeOldest is the LastOffsetPersisted of a channel that has
// persisted no record yet: consumption starts at the partition's oldest
// offset.
const OffsetBeforeOldest int64 = -1

// KafkaMetadataOf decodes the KafkaMetadata of b's ORDERER slot; nil when
// the slot is empty (a genesis block).
func KafkaMetadataOf(b *cb.Block) (*ab.KafkaMetadata, error) {
	m, err := protoutil.Metadata(b, cb.BlockMetadataIndex_ORDERER)
	if err != nil {
		return nil, err
	}
	if len(m.GetValue()) == 0 && b.GetHeader().GetNumber() == 0 {
		return nil, nil
	}
	// Past genesis an empty value is the all-zero KafkaMetadata (a block
	// cut at offset 0 marshals to nothing): decode it as such.
	md := new(ab.KafkaMetadata)
	if err := proto.Unmarshal(m.Value, md); err != nil {
		return nil, fmt.Errorf("block %d: decoding kafka metadata: %w", b.GetHeader().GetNumber(), err)
	}
	return md, nil
}

// NextOffset is the offset to consume next: LastOffsetPersisted+1, or
// OffsetBeforeOldest+1 (0) on a new channel.
func (c *Core) NextOffset() int64 { return c.lastOffsetPersisted + 1 }

// LastOffsetPersisted is the offset recorded in the last block cut.
func (c *Core) LastOffsetPersisted() int64 { return c.lastOffsetPersisted }

// Height is the number of blocks in the chain, the cut ones included.
func (c *Core) Height() uint64 { return c.nextNumber }

// Config is the configuration in force.
func (c *Core) Config() ChannelConfig { return c.config }

// Resubmitting reports whether a re-submitted config message is in flight:
// while it is, the node must not accept new envelopes, so that none
// overtakes the config. It is derived from the offsets, exactly as a
// restarted core derives it from its last block's metadata: once an
// original offset at or beyond the re-submitted config's has been
// processed, that config's re-submission can only be a duplicate, so
// nothing is in flight.
func (c *Core) Resubmitting() bool {
	return c.lastResubmittedConfigOffset > c.lastOriginalOffsetProcessed
}

// Pending is the number of envelopes waiting in the block cutter.
func (c *Core) Pending() int { return c.cutter.Pending() }

func (c *Core) reset() *Ready {
	r := &c.ready
	clear(r.Blocks)
	clear(r.Produce)
	clear(r.ConfigResubmissions)
	r.Blocks, r.Produce, r.Notes, r.Timer, r.Config = r.Blocks[:0], r.Produce[:0], r.Notes[:0], TimerKeep, nil
	r.ConfigResubmissions = r.ConfigResubmissions[:0]
	return r
}

// done completes the Ready of a step with the state the node needs.
func (c *Core) done() *Ready {
	r := &c.ready
	r.BatchTimeout, r.Resubmitting, r.Pending = c.config.BatchTimeout(), c.Resubmitting(), c.cutter.Pending()
	return r
}

// TimerFired tells the core that the batch timer expired: it returns a
// time-to-cut message for the next block to produce. Every node sends one;
// the first in the log cuts, the others are stale.
func (c *Core) TimerFired() *Ready {
	c.reset()
	if c.timerRunning {
		c.timerRunning = false
		c.ready.Produce = append(c.ready.Produce, &ab.KafkaMessage{Type: &ab.KafkaMessage_TimeToCut{
			TimeToCut: &ab.KafkaMessageTimeToCut{BlockNumber: c.nextNumber},
		}})
	}
	return c.done()
}

// Step feeds the next record of the partition to the core. No record
// stops the core: a record that no node of the channel could have written
// is skipped, as every node skips it (see NoteKind); whether the log as a
// whole can be trusted is CheckLog's question.
func (c *Core) Step(rec Record) *Ready {
	c.reset()
	if c.cur.set {
		c.prev = c.cur
	}
	c.cur = fingerprinted{offset: rec.Offset, epoch: rec.LeaderEpoch, value: rec.Value, set: true}
	c.step(rec)
	return c.done()
}

func (c *Core) step(rec Record) {
	if m, env, raw, ok := fastRegular(rec.Value); ok {
		c.regularDecoded(m, env, raw, rec.Offset)
		return
	}
	msg := new(ab.KafkaMessage)
	if err := decodeStrict(rec.Value, msg); err != nil {
		c.note(NoteSkipped, rec.Offset, fmt.Errorf("not an orderer message: %w", err))
		return
	}
	switch t := msg.Type.(type) {
	case *ab.KafkaMessage_Connect:
		// Proves a producer works; carries nothing to order.
	case *ab.KafkaMessage_TimeToCut:
		c.timeToCut(t.TimeToCut.GetBlockNumber(), rec.Offset)
	case *ab.KafkaMessage_Regular:
		c.regular(t.Regular, rec.Offset)
	default:
		c.note(NoteSkipped, rec.Offset, errors.New("orderer message of no known type"))
	}
}

func (c *Core) note(kind NoteKind, offset int64, err error) {
	c.ready.Notes = append(c.ready.Notes, Note{Kind: kind, Offset: offset, Err: err})
}

func (c *Core) timeToCut(number uint64, offset int64) {
	switch {
	case number < c.nextNumber:
		c.note(NoteStaleTimeToCut, offset, nil)
	case number > c.nextNumber:
		c.note(NoteFutureTimeToCut, offset, fmt.Errorf("time-to-cut for block %d, but the next block is %d", number, c.nextNumber))
	default:
		batch := c.cutter.Cut()
		if len(batch) == 0 {
			c.note(NoteEmptyTimeToCut, offset, nil)
			return
		}
		c.stopTimer()
		c.cutBlock(batch, offset, false)
	}
}

func (c *Core) regular(m *ab.KafkaMessageRegular, offset int64) {
	env := new(cb.Envelope)
	if err := decodeStrict(m.GetPayload(), env); err != nil || len(env.Payload) == 0 {
		if err == nil {
			err = errors.New("empty payload")
		}
		c.note(NoteSkipped, offset, fmt.Errorf("regular message without an envelope: %w", err))
		return
	}
	c.regularDecoded(m, env, nil, offset)
}

func (c *Core) regularDecoded(m *ab.KafkaMessageRegular, env *cb.Envelope, raw []byte, offset int64) {
	if m.OriginalOffset < 0 {
		c.note(NoteSkipped, offset, fmt.Errorf("negative original offset %d", m.OriginalOffset))
		return
	}
	if m.OriginalOffset != 0 && m.OriginalOffset >= offset {
		// A node re-submits a message after consuming it, so an original
		// offset is always below the record's own: only another writer
		// puts this here, and taking it would raise the duplicate
		// watermark past re-submissions still in flight, which every node
		// would then drop.
		c.note(NoteSkipped, offset, fmt.Errorf("original offset %d not below the record's own offset", m.OriginalOffset))
		return
	}
	if m.ConfigSeq > c.config.Sequence() {
		// No node validates against a configuration the log has not
		// reached yet: only a foreign writer produces this.
		c.note(NoteSkipped, offset, fmt.Errorf("%w: message of config sequence %d at sequence %d", ErrStaleConfig, m.ConfigSeq, c.config.Sequence()))
		return
	}
	if offset == 0 && m.ConfigSeq < c.config.Sequence() {
		// Every node posts a Connect record before any envelope, so only
		// another writer puts a message at offset 0, and a stale one could
		// not be re-submitted: its original offset would be 0, which means
		// none, and every node's copy would be ordered.
		c.note(NoteSkipped, offset, fmt.Errorf("message of config sequence %d, stale at offset 0", m.ConfigSeq))
		return
	}
	if m.OriginalOffset != 0 && (m.OriginalOffset <= c.lastOriginalOffsetProcessed || c.resubmittedAgain[m.OriginalOffset]) {
		c.note(NoteDuplicate, offset, nil)
		return
	}
	switch m.Class {
	case ab.KafkaMessageRegular_NORMAL:
		c.normal(env, raw, m, offset)
	case ab.KafkaMessageRegular_CONFIG:
		c.configMsg(env, m, offset)
	default:
		c.note(NoteSkipped, offset, fmt.Errorf("regular message of class %v", m.Class))
	}
}

// newOffset is the last original offset processed once m is committed.
func (c *Core) newOffset(m *ab.KafkaMessageRegular) int64 {
	if m.OriginalOffset != 0 {
		return m.OriginalOffset
	}
	return c.lastOriginalOffsetProcessed
}

// resubmit asks the node to produce payload again, a message of class
// first consumed at offset, under the configuration in force.
func (c *Core) resubmit(payload []byte, class ab.KafkaMessageRegular_Class, offset int64) {
	c.ready.Produce = append(c.ready.Produce, &ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{
		Regular: &ab.KafkaMessageRegular{Payload: payload, ConfigSeq: c.config.Sequence(), Class: class, OriginalOffset: offset},
	}})
	c.note(NoteResubmitted, offset, nil)
}

func (c *Core) normal(env *cb.Envelope, raw []byte, m *ab.KafkaMessageRegular, offset int64) {
	if c.validateAll || m.ConfigSeq < c.config.Sequence() {
		if err := c.validateNormal(env); err != nil {
			c.note(NoteInvalid, offset, err)
			return
		}
	}
	if m.ConfigSeq < c.config.Sequence() {
		if m.OriginalOffset != 0 {
			// Every node re-submitted this envelope; each copy that arrives
			// is stale again. Re-submit the first one only, under its own
			// offset as Fabric does, so that the envelope stays one message:
			// the other copies are duplicates of it.
			c.markResubmittedAgain(m.OriginalOffset)
		}
		c.resubmit(m.Payload, m.Class, offset)
		return
	}

	newOffset := c.newOffset(m)
	c.pendingRaw = append(c.pendingRaw, raw)
	batches, pending := c.cutter.Ordered(env)
	if len(batches) > 0 {
		c.stopTimer()
	}
	if pending && !c.timerRunning {
		c.startTimer()
	}
	if len(batches) == 0 {
		c.lastOriginalOffsetProcessed = newOffset
		return
	}
	// The first block holds m only when it is the only batch and nothing is
	// pending; otherwise m is still to be persisted and the block records
	// offset-1, so that a restart consumes m again.
	if pending || len(batches) == 2 {
		c.cutBlock(batches[0], offset-1, false)
		c.lastOriginalOffsetProcessed = newOffset
		if len(batches) == 2 {
			c.cutBlock(batches[1], offset, false)
		}
		return
	}
	c.lastOriginalOffsetProcessed = newOffset
	c.cutBlock(batches[0], offset, false)
}

func (c *Core) configMsg(env *cb.Envelope, m *ab.KafkaMessageRegular, offset int64) {
	if m.OriginalOffset != 0 {
		// Another node re-submitted a config that this one may have found
		// invalid: follow the log to stay consistent.
		if c.lastResubmittedConfigOffset < m.OriginalOffset {
			c.lastResubmittedConfigOffset = m.OriginalOffset
		}
	}
	if rp, ok := c.config.(ConfigReprocessor); ok && m.ConfigSeq < c.config.Sequence() {
		c.reprocessConfig(rp, env, m, offset)
		return
	}
	next, err := c.validateConfig(env)
	if err != nil {
		c.configInvalid(m, offset, err)
		return
	}
	if m.ConfigSeq < c.config.Sequence() {
		c.resubmit(m.Payload, m.Class, offset)
		c.lastResubmittedConfigOffset = offset
		return
	}
	if next.Sequence() != c.config.Sequence()+1 {
		c.note(NoteInvalid, offset, fmt.Errorf("config update to sequence %d at sequence %d", next.Sequence(), c.config.Sequence()))
		return
	}

	newOffset := c.newOffset(m)
	c.stopTimer()
	if batch := c.cutter.Cut(); len(batch) > 0 {
		c.cutBlock(batch, offset-1, false)
	}
	c.lastOriginalOffsetProcessed = newOffset
	c.config = next
	c.ready.Config = next
	c.cutBlock([]*cb.Envelope{env}, offset, true)
}

// configInvalid drops config message m, consumed at offset, which failed
// validation.
func (c *Core) configInvalid(m *ab.KafkaMessageRegular, offset int64, err error) {
	if m.OriginalOffset != 0 {
		// A re-submission that is done with: mark it processed, so that
		// nothing waits for it (see Resubmitting).
		c.lastOriginalOffsetProcessed = m.OriginalOffset
	}
	c.note(NoteInvalid, offset, err)
}

// reprocessConfig handles config message m, consumed at offset, whose
// envelope env was made against an older configuration of rp's kind: its
// configuration is computed again from its update against the one in
// force, as Fabric's orderer does, for the node to sign and re-submit.
// The verdict, and so the gate and the offsets the blocks record, is the
// same on every node, whatever its identity.
func (c *Core) reprocessConfig(rp ConfigReprocessor, env *cb.Envelope, m *ab.KafkaMessageRegular, offset int64) {
	ce, err := rp.ReproposeConfig(env)
	if err != nil {
		c.configInvalid(m, offset, err)
		return
	}
	c.lastResubmittedConfigOffset = offset
	c.ready.ConfigResubmissions = append(c.ready.ConfigResubmissions, ConfigResubmission{
		Config: rp, Envelope: ce, ConfigSeq: c.config.Sequence(), OriginalOffset: offset,
	})
	c.note(NoteResubmitted, offset, nil)
}

// ConfigResubmission is a configuration that a core computed again for a
// config message overtaken in the log by another configuration change
// (see ConfigReprocessor and Ready.ConfigResubmissions).
type ConfigResubmission struct {
	// Config is the configuration in force, which computed Envelope and
	// signs it.
	Config ConfigReprocessor
	// Envelope is the configuration computed again, unsigned.
	Envelope *cb.ConfigEnvelope
	// ConfigSeq is Config's sequence, and OriginalOffset the offset of the
	// overtaken config message: the fields of the re-submitted message.
	ConfigSeq      uint64
	OriginalOffset int64
}

// Message signs the configuration with signer (Config.SignConfig) and
// returns the message to produce: the CONFIG envelope, re-submitted under
// ConfigSeq with OriginalOffset. It fails when signer cannot sign, or
// when the configuration does not accept its signature.
func (r ConfigResubmission) Message(signer Signer) (*ab.KafkaMessage, error) {
	if signer == nil {
		return nil, errors.New("consensus: no signing identity to sign a config computed again")
	}
	env, err := r.Config.SignConfig(r.Envelope, signer)
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(env)
	if err != nil {
		return nil, err
	}
	return &ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
		Payload: payload, ConfigSeq: r.ConfigSeq, Class: ab.KafkaMessageRegular_CONFIG, OriginalOffset: r.OriginalOffset,
	}}}, nil
}

// validateNormal validates a normal envelope as ingress does: size, then
// the configuration's verdict.
func (c *Core) validateNormal(env *cb.Envelope) error {
	if err := checkSize(c.config, env); err != nil {
		return err
	}
	return c.config.ValidateNormal(env)
}

// validateConfig validates a config envelope as ingress does.
func (c *Core) validateConfig(env *cb.Envelope) (ChannelConfig, error) {
	if err := checkSize(c.config, env); err != nil {
		return nil, err
	}
	return c.config.ValidateConfig(env)
}

func (c *Core) startTimer() {
	c.timerRunning = true
	c.ready.Timer = TimerStart
}

func (c *Core) stopTimer() {
	if c.timerRunning {
		c.timerRunning = false
		c.ready.Timer = TimerStop
	}
}

// cutBlock makes the next block of batch, whose records up to
// persistedOffset are then persisted.
func (c *Core) cutBlock(batch []*cb.Envelope, persistedOffset int64, isConfig bool) {
	data := make([][]byte, len(batch))
	var raw [][]byte
	if !isConfig {
		raw = c.pendingRaw[:len(batch)]
	}
	for i, env := range batch {
		if raw != nil && raw[i] != nil {
			data[i] = raw[i]
		} else {
			data[i] = protoutil.MarshalOrPanic(env)
		}
	}
	if !isConfig {
		n := copy(c.pendingRaw, c.pendingRaw[len(batch):])
		clear(c.pendingRaw[n:])
		c.pendingRaw = c.pendingRaw[:n]
	}
	b := protoutil.NewBlock(c.nextNumber, c.prevHash, data)
	if isConfig {
		c.lastConfigBlock = c.nextNumber
	}
	md := &ab.KafkaMetadata{
		LastOffsetPersisted:         persistedOffset,
		LastOriginalOffsetProcessed: c.lastOriginalOffsetProcessed,
		LastResubmittedConfigOffset: c.lastResubmittedConfigOffset,
		TopicId:                     c.topicID,
		Persisted:                   c.fingerprint(persistedOffset),
		ResubmittedAgain:            c.pruneResubmittedAgain(),
	}
	setOrdererMetadata(b, md, c.lastConfigBlock)
	c.ready.Blocks = append(c.ready.Blocks, Block{Block: b, Metadata: md, IsConfig: isConfig})
	c.prevHash = protoutil.HeaderHash(b.Header)
	c.nextNumber++
	c.lastOffsetPersisted = persistedOffset
}

// markResubmittedAgain records that the re-submission of the message
// first consumed at original offset o was re-submitted again.
func (c *Core) markResubmittedAgain(o int64) {
	if c.resubmittedAgain == nil {
		c.resubmittedAgain = make(map[int64]bool)
	}
	c.resubmittedAgain[o] = true
}

// pruneResubmittedAgain forgets the original offsets at or below
// lastOriginalOffsetProcessed, whose copies are duplicates anyway, and
// returns the others in increasing order: what a block records, and a
// core restarted from it restores.
func (c *Core) pruneResubmittedAgain() []int64 {
	var out []int64
	for o := range c.resubmittedAgain {
		if o <= c.lastOriginalOffsetProcessed {
			delete(c.resubmittedAgain, o)
			continue
		}
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// fingerprint returns the fingerprint of the last record consumed at or
// before offset: the current record, or the one before it (a block that
// leaves the current record pending records offset-1), or nil when no
// record was persisted yet.
func (c *Core) fingerprint(offset int64) *ab.LogFingerprint {
	for _, r := range []*fingerprinted{&c.cur, &c.prev} {
		if (r.set || r.hash != nil) && r.offset <= offset {
			return r.proto()
		}
	}
	return nil
}

// fingerprinted is a record whose fingerprint a block may need: its value,
// hashed only when a block records it, or its hash as a block recorded it.
type fingerprinted struct {
	offset int64
	epoch  int32
	value  []byte
	hash   []byte
	set    bool // consumed by this core (value is valid)
}

func (r *fingerprinted) proto() *ab.LogFingerprint {
	if r.hash == nil {
		h := sha256.Sum256(r.value)
		r.hash = h[:]
	}
	return &ab.LogFingerprint{Offset: r.offset, LeaderEpoch: r.epoch, ValueHash: r.hash}
}

// setOrdererMetadata writes the metadata every node writes alike, as Fabric
// 1.4.12 does: the KafkaMetadata in the ORDERER slot, the last config
// block's number in the LAST_CONFIG slot, and both in the value of the
// SIGNATURES slot (an OrdererBlockMetadata whose consenter_metadata is the
// ORDERER slot's bytes), which each node then signs with its own key.
func setOrdererMetadata(b *cb.Block, md *ab.KafkaMetadata, lastConfig uint64) {
	orderer := protoutil.MarshalOrPanic(&cb.Metadata{Value: protoutil.MarshalOrPanic(md)})
	lc := &cb.LastConfig{Index: lastConfig}
	b.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER] = orderer
	protoutil.SetMetadata(b, cb.BlockMetadataIndex_LAST_CONFIG, &cb.Metadata{Value: protoutil.MarshalOrPanic(lc)})
	protoutil.SetMetadata(b, cb.BlockMetadataIndex_SIGNATURES, &cb.Metadata{
		Value: protoutil.MarshalOrPanic(&cb.OrdererBlockMetadata{LastConfig: lc, ConsenterMetadata: orderer}),
	})
}
