package consensustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Defaults of NewCluster.
const (
	// DefaultNodes is the number of ordering nodes of a Cluster.
	DefaultNodes = 3
	// DefaultChannel is the channel a Cluster serves when no channel is
	// given with WithChannels or WithChannel.
	DefaultChannel = "testchannel"
	// DefaultOrg is the MSP ID of the organisation a Cluster generates.
	DefaultOrg = "Org1MSP"
	// DefaultBatchTimeout is the batch timeout of generated channels.
	DefaultBatchTimeout = 50 * time.Millisecond
	// DefaultBatchSize is the MaxMessageCount of generated channels.
	DefaultBatchSize = 10
)

// FastRetryPolicy is the retry policy of a Cluster's nodes unless
// overridden with WithConsenterOpts: Kafka set-up is retried every 50ms for
// 10s, then every 500ms for 20s more.
func FastRetryPolicy() consensus.RetryPolicy {
	return consensus.RetryPolicy{
		ShortInterval: 50 * time.Millisecond, ShortTotal: 10 * time.Second,
		LongInterval: 500 * time.Millisecond, LongTotal: 20 * time.Second,
	}
}

// ClusterOption configures NewCluster.
type ClusterOption func(*clusterConfig)

type channelSpec struct {
	name    string
	genesis *cb.Block // nil: generated
}

type clusterConfig struct {
	nodes        int
	channels     []channelSpec
	dir          string
	opts         []consensus.Option
	logger       *slog.Logger
	batchSize    uint32
	absoluteMax  uint32
	batchTimeout time.Duration
	unsigned     bool
	noSources    bool
}

// WithoutBlockSources stops the nodes from serving each other blocks: by
// default every node's consenter has the other nodes as block sources
// (consensus.WithBlockSources), to catch up from when its log lost records.
func WithoutBlockSources() ClusterOption { return func(c *clusterConfig) { c.noSources = true } }

// WithNodes sets the number of ordering nodes (default DefaultNodes).
func WithNodes(n int) ClusterOption { return func(c *clusterConfig) { c.nodes = n } }

// WithChannels adds channels whose genesis block the cluster generates:
// the generated organisation (see Cluster.Client) is their only member and
// administrator, with Fabric's default policies, and their batch size and
// timeout are set by WithBatchSize and WithBatchTimeout.
func WithChannels(names ...string) ClusterOption {
	return func(c *clusterConfig) {
		for _, n := range names {
			c.channels = append(c.channels, channelSpec{name: n})
		}
	}
}

// WithChannel adds a channel with the given genesis block. Envelopes signed
// by the cluster's generated identities are valid on it only if its
// configuration makes them so.
func WithChannel(name string, genesis *cb.Block) ClusterOption {
	return func(c *clusterConfig) { c.channels = append(c.channels, channelSpec{name: name, genesis: genesis}) }
}

// WithFileLedgers stores every node's ledgers as ledger.File in
// dir/node<i>/<channel>, so that Node.Restart reads them back from disk.
// Without it, ledgers are in memory and survive Node.Stop in memory only.
func WithFileLedgers(dir string) ClusterOption { return func(c *clusterConfig) { c.dir = dir } }

// WithConsenterOpts passes options to every node's consensus.NewConsenter,
// after the cluster's own (seed brokers, FastRetryPolicy, logger, signer,
// quick kgo metadata refresh and retry backoff), which they override. A
// Kafka started with WithTLS or WithSASLUser needs consensus.WithTLS and
// consensus.WithSASL here.
func WithConsenterOpts(opts ...consensus.Option) ClusterOption {
	return func(c *clusterConfig) { c.opts = append(c.opts, opts...) }
}

// WithNodeLogger sends the nodes' logs to l, each record tagged with
// "node". By default they are discarded.
func WithNodeLogger(l *slog.Logger) ClusterOption { return func(c *clusterConfig) { c.logger = l } }

// WithBatchSize sets the MaxMessageCount (default DefaultBatchSize) and
// AbsoluteMaxBytes (0 keeps the default of 1 MiB) of generated channels;
// PreferredMaxBytes is half of AbsoluteMaxBytes.
func WithBatchSize(maxMessageCount, absoluteMaxBytes uint32) ClusterOption {
	return func(c *clusterConfig) { c.batchSize, c.absoluteMax = maxMessageCount, absoluteMaxBytes }
}

