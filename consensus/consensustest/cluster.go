package consensustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
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
	// DefaultOrg is the MSP ID of the organisation a Cluster generates
	// unless given one with WithOrg.
	DefaultOrg = "Org1MSP"
	// DefaultNodeName is the prefix of the nodes' names: node0, node1, ...
	DefaultNodeName = "node"
	// DefaultBatchTimeout is the batch timeout of generated channels.
	DefaultBatchTimeout = 50 * time.Millisecond
	// DefaultBatchSize is the MaxMessageCount of generated channels.
	DefaultBatchSize = 10
	// DefaultAbsoluteMaxBytes is the AbsoluteMaxBytes of generated
	// channels.
	DefaultAbsoluteMaxBytes = 1 << 20
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

// FastKgoOpts returns the franz-go options a Cluster gives its nodes
// (before WithConsenterOpts): metadata refreshed at most every 100ms
// instead of 5s, and retries after 20ms, so that the nodes recover from
// faults quickly. Give them to clients that are compared with the nodes.
func FastKgoOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
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
	name         string
	channels     []channelSpec
	dir          string
	ledgers      func(node int, channel string) (ledger.Ledger, error)
	opts         []consensus.Option
	logger       *slog.Logger
	batchSize    uint32
	absoluteMax  uint32
	preferredMax uint32
	batchTimeout time.Duration
	unsigned     bool
	noSources    bool
	org          *msptest.CA
	ordererOrg   *msptest.CA
}

// WithoutBlockSources stops the nodes from serving each other blocks: by
// default every node's consenter has the other nodes as block sources
// (consensus.WithBlockSources), to catch up from when its log lost records.
func WithoutBlockSources() ClusterOption { return func(c *clusterConfig) { c.noSources = true } }

// WithNodes sets the number of ordering nodes (default DefaultNodes).
func WithNodes(n int) ClusterOption { return func(c *clusterConfig) { c.nodes = n } }

// WithNodeNames names the nodes prefix0, prefix1, ... (default
// DefaultNodeName): in Node.String, their Kafka client IDs, their
// identities' common names, their file ledgers' folders and the "node"
// attribute of their logs.
func WithNodeNames(prefix string) ClusterOption { return func(c *clusterConfig) { c.name = prefix } }

// WithChannels adds channels whose genesis block the cluster generates:
// the cluster's organisation (WithOrg) is their only application
// organisation and its orderer organisation (WithOrdererOrg) their orderer
// organisation, with Fabric's default policies, the seed brokers recorded
// as their Kafka brokers, and the batch limits of WithBatchSize,
// WithPreferredMaxBytes and WithBatchTimeout.
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
// dir/<node name>/<channel>. Node.Stop closes them and Node.Restart reads
// them back from disk. Without it (and without WithLedgers), ledgers are
// in memory and survive Node.Stop in memory only.
func WithFileLedgers(dir string) ClusterOption { return func(c *clusterConfig) { c.dir = dir } }

// WithLedgers makes open create the ledger of each node (0 to n-1) and
// channel, once, when the cluster is created. These ledgers stay open
// across Node.Stop and Node.Restart; Close closes them. Use it for ledgers
// of your own, such as a file ledger with other options, or one that
// counts what it is given.
func WithLedgers(open func(node int, channel string) (ledger.Ledger, error)) ClusterOption {
	return func(c *clusterConfig) { c.ledgers = open }
}

// WithConsenterOpts passes options to every node's consensus.NewConsenter,
// after the cluster's own (seed brokers, client ID, FastRetryPolicy, topic
// settings, logger, signer, block sources, FastKgoOpts), which they
// override. A Kafka started with WithTLS or
// WithSASLUser needs consensus.WithTLS and consensus.WithSASL here.
func WithConsenterOpts(opts ...consensus.Option) ClusterOption {
	return func(c *clusterConfig) { c.opts = append(c.opts, opts...) }
}

// WithNodeLogger sends the nodes' logs to l, each record with a "node"
// attribute naming the node. By default they go to slog.Default() at level
// WARN and above only, so that a cluster speaks about problems alone; pass
// a logger at INFO to follow the chains' states, or a logger with
// slog.DiscardHandler to silence them.
func WithNodeLogger(l *slog.Logger) ClusterOption { return func(c *clusterConfig) { c.logger = l } }

