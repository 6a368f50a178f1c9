package coretest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Log is one channel's partition held in memory, with the nodes that
// consume it, each a consensus.Core driven the way a chain's loop drives
// it:
//
//   - every record appended to the log is stepped, at once, by every
//     running node, in node order; the blocks each node's core cuts are
//     appended to that node's ledger (Blocks);
//   - what a core asks to produce (Ready.Produce: time-to-cuts,
//     re-submissions; Ready.ConfigResubmissions, signed with WithSigner's
//     identity, or the node stops) is queued by that node, and appended to the log when
//     delivered (Deliver, Flush; at once unless WithManualDelivery).
//     Each node produces its own copy, as real nodes do, so the log gets
//     duplicates and competing time-to-cuts, which the cores must sort out;
//   - batch timers run on a fake clock (Advance): a timer started by
//     Ready.Timer expires Ready.BatchTimeout later, and the core's
//     TimerFired is called then.
//
// A Log is deterministic: the same calls with the same options give the
// same log and the same blocks. It is not safe for concurrent use. The
// methods that take a node number i panic when i is not in [0, Nodes()).
type Log struct {
	channel  string
	genesis  *cb.Block
	parser   consensus.ConfigParser
	coreOpts []consensus.CoreOption
	hook     func(node int, rec *consensus.Record, r *consensus.Ready)
	signer   consensus.Signer // signs Ready.ConfigResubmissions; nil: the node stops
	rng      *rand.Rand
	random   bool
	dupRate  float64
	manual   bool

	records [][]byte
	nodes   []*node
	now     time.Duration

	submitted []submission
}

type node struct {
	core    *consensus.Core
	running bool
	blocks  []*cb.Block
	configs []consensus.ChannelConfig // in force after blocks[i]
	outbox  [][]byte
	armed   bool
	expires time.Duration
}

type submission struct {
	key string // the envelope's bytes
	env *cb.Envelope
}

// Option configures NewLog.
type Option func(*Log)

// WithChannel names the channel (default "experiment"); it appears in the
// cores' errors.
func WithChannel(name string) Option { return func(l *Log) { l.channel = name } }

// WithGenesis sets the channel's block 0, from which every node starts
// (default Genesis()).
func WithGenesis(b *cb.Block) Option { return func(l *Log) { l.genesis = b } }

// WithConfigParser makes a node that starts again read its configuration
// from the config block its last block names (LAST_CONFIG), through p, as
// a Consenter does, instead of the Log remembering the configuration each
// node had; CheckRestarts reads them so too. With a parser, NewLog's cfg
// may be nil: the nodes then start with the genesis block's configuration,
// read through p.
func WithConfigParser(p consensus.ConfigParser) Option { return func(l *Log) { l.parser = p } }

// WithCoreOptions creates every core with opts (for example
// consensus.ValidateEveryEnvelope()).
func WithCoreOptions(opts ...consensus.CoreOption) Option {
	return func(l *Log) { l.coreOpts = append(l.coreOpts, opts...) }
}

// WithSigner makes every node sign the configurations its core computes
// again (Ready.ConfigResubmissions) with signer and queue them, as a chain
// does. Without it a node that must sign one stops instead, as a chain
// halts; channels whose configuration is not a
// consensus.ConfigReprocessor never need one.
func WithSigner(signer consensus.Signer) Option { return func(l *Log) { l.signer = signer } }

// WithRandomInterleaving delivers the nodes' queued messages in a random
// order drawn from seed: each delivery takes the oldest message of a node
// chosen at random among those with messages queued (a node's own
// messages keep their order, as a producer's do). Without it, the node
// with the lowest number goes first. The seed also drives
// WithDuplicateProduces.
func WithRandomInterleaving(seed uint64) Option {
	return func(l *Log) { l.rng, l.random = rand.New(rand.NewPCG(seed, 0x636f726574657374)), true }
}

// WithDuplicateProduces appends each delivered message twice with
// probability rate (0 to 1): a producer retry that wrote a record twice.
func WithDuplicateProduces(rate float64) Option { return func(l *Log) { l.dupRate = rate } }

// WithManualDelivery leaves the nodes' messages queued until Deliver,
// DeliverFrom, Flush or Settle appends them, so that a test chooses what reaches the
// log before them. By default every call that makes nodes produce
// delivers everything before it returns.
func WithManualDelivery() Option { return func(l *Log) { l.manual = true } }