// WithBatchTimeout sets the batch timeout of generated channels (default
// DefaultBatchTimeout).
func WithBatchTimeout(d time.Duration) ClusterOption {
	return func(c *clusterConfig) { c.batchTimeout = d }
}

// WithUnsignedBlocks makes the nodes write unsigned blocks. By default each
// node has its own identity of the generated organisation and signs every
// block it writes.
func WithUnsignedBlocks() ClusterOption { return func(c *clusterConfig) { c.unsigned = true } }

func (c *clusterConfig) validate() error {
	if c.nodes < 1 {
		return fmt.Errorf("consensustest: WithNodes(%d): need at least one node", c.nodes)
	}
	if c.batchSize < 1 {
		return fmt.Errorf("consensustest: WithBatchSize(%d, ...): need at least one message per batch", c.batchSize)
	}
	if c.batchTimeout <= 0 {
		return fmt.Errorf("consensustest: WithBatchTimeout(%v): must be positive", c.batchTimeout)
	}
	seen := make(map[string]bool)
	for _, ch := range c.channels {
		if err := consensus.ValidTopicName(ch.name); err != nil {
			return fmt.Errorf("consensustest: channel %q: %w", ch.name, err)
		}
		if seen[ch.name] {
			return fmt.Errorf("consensustest: channel %q given twice", ch.name)
		}
		seen[ch.name] = true
	}
	return nil
}

// Cluster is a set of ordering nodes, each a consensus.Consenter serving the
// same channels on one Kafka, with a ledger per node and channel: a whole
// ordering service in one process, for tests and experiments. Create it
// with NewCluster, start it with Start, stop it with Close. Its methods are
// safe for concurrent use.
//
// The cluster generates an organisation (MSP DefaultOrg) with a client
// identity, an administrator and one identity per node, which signs the
// node's blocks. Generated channels admit envelopes signed by the client
// (Envelope builds them) and config updates signed by the administrator
// (ConfigUpdate builds them).
type Cluster struct {
	k        *Kafka
	cfg      clusterConfig
	channels []string
	genesis  map[string]*cb.Block
	client   msp.SigningIdentity
	admin    msp.SigningIdentity
	nodes    []*Node
	next     atomic.Uint64 // round robin of Order
	closed   atomic.Bool
}