// WithBatchSize sets the MaxMessageCount (default DefaultBatchSize) and
// AbsoluteMaxBytes (0 keeps DefaultAbsoluteMaxBytes) of generated
// channels; PreferredMaxBytes is half of AbsoluteMaxBytes unless
// WithPreferredMaxBytes.
func WithBatchSize(maxMessageCount, absoluteMaxBytes uint32) ClusterOption {
	return func(c *clusterConfig) { c.batchSize, c.absoluteMax = maxMessageCount, absoluteMaxBytes }
}

// WithPreferredMaxBytes sets the PreferredMaxBytes of generated channels,
// at most their AbsoluteMaxBytes.
func WithPreferredMaxBytes(n uint32) ClusterOption {
	return func(c *clusterConfig) { c.preferredMax = n }
}

// WithBatchTimeout sets the batch timeout of generated channels (default
// DefaultBatchTimeout).
func WithBatchTimeout(d time.Duration) ClusterOption {
	return func(c *clusterConfig) { c.batchTimeout = d }
}

// WithUnsignedBlocks makes the nodes write unsigned blocks. By default each
// node has its own identity of the orderer organisation and signs every
// block it writes.
func WithUnsignedBlocks() ClusterOption { return func(c *clusterConfig) { c.unsigned = true } }

// WithOrg makes org the cluster's organisation, which issues the client
// and administrator identities (and the nodes' identities unless
// WithOrdererOrg) and is the application organisation of generated
// channels. By default the cluster makes an organisation DefaultOrg. The
// identities carry the NodeOU of their role, so org may enable NodeOUs;
// the administrator is also issued msptest.ListedAdmin.
func WithOrg(org *msptest.CA) ClusterOption { return func(c *clusterConfig) { c.org = org } }

// WithOrdererOrg makes org the organisation that issues the nodes'
// identities and the orderer organisation of generated channels. By
// default it is the cluster's organisation (WithOrg).
func WithOrdererOrg(org *msptest.CA) ClusterOption {
	return func(c *clusterConfig) { c.ordererOrg = org }
}