// WithReadyHook calls f with every Ready of every node, after the Log
// carried it out: rec is the record stepped, nil for a timer expiry. The
// Ready is valid only during the call.
func WithReadyHook(f func(node int, rec *consensus.Record, r *consensus.Ready)) Option {
	return func(l *Log) { l.hook = f }
}

// NewLog returns an empty log consumed by nodes nodes, each starting from
// the genesis block with configuration cfg, all running.
func NewLog(nodes int, cfg consensus.ChannelConfig, opts ...Option) (*Log, error) {
	l := &Log{channel: "experiment"}
	for _, o := range opts {
		o(l)
	}
	if nodes < 1 {
		return nil, fmt.Errorf("coretest: %d nodes: need at least one", nodes)
	}
	if l.dupRate < 0 || l.dupRate > 1 {
		return nil, fmt.Errorf("coretest: duplicate rate %v: must be between 0 and 1", l.dupRate)
	}
	if l.rng == nil {
		l.rng = rand.New(rand.NewPCG(1, 0x636f726574657374))
	}
	if l.genesis == nil {
		l.genesis = Genesis()
	}
	if cfg == nil {
		if l.parser == nil {
			return nil, errors.New("coretest: no configuration (give one, or WithConfigParser to read the genesis block's)")
		}
		var err error
		if cfg, err = l.parser(l.genesis); err != nil {
			return nil, fmt.Errorf("coretest: genesis block: %w", err)
		}
	}
	for range nodes {
		n := &node{blocks: []*cb.Block{l.genesis}, configs: []consensus.ChannelConfig{cfg}}
		l.nodes = append(l.nodes, n)
	}
	for i := range l.nodes {
		if err := l.startWith(i, cfg); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Nodes is the number of nodes.
func (l *Log) Nodes() int { return len(l.nodes) }

// Records returns the log: the value of the record at offset i is
// Records()[i]. The slice and its values are the Log's: do not modify them.
func (l *Log) Records() [][]byte { return l.records }

// Blocks returns node i's ledger, block 0 (the genesis block) first. The
// blocks are the Log's: do not modify them.
func (l *Log) Blocks(i int) []*cb.Block { return l.nodes[i].blocks }

// Core returns node i's core, for inspection (Height, Position, Config,
// Resubmitting...). Stepping it directly desynchronises it from the Log.
func (l *Log) Core(i int) *consensus.Core { return l.nodes[i].core }

// Running reports whether node i is running (see Stop).
func (l *Log) Running(i int) bool { return l.nodes[i].running }

// Queued is the number of messages node i has produced that are not in the
// log yet.
func (l *Log) Queued(i int) int { return len(l.nodes[i].outbox) }

// Now is the time on the Log's clock: how far Advance has moved it.
func (l *Log) Now() time.Duration { return l.now }

// Config returns the configuration in force at the end of the log: the
// running nodes' (they all consumed the whole log), or, when every node
// is stopped, node 0's when it stopped.
func (l *Log) Config() consensus.ChannelConfig {
	for _, n := range l.nodes {
		if n.running {
			return n.core.Config()
		}
	}
	return l.nodes[0].configs[len(l.nodes[0].configs)-1]
}

// Append appends records to the log; every running node steps each one.
// They are not submissions (see Submit): CheckExactlyOnce does not look
// for them.
func (l *Log) Append(values ...[]byte) {
	for _, v := range values {
		l.append(v)
	}
	l.autoFlush()
}

// Submit appends envs as normal envelopes validated at the sequence of the
// configuration in force (Config), as a node's ingress produces them, and
// records them for CheckExactlyOnce. Like a stranger's records, they are
// not checked here: the cores validate an envelope only when it was
// validated at an older sequence (or with consensus.ValidateEveryEnvelope),
// and Submit does not wait while a re-submitted config is in flight.
func (l *Log) Submit(envs ...*cb.Envelope) { l.SubmitAt(l.Config().Sequence(), envs...) }

// SubmitAt is Submit for envelopes validated at sequence seq: below the
// current sequence, they stand for envelopes a node validated before it
// consumed a config update, which the cores validate again.
func (l *Log) SubmitAt(seq uint64, envs ...*cb.Envelope) {
	for _, env := range envs {
		raw := protoutil.MarshalOrPanic(env)
		l.submitted = append(l.submitted, submission{key: string(raw), env: env})
		l.append(Normal(env, seq))
	}
	l.autoFlush()
}

// SubmitConfig is Submit for a config envelope.
func (l *Log) SubmitConfig(env *cb.Envelope) { l.SubmitConfigAt(l.Config().Sequence(), env) }

// SubmitConfigAt is SubmitAt for a config envelope.
func (l *Log) SubmitConfigAt(seq uint64, env *cb.Envelope) {
	raw := protoutil.MarshalOrPanic(env)
	l.submitted = append(l.submitted, submission{key: string(raw), env: env})
	l.append(Config(env, seq))
	l.autoFlush()
}

// Deliver appends the next queued message of a node to the log (see
// WithRandomInterleaving) and returns true, or returns false when no
// message is queued. Whatever the record makes the nodes produce is
// queued, even without WithManualDelivery.
func (l *Log) Deliver() bool {
	var ready []int
	for i, n := range l.nodes {
		if len(n.outbox) > 0 {
			ready = append(ready, i)
		}
	}
	if len(ready) == 0 {
		return false
	}
	i := ready[0]
	if l.random {
		i = ready[l.rng.IntN(len(ready))]
	}
	return l.DeliverFrom(i)
}

// DeliverFrom appends the oldest queued message of node i to the log (twice,
// sometimes, with WithDuplicateProduces) and returns true, or returns false
// when node i has none queued.
func (l *Log) DeliverFrom(i int) bool {
	n := l.nodes[i]
	if len(n.outbox) == 0 {
		return false
	}
	v := n.outbox[0]
	n.outbox[0] = nil
	n.outbox = n.outbox[1:]
	l.append(v)
	if l.dupRate > 0 && l.rng.Float64() < l.dupRate {
		l.append(v)
	}
	return true
}

// Flush delivers queued messages until none is left: those the nodes
// produce in response too.
func (l *Log) Flush() {
	for l.Deliver() {
	}
}

func (l *Log) autoFlush() {
	if !l.manual {
		l.Flush()
	}
}

// Advance moves the clock on by d. Each running node's batch timer that
// expires meanwhile fires at its time, in order of expiry, nodes whose
// timers expire together in node order: its core's TimerFired is called
// and the time-to-cut it returns is queued (and delivered, unless
// WithManualDelivery, before a later timer fires).
func (l *Log) Advance(d time.Duration) {
	end := l.now + d
	for {
		at, ok := l.nextExpiry()
		if !ok || at > end {
			break
		}
		l.now = at
		for i, n := range l.nodes {
			if n.running && n.armed && n.expires == at {
				n.armed = false
				l.apply(i, nil, n.core.TimerFired())
			}
		}
		l.autoFlush()
	}
	l.now = end
}

func (l *Log) nextExpiry() (time.Duration, bool) {
	var at time.Duration
	found := false
	for _, n := range l.nodes {
		if n.running && n.armed && (!found || n.expires < at) {
			at, found = n.expires, true
		}
	}
	return at, found
}

// maxSettle bounds the timer expiries Settle waits for.
const maxSettle = 100_000

// Settle runs the log until nothing more happens: it delivers every
// queued message and advances the clock to each timer's expiry, until no
// message is queued and no running node's timer runs. Every envelope in
// the log is then in a block or dropped, as far as the running nodes are
// concerned. It returns an error if that does not happen within 100,000
// timer expiries.
func (l *Log) Settle() error {
	for range maxSettle {
		l.Flush()
		at, ok := l.nextExpiry()
		if !ok {
			return nil
		}
		l.Advance(at - l.now)
	}
	return fmt.Errorf("coretest: the log did not settle after %d timer expiries", maxSettle)
}

// Stop stops node i, as a crash would: it consumes nothing more until
// Start and its timer is stopped. Its ledger stays, and so do the messages
// it had queued: its producer had them in flight, and they still reach the
// log when delivered (DropQueued loses them instead).
func (l *Log) Stop(i int) {
	n := l.nodes[i]
	n.running, n.armed = false, false
}

// DropQueued loses the messages node i has queued and not delivered yet,
// as a producer that dies before sending them does, and returns how many
// there were.
func (l *Log) DropQueued(i int) int {
	n := l.nodes[i]
	k := len(n.outbox)
	clear(n.outbox)
	n.outbox = n.outbox[:0]
	return k
}

// Start starts a stopped node i as a node process does: a new core from
// the last block of its ledger and the configuration in force after it
// (read back through the WithConfigParser parser, if given), which
// consumes the log from its Position (the offset after the one its last
// block persisted) to the end. A running node is left as it is.
func (l *Log) Start(i int) error {
	if l.nodes[i].running {
		return nil
	}
	n := l.nodes[i]
	cfg, err := l.configAfter(i, len(n.blocks)-1)
	if err != nil {
		return err
	}
	if err := l.startWith(i, cfg); err != nil {
		return err
	}
	l.autoFlush()
	return nil
}

// Restart stops node i and starts it again (see Stop and Start).
func (l *Log) Restart(i int) error {
	l.Stop(i)
	return l.Start(i)
}

// startWith starts node i from its last block with configuration cfg and
// consumes the log from there.
func (l *Log) startWith(i int, cfg consensus.ChannelConfig) error {
	n := l.nodes[i]
	last := len(n.blocks) - 1
	core, err := consensus.NewCore(l.channel, consensus.CoreState{LastBlock: n.blocks[last], Config: cfg}, l.coreOpts...)
	if err != nil {
		return fmt.Errorf("coretest: node %d: %w", i, err)
	}
	n.core, n.running = core, true
	for off := core.Position(); off < int64(len(l.records)); off++ {
		l.step(i, off)
	}
	return nil
}

// configAfter returns the configuration in force after block k of node i.
func (l *Log) configAfter(i, k int) (consensus.ChannelConfig, error) {
	n := l.nodes[i]
	if l.parser == nil {
		return n.configs[k], nil
	}
	lc, err := protoutil.LastConfigIndex(n.blocks[k])
	if err != nil {
		return nil, fmt.Errorf("coretest: node %d, block %d: %w", i, k, err)
	}
	if lc >= uint64(len(n.blocks)) {
		return nil, fmt.Errorf("coretest: node %d, block %d: last config block %d beyond the ledger", i, k, lc)
	}
	cfg, err := l.parser(n.blocks[lc])
	if err != nil {
		return nil, fmt.Errorf("coretest: node %d, config block %d: %w", i, lc, err)
	}
	return cfg, nil
}

// append appends one record and steps it on every running node.
func (l *Log) append(v []byte) {
	off := int64(len(l.records))
	l.records = append(l.records, v)
	for i, n := range l.nodes {
		if n.running {
			l.step(i, off)
		}
	}
}

func (l *Log) step(i int, off int64) {
	rec := consensus.Record{Offset: off, Value: l.records[off]}
	l.apply(i, &rec, l.nodes[i].core.Step(rec))
}

// apply carries out a Ready as a chain's loop does.
func (l *Log) apply(i int, rec *consensus.Record, r *consensus.Ready) {
	n := l.nodes[i]
	cfg := n.configs[len(n.configs)-1]
	for _, b := range r.Blocks {
		if b.IsConfig {
			cfg = r.Config
		}
		n.blocks = append(n.blocks, b.Block)
		n.configs = append(n.configs, cfg)
	}
	for _, m := range r.Produce {
		n.outbox = append(n.outbox, protoutil.MarshalOrPanic(m))
	}
	for _, rs := range r.ConfigResubmissions {
		m, err := rs.Message(l.signer)
		if err != nil {
			n.running, n.armed = false, false // as a chain halts
			break
		}
		n.outbox = append(n.outbox, protoutil.MarshalOrPanic(m))
	}
	switch r.Timer {
	case consensus.TimerStart:
		n.armed, n.expires = true, l.now+r.BatchTimeout
	case consensus.TimerStop:
		n.armed = false
	}
	if l.hook != nil {
		l.hook(i, rec, r)
	}
}

// Summary describes node i's blocks after the genesis block, one line per
// block (see FormatBlock).
func (l *Log) Summary(i int) string {
	blocks := l.nodes[i].blocks[1:]
	lines := make([]string, len(blocks))
	for k, b := range blocks {
		lines[k] = FormatBlock(b)
	}
	return strings.Join(lines, "\n")
}