// NewCluster creates the nodes of a cluster on k and their ledgers, and
// creates (but does not start) every node's chains. With no channel
// option, the cluster serves DefaultChannel.
func NewCluster(k *Kafka, opts ...ClusterOption) (*Cluster, error) {
	cfg := clusterConfig{nodes: DefaultNodes, batchSize: DefaultBatchSize, batchTimeout: DefaultBatchTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.channels) == 0 {
		cfg.channels = []channelSpec{{name: DefaultChannel}}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if k == nil {
		return nil, errors.New("consensustest: NewCluster: nil Kafka")
	}

	ca := testutil.NewCA(nil, DefaultOrg)
	c := &Cluster{
		k:       k,
		cfg:     cfg,
		genesis: make(map[string]*cb.Block),
		client:  ca.Issue("client").SigningIdentity,
		admin:   ca.Issue("admin", testutil.ListedAdmin()).SigningIdentity,
	}
	signers := make([]msp.SigningIdentity, cfg.nodes)
	for i := range signers {
		signers[i] = ca.Issue(fmt.Sprintf("orderer%d", i)).SigningIdentity
	}
	absMax := cfg.absoluteMax
	if absMax == 0 {
		absMax = 1 << 20
	}
	for _, spec := range cfg.channels {
		g := spec.genesis
		if g == nil {
			chCfg := testutil.ChannelConfig(spec.name, []*testutil.CA{ca},
				testutil.WithOrdererOrgs(ca),
				testutil.WithBatchSize(cfg.batchSize, absMax, absMax/2),
				testutil.WithBatchTimeout(cfg.batchTimeout))
			var err error
			if g, err = channelconfig.GenesisBlock(chCfg); err != nil {
				return nil, fmt.Errorf("consensustest: genesis block of %s: %w", spec.name, err)
			}
		}
		c.channels = append(c.channels, spec.name)
		c.genesis[spec.name] = g
	}
	for i := range cfg.nodes {
		n := &Node{c: c, id: i, signer: signers[i], ledgers: make(map[string]ledger.Ledger), chains: make(map[string]*consensus.Chain)}
		if cfg.unsigned {
			n.signer = nil
		}
		if err := n.build(); err != nil {
			c.Close()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// Start starts every node's chains; they set up Kafka in the background
// (see WaitReady). It returns ctx's error if ctx is done, or the error of a
// node that cannot be started.
func (c *Cluster) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	return nil
}

// WaitReady waits until every chain of every running node accepts
// envelopes (consensus.Chain.WaitReady).
func (c *Cluster) WaitReady(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i, 0 <= i < Len().
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Channels returns the channels the cluster serves.
func (c *Cluster) Channels() []string { return slices.Clone(c.channels) }

// Genesis returns the genesis block of channel, or nil.
func (c *Cluster) Genesis(channel string) *cb.Block { return c.genesis[channel] }

// Kafka returns the Kafka the cluster runs on.
func (c *Cluster) Kafka() *Kafka { return c.k }

// Client returns the generated client identity, a member of the generated
// organisation: it may write to generated channels.
func (c *Cluster) Client() msp.SigningIdentity { return c.client }

// Admin returns the generated administrator of the generated organisation:
// its signature satisfies the Admins policy of generated channels.
func (c *Cluster) Admin() msp.SigningIdentity { return c.admin }

// Envelope returns a normal (ENDORSER_TRANSACTION) envelope for channel
// carrying data, signed by the cluster's client identity, with a fresh
// transaction ID.
func (c *Cluster) Envelope(channel string, data []byte) *cb.Envelope {
	return NewEnvelope(c.client, channel, data)
}

// NewEnvelope returns a normal (ENDORSER_TRANSACTION) envelope for channel
// carrying data, signed by signer, with a fresh nonce and transaction ID.
// It panics if signer fails to sign.
func NewEnvelope(signer msp.SigningIdentity, channel string, data []byte) *cb.Envelope {
	return testutil.Envelope(signer, channel, cb.HeaderType_ENDORSER_TRANSACTION, data)
}

// EnvelopeData returns the payload data of an envelope as stored in a
// block's data, and its transaction ID.
func EnvelopeData(envBytes []byte) (data []byte, txID string, err error) {
	env, err := protoutil.UnmarshalEnvelope(envBytes)
	if err != nil {
		return nil, "", err
	}
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return nil, "", err
	}
	return h.Payload.GetData(), h.ChannelHeader.GetTxId(), nil
}

// ConfigUpdate returns a config envelope for channel that proposes its
// current configuration (as the first running node sees it) changed by
// update, with the next sequence, signed by the cluster's administrator.
// The channel's configuration must be a consensus.BundleConfig (the
// default).
func (c *Cluster) ConfigUpdate(channel string, update func(*ccpb.ChannelConfig)) (*cb.Envelope, error) {
	var cur consensus.ChannelConfig
	for _, n := range c.nodes {
		if ch := n.Chain(channel); ch != nil && n.Running() {
			cur = ch.Config()
			break
		}
	}
	if cur == nil {
		return nil, fmt.Errorf("consensustest: no running node serves channel %q", channel)
	}
	bc, ok := cur.(consensus.BundleConfig)
	if !ok {
		return nil, fmt.Errorf("consensustest: channel %s: configuration is a %T, not a consensus.BundleConfig", channel, cur)
	}
	next := bc.Config()
	update(next)
	next.Sequence = bc.Sequence() + 1
	return channelconfig.NewConfigEnvelope(next, c.admin, c.admin)
}

// Order validates env on one running node (chosen round robin) and orders
// it there, returning once Kafka acknowledged it.
func (c *Cluster) Order(ctx context.Context, channel string, env *cb.Envelope) error {
	for range c.nodes {
		n := c.nodes[int(c.next.Add(1)-1)%len(c.nodes)]
		if n.Running() {
			return n.Order(ctx, channel, env)
		}
	}
	return fmt.Errorf("%w: no running node", consensus.ErrNotReady)
}

// WaitHeight waits until the ledger of channel on every running node has
// at least h blocks. It fails early when a running node's chain halts.
func (c *Cluster) WaitHeight(ctx context.Context, channel string, h uint64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		done := true
		for _, n := range c.nodes {
			if !n.Running() {
				continue
			}
			ch := n.Chain(channel)
			if ch == nil {
				return fmt.Errorf("consensustest: node %d does not serve channel %q", n.id, channel)
			}
			if err := ch.Err(); err != nil {
				return fmt.Errorf("consensustest: node %d: %w", n.id, err)
			}
			if ch.Height() < h {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensustest: waiting for height %d of %s (heights %v): %w", h, channel, c.Heights(channel), ctx.Err())
		case <-t.C:
		}
	}
}

// Heights returns the height of channel's ledger on every node, 0 for a
// node whose ledger is closed.
func (c *Cluster) Heights(channel string) []uint64 {
	hs := make([]uint64, len(c.nodes))
	for i, n := range c.nodes {
		if l := n.Ledger(channel); l != nil {
			hs[i] = l.Height()
		}
	}
	return hs
}

// CheckConsistent compares the ledgers of channel on every node whose
// ledger is open (running nodes, and stopped nodes with memory ledgers)
// with CompareLedgers, up to the lowest height among them.
func (c *Cluster) CheckConsistent(channel string) error {
	var ref ledger.Reader
	refID := -1
	for _, n := range c.nodes {
		l := n.Ledger(channel)
		if l == nil {
			continue
		}
		if ref == nil {
			ref, refID = l, n.id
			continue
		}
		if err := CompareLedgers(ref, l); err != nil {
			return fmt.Errorf("consensustest: channel %s: node %d vs node %d: %w", channel, refID, n.id, err)
		}
	}
	return nil
}

// CompareLedgers reports the first block, up to the lower of the two
// heights, that differs between a and b: in its header (number, previous
// hash, data hash), its data (the envelopes) or its LAST_CONFIG and ORDERER
// metadata. The SIGNATURES metadata is not compared: each node signs with
// its own identity. The error names the block and what differs; nil means
// the common prefix is identical. Callers that need equal heights compare
// Height themselves.
func CompareLedgers(a, b ledger.Reader) error {
	h := min(a.Height(), b.Height())
	for i := range h {
		ba, err := a.Block(i)
		if err != nil {
			return fmt.Errorf("reading block %d of the first ledger: %w", i, err)
		}
		bb, err := b.Block(i)
		if err != nil {
			return fmt.Errorf("reading block %d of the second ledger: %w", i, err)
		}
		if err := compareBlocks(ba, bb); err != nil {
			return fmt.Errorf("block %d differs: %w", i, err)
		}
	}
	return nil
}

func compareBlocks(a, b *cb.Block) error {
	ha, hb := a.GetHeader(), b.GetHeader()
	switch {
	case ha.GetNumber() != hb.GetNumber():
		return fmt.Errorf("number %d vs %d", ha.GetNumber(), hb.GetNumber())
	case !bytes.Equal(ha.GetPreviousHash(), hb.GetPreviousHash()):
		return fmt.Errorf("previous hash %x vs %x", ha.GetPreviousHash(), hb.GetPreviousHash())
	case !bytes.Equal(ha.GetDataHash(), hb.GetDataHash()):
		return fmt.Errorf("data hash %x vs %x (%d vs %d envelopes)", ha.GetDataHash(), hb.GetDataHash(),
			len(a.GetData().GetData()), len(b.GetData().GetData()))
	}
	da, db := a.GetData().GetData(), b.GetData().GetData()
	if len(da) != len(db) {
		return fmt.Errorf("%d vs %d envelopes", len(da), len(db))
	}
	for j := range da {
		if !bytes.Equal(da[j], db[j]) {
			return fmt.Errorf("envelope %d: %s vs %s", j, describeEnvelope(da[j]), describeEnvelope(db[j]))
		}
	}
	for _, idx := range []cb.BlockMetadataIndex{cb.BlockMetadataIndex_LAST_CONFIG, cb.BlockMetadataIndex_ORDERER} {
		ma, errA := protoutil.Metadata(a, idx)
		mb, errB := protoutil.Metadata(b, idx)
		if (errA == nil) != (errB == nil) {
			return fmt.Errorf("%s metadata: %v vs %v", idx, errA, errB)
		}
		if !bytes.Equal(ma.GetValue(), mb.GetValue()) {
			return fmt.Errorf("%s metadata: %s vs %s", idx, describeMetadata(idx, ma), describeMetadata(idx, mb))
		}
	}
	return nil
}

func describeEnvelope(b []byte) string {
	_, txID, err := EnvelopeData(b)
	if err != nil {
		return fmt.Sprintf("undecodable envelope (%d bytes)", len(b))
	}
	return "tx " + txID
}

func describeMetadata(idx cb.BlockMetadataIndex, m *cb.Metadata) string {
	var v proto.Message
	switch idx {
	case cb.BlockMetadataIndex_ORDERER:
		v = new(ab.KafkaMetadata)
	case cb.BlockMetadataIndex_LAST_CONFIG:
		v = new(cb.LastConfig)
	}
	if err := proto.Unmarshal(m.GetValue(), v); err != nil {
		return fmt.Sprintf("%x", m.GetValue())
	}
	return fmt.Sprintf("{%v}", v)
}

// Close stops every node and closes every ledger. It does not close the
// Kafka. Close is idempotent.
func (c *Cluster) Close() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.close() }()
	}
	wg.Wait()
}