func (c *clusterConfig) validate(brokers []string) error {
	switch {
	case len(brokers) == 0:
		return errors.New("consensustest: NewCluster: no seed brokers")
	case c.nodes < 1:
		return fmt.Errorf("consensustest: WithNodes(%d): need at least one node", c.nodes)
	case c.name == "":
		return errors.New("consensustest: WithNodeNames(\"\")")
	case c.batchSize < 1:
		return fmt.Errorf("consensustest: WithBatchSize(%d, ...): need at least one message per batch", c.batchSize)
	case c.preferredMax > c.absoluteMax:
		return fmt.Errorf("consensustest: WithPreferredMaxBytes(%d) above AbsoluteMaxBytes %d", c.preferredMax, c.absoluteMax)
	case c.batchTimeout <= 0:
		return fmt.Errorf("consensustest: WithBatchTimeout(%v): must be positive", c.batchTimeout)
	case c.dir != "" && c.ledgers != nil:
		return errors.New("consensustest: WithFileLedgers and WithLedgers contradict each other")
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
// The cluster's organisation (WithOrg, else generated as DefaultOrg) issues
// a client identity, an administrator and one identity per node, which
// signs the node's blocks. Generated channels admit envelopes signed by the
// client (Envelope builds them) and config updates signed by the
// administrator (ConfigUpdate builds them).
type Cluster struct {
	brokers  []string
	cfg      clusterConfig
	channels []string
	genesis  map[string]*cb.Block
	client   *msptest.Identity
	admin    *msptest.Identity
	nodes    []*Node
	next     atomic.Uint64 // round robin of Order
	closed   atomic.Bool
}

// NewCluster creates the nodes of a cluster whose consenters connect to the
// seed brokers, any Kafka (for the embedded one, pass Kafka.Addrs), and
// their ledgers, and creates (but does not start) every node's chains.
// With no channel option, the cluster serves DefaultChannel.
//
// Topics are created with consensus.DefaultTopicSettings, lowered to a
// replication factor of the number of seed brokers when there are fewer:
// pass consensus.WithTopicSettings through WithConsenterOpts when a few
// seeds stand for a larger Kafka.
func NewCluster(brokers []string, opts ...ClusterOption) (*Cluster, error) {
	cfg := clusterConfig{nodes: DefaultNodes, name: DefaultNodeName, batchSize: DefaultBatchSize, batchTimeout: DefaultBatchTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.channels) == 0 {
		cfg.channels = []channelSpec{{name: DefaultChannel}}
	}
	if cfg.absoluteMax == 0 {
		cfg.absoluteMax = DefaultAbsoluteMaxBytes
	}
	if err := cfg.validate(brokers); err != nil {
		return nil, err
	}
	if cfg.preferredMax == 0 {
		cfg.preferredMax = cfg.absoluteMax / 2
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(minLevel{slog.Default().Handler(), slog.LevelWarn})
	}
	if cfg.org == nil {
		org, err := msptest.NewCA(DefaultOrg)
		if err != nil {
			return nil, err
		}
		cfg.org = org
	}
	if cfg.ordererOrg == nil {
		cfg.ordererOrg = cfg.org
	}

	c := &Cluster{brokers: slices.Clone(brokers), cfg: cfg, genesis: make(map[string]*cb.Block)}
	var err error
	if c.client, err = cfg.org.Issue("client", msptest.WithOU(msptest.OUClient)); err != nil {
		return nil, err
	}
	if c.admin, err = cfg.org.Issue("admin", msptest.WithOU(msptest.OUAdmin), msptest.ListedAdmin()); err != nil {
		return nil, err
	}
	signers := make([]*msptest.Identity, cfg.nodes)
	for i := range signers {
		if signers[i], err = cfg.ordererOrg.Issue(nodeName(cfg.name, i), msptest.WithOU(msptest.OUOrderer)); err != nil {
			return nil, err
		}
	}
	for _, spec := range cfg.channels {
		g := spec.genesis
		if g == nil {
			g, err = msptest.GenesisBlock(spec.name, []*msptest.CA{cfg.org},
				msptest.WithOrdererOrgs(cfg.ordererOrg),
				msptest.WithBatchSize(cfg.batchSize, cfg.absoluteMax, cfg.preferredMax),
				msptest.WithBatchTimeout(cfg.batchTimeout),
				msptest.WithKafkaBrokers(brokers...))
			if err != nil {
				return nil, fmt.Errorf("consensustest: genesis block of %s: %w", spec.name, err)
			}
		}
		c.channels = append(c.channels, spec.name)
		c.genesis[spec.name] = g
	}
	for i := range cfg.nodes {
		n := &Node{c: c, id: i, name: nodeName(cfg.name, i), signer: signers[i],
			ledgers: make(map[string]ledger.Ledger), chains: make(map[string]*consensus.Chain)}
		if cfg.unsigned {
			n.signer = nil
		}
		c.nodes = append(c.nodes, n)
		if cfg.ledgers != nil {
			for _, ch := range c.channels {
				l, err := cfg.ledgers(i, ch)
				if err == nil && l == nil {
					err = errors.New("nil ledger")
				}
				if err != nil {
					c.Close()
					return nil, fmt.Errorf("consensustest: %s, channel %s: WithLedgers: %w", n, ch, err)
				}
				n.ledgers[ch] = l
			}
		}
		if err := n.build(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func nodeName(prefix string, i int) string { return fmt.Sprintf("%s%d", prefix, i) }

// minLevel passes the records of level min and above to a Handler.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
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

// Brokers returns the seed brokers the nodes connect to.
func (c *Cluster) Brokers() []string { return slices.Clone(c.brokers) }

// Org returns the cluster's organisation (WithOrg).
func (c *Cluster) Org() *msptest.CA { return c.cfg.org }

// OrdererOrg returns the organisation of the nodes' identities
// (WithOrdererOrg).
func (c *Cluster) OrdererOrg() *msptest.CA { return c.cfg.ordererOrg }

// Client returns the client identity, a member of the cluster's
// organisation: it may write to generated channels.
func (c *Cluster) Client() *msptest.Identity { return c.client }

// Admin returns the administrator of the cluster's organisation: its
// signature satisfies the Admins policy of generated channels.
func (c *Cluster) Admin() *msptest.Identity { return c.admin }

// Envelope returns a normal (ENDORSER_TRANSACTION) envelope for channel
// carrying data, signed by the cluster's client identity, with a fresh
// transaction ID (protoutil.NewSignedEnvelope).
func (c *Cluster) Envelope(channel string, data []byte) (*cb.Envelope, error) {
	return protoutil.NewSignedEnvelope(cb.HeaderType_ENDORSER_TRANSACTION, channel, data, c.client)
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

// TxID returns the transaction ID of env's channel header, the key
// WaitInAllLedgers and CheckAgreement take.
func TxID(env *cb.Envelope) (string, error) {
	h, err := protoutil.EnvelopeHeaders(env)
	if err != nil {
		return "", err
	}
	return h.ChannelHeader.GetTxId(), nil
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

// Order validates env on one node that is ready (running, and its chain
// available: consensus.Chain.Available), chosen round robin, and orders it
// there, returning once Kafka acknowledged it; it never waits past ctx.
// Nodes that are stopped, errored, halted or still setting up are skipped;
// when none is ready it returns at once an error wrapping
// consensus.ErrNotReady that says why for each node.
func (c *Cluster) Order(ctx context.Context, channel string, env *cb.Envelope) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var why []string
	for range c.nodes {
		n := c.nodes[int(c.next.Add(1)-1)%len(c.nodes)]
		ch := n.Chain(channel)
		switch {
		case ch == nil:
			return fmt.Errorf("consensustest: %s does not serve channel %q", n, channel)
		case !n.Running():
			why = append(why, n.String()+" is stopped")
			continue
		}
		if err := ch.Available(); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		return n.Order(ctx, channel, env)
	}
	return fmt.Errorf("consensustest: channel %s: %w on any node (%s)", channel, consensus.ErrNotReady, strings.Join(why, "; "))
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
				return fmt.Errorf("consensustest: %s does not serve channel %q", n, channel)
			}
			if err := ch.Err(); err != nil {
				return fmt.Errorf("consensustest: %s: %w", n, err)
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
	var refName string
	for _, n := range c.nodes {
		l := n.Ledger(channel)
		if l == nil {
			continue
		}
		if ref == nil {
			ref, refName = l, n.String()
			continue
		}
		if err := CompareLedgers(ref, l); err != nil {
			return fmt.Errorf("consensustest: channel %s: %s vs %s: %w", channel, refName, n, err)
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
	name   string
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
			return fmt.Errorf("consensustest: %s, channel %s: %w", n, ch.Channel(), err)
		}
	}
	return nil
}

// Order validates env with the node's chain of channel (ProcessNormal) and
// orders it (Order).
func (n *Node) Order(ctx context.Context, channel string, env *cb.Envelope) error {
	ch := n.Chain(channel)
	if ch == nil {
		return fmt.Errorf("consensustest: %s does not serve channel %q", n, channel)
	}
	seq, err := ch.ProcessNormal(env)
	if err != nil {
		return err
	}
	return ch.Order(ctx, env, seq)
}

// Stop halts the node's consenter and waits for its chains, then closes
// its file ledgers (WithFileLedgers); other ledgers stay open and readable.
// Stopping a stopped node does nothing.
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
	log := c.cfg.logger.With("node", n.name)
	addrs := c.brokers
	ts := consensus.DefaultTopicSettings()
	if len(addrs) < int(ts.ReplicationFactor) {
		ts = consensus.TopicSettings{ReplicationFactor: int16(len(addrs)), MinInsyncReplicas: min(ts.MinInsyncReplicas, len(addrs))}
	}
	opts := []consensus.Option{
		consensus.WithSeedBrokers(addrs...),
		consensus.WithClientID(n.name),
		consensus.WithRetry(FastRetryPolicy()),
		consensus.WithTopicSettings(ts),
		consensus.WithLogger(log),
		consensus.WithKgoOpts(FastKgoOpts()...),
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
		return fmt.Errorf("consensustest: %s: %w", n, err)
	}
	chains := make(map[string]*consensus.Chain, len(c.channels))
	for _, name := range c.channels {
		l := n.ledgers[name]
		if l == nil {
			if c.cfg.dir != "" {
				f, err := ledger.OpenFile(filepath.Join(c.cfg.dir, n.name, name), ledger.WithLogger(log))
				if err != nil {
					cons.Close()
					return fmt.Errorf("consensustest: %s, channel %s: %w", n, name, err)
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
			return fmt.Errorf("consensustest: %s: %w", n, err)
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
		return fmt.Errorf("consensustest: %s is stopped: use Restart", n)
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

func (s nodeSource) String() string { return nodeName(s.c.cfg.name, s.id) }

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
		return fmt.Errorf("consensustest: %s has no open ledger of %q", n, channel)
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

// String returns the node's name, as "node0" (see WithNodeNames).
func (n *Node) String() string { return n.name }