// Node is one ordering node of a Cluster: a consensus.Consenter with a
// chain and a ledger per channel. Stop and Restart simulate a node crash
// and recovery; the node's identity stays the same.
type Node struct {
	c      *Cluster
	id     int
	signer msp.SigningIdentity

	mu      sync.Mutex
	cons    *consensus.Consenter
	chains  map[string]*consensus.Chain
	ledgers map[string]ledger.Ledger
	running bool
}

// ID returns the node's index in the cluster.
func (n *Node) ID() int { return n.id }

// Consenter returns the node's current consenter (a new one after each
// Restart), or nil while stopped.
func (n *Node) Consenter() *consensus.Consenter {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cons
}

// Chain returns the node's current chain of channel, or nil. After Stop it
// returns the halted chain until Restart.
func (n *Node) Chain(channel string) *consensus.Chain {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.chains[channel]
}

// Ledger returns the node's ledger of channel, or nil when it is closed (a
// stopped node with file ledgers).
func (n *Node) Ledger(channel string) ledger.Ledger {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ledgers[channel]
}

// Running reports whether the node has been started and not stopped since.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

// WaitReady waits until every chain of the node accepts envelopes. A node
// that is not running is skipped.
func (n *Node) WaitReady(ctx context.Context) error {
	n.mu.Lock()
	running := n.running
	chains := make([]*consensus.Chain, 0, len(n.chains))
	for _, ch := range n.chains {
		chains = append(chains, ch)
	}
	n.mu.Unlock()
	if !running {
		return nil
	}
	for _, ch := range chains {
		if err := ch.WaitReady(ctx); err != nil {
			return fmt.Errorf("consensustest: node %d, channel %s: %w", n.id, ch.Channel(), err)
		}
	}
	return nil
}

// Order validates env with the node's chain of channel (ProcessNormal) and
// orders it (Order).
func (n *Node) Order(ctx context.Context, channel string, env *cb.Envelope) error {
	ch := n.Chain(channel)
	if ch == nil {
		return fmt.Errorf("consensustest: node %d does not serve channel %q", n.id, channel)
	}
	seq, err := ch.ProcessNormal(env)
	if err != nil {
		return err
	}
	return ch.Order(ctx, env, seq)
}

// Stop halts the node's consenter and waits for its chains, then closes
// its file ledgers (memory ledgers stay readable). Stopping a stopped node
// does nothing.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopLocked()
}

func (n *Node) stopLocked() {
	if n.cons != nil {
		n.cons.Close()
		n.cons = nil
	}
	n.running = false
	if n.c.cfg.dir != "" {
		for name, l := range n.ledgers {
			l.Close()
			delete(n.ledgers, name)
		}
	}
}

// Restart stops the node if it runs, reopens its ledgers (from disk with
// WithFileLedgers), creates a new consenter and chains on them and starts
// them. The chains resume after the last block of their ledgers.
func (n *Node) Restart() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c.closed.Load() {
		return errors.New("consensustest: cluster closed")
	}
	n.stopLocked()
	if err := n.buildLocked(); err != nil {
		return err
	}
	return n.startLocked()
}

func (n *Node) build() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.buildLocked()
}

// buildLocked opens the ledgers that are not open and creates a consenter
// and its chains.
func (n *Node) buildLocked() error {
	c := n.c
	log := c.cfg.logger.With("node", n.id)
	addrs := c.k.Addrs()
	ts := consensus.DefaultTopicSettings()
	if len(addrs) < int(ts.ReplicationFactor) {
		ts = consensus.TopicSettings{ReplicationFactor: int16(len(addrs)), MinInsyncReplicas: min(ts.MinInsyncReplicas, len(addrs))}
	}
	opts := []consensus.Option{
		consensus.WithSeedBrokers(addrs...),
		consensus.WithClientID(fmt.Sprintf("node%d", n.id)),
		consensus.WithRetry(FastRetryPolicy()),
		consensus.WithTopicSettings(ts),
		consensus.WithLogger(log),
		consensus.WithKgoOpts(
			kgo.MetadataMinAge(100*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		),
	}
	if n.signer != nil {
		opts = append(opts, consensus.WithSigner(n.signer))
	}
	if !c.cfg.noSources {
		for i := range c.cfg.nodes {
			if i != n.id {
				opts = append(opts, consensus.WithBlockSources(nodeSource{c: c, id: i}))
			}
		}
	}
	opts = append(opts, c.cfg.opts...)
	cons, err := consensus.NewConsenter(opts...)
	if err != nil {
		return fmt.Errorf("consensustest: node %d: %w", n.id, err)
	}
	chains := make(map[string]*consensus.Chain, len(c.channels))
	for _, name := range c.channels {
		l := n.ledgers[name]
		if l == nil {
			if c.cfg.dir != "" {
				f, err := ledger.OpenFile(filepath.Join(c.cfg.dir, fmt.Sprintf("node%d", n.id), name), ledger.WithLogger(log))
				if err != nil {
					cons.Close()
					return fmt.Errorf("consensustest: node %d, channel %s: %w", n.id, name, err)
				}
				l = f
			} else {
				l = ledger.NewMemory()
			}
			n.ledgers[name] = l
		}
		ch, err := cons.NewChain(name, l, c.genesis[name])
		if err != nil {
			cons.Close()
			return fmt.Errorf("consensustest: node %d: %w", n.id, err)
		}
		chains[name] = ch
	}
	n.cons, n.chains = cons, chains
	return nil
}

func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return nil
	}
	if n.cons == nil {
		return fmt.Errorf("consensustest: node %d is stopped: use Restart", n.id)
	}
	return n.startLocked()
}

func (n *Node) startLocked() error {
	for _, ch := range n.chains {
		ch.Start()
	}
	n.running = true
	return nil
}

func (n *Node) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopLocked()
	for name, l := range n.ledgers {
		l.Close()
		delete(n.ledgers, name)
	}
}

// nodeSource serves the blocks of node id of c, found when asked (the
// nodes of a cluster are built one after the other).
type nodeSource struct {
	c  *Cluster
	id int
}

func (s nodeSource) String() string { return fmt.Sprintf("node%d", s.id) }

// Blocks serves the blocks of the node's ledger.
func (s nodeSource) Blocks(ctx context.Context, channel string, from uint64, fn func(*cb.Block) error) error {
	if s.id >= len(s.c.nodes) {
		return fmt.Errorf("consensustest: node %d does not exist yet", s.id)
	}
	return s.c.nodes[s.id].Blocks(ctx, channel, from, fn)
}

var _ consensus.BlockSource = (*Node)(nil)

// Blocks serves, as a consensus.BlockSource, the blocks of the node's
// ledger of channel from number from to its last block.
func (n *Node) Blocks(ctx context.Context, channel string, from uint64, fn func(*cb.Block) error) error {
	l := n.Ledger(channel)
	if l == nil {
		return fmt.Errorf("consensustest: node %d has no open ledger of %q", n.id, channel)
	}
	for h := l.Height(); from < h; from++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := l.Block(from)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// String names the node, as "node0".
func (n *Node) String() string { return fmt.Sprintf("node%d", n.id) }
