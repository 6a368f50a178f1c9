package consensus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// ErrClosed reports a call on a closed Consenter.
var ErrClosed = errors.New("consensus: consenter closed")

// Consenter is one orderer node's consensus: it serves any number of
// channels, each a Chain on its own Kafka partition, with the node's Kafka
// settings, signing identity and observability providers.
type Consenter struct {
	cfg     settings
	creator []byte
	kc      *kafkaClient

	mu        sync.Mutex
	chains    map[string]*Chain
	closed    bool
	closeOnce sync.Once
}

// NewConsenter returns a Consenter configured by opts. WithSeedBrokers is
// required.
func NewConsenter(opts ...Option) (*Consenter, error) {
	cfg := defaultSettings()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Consenter{cfg: cfg, chains: make(map[string]*Chain)}
	if cfg.signer != nil {
		id, err := cfg.signer.Serialize()
		if err != nil {
			return nil, fmt.Errorf("consensus: serializing the signer: %w", err)
		}
		c.creator = id
	}
	kc, err := newKafkaClient(&c.cfg)
	if err != nil {
		return nil, err
	}
	c.kc = kc
	return c, nil
}

// NewChain returns the chain of channel, on ledger l. When l is empty,
// genesis (block 0 of the channel, holding its first config) is appended
// first; otherwise genesis may be nil, and when given must be l's block 0.
// The chain resumes after l's last block, with the configuration of the
// last config block. Start it with Chain.Start.
func (c *Consenter) NewChain(channel string, l Ledger, genesis *cb.Block) (*Chain, error) {
	if err := ValidTopicName(channel); err != nil {
		return nil, err // names the channel, which is the topic
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if old, ok := c.chains[channel]; ok && old.Err() == nil {
		return nil, fmt.Errorf("consensus: channel %s already has a running chain", channel)
	}
	st, err := restore(l, genesis, c.cfg.parser)
	if err != nil {
		return nil, fmt.Errorf("consensus: channel %s: %w", channel, err)
	}
	if _, ok := st.Config.(ConfigReprocessor); ok && c.cfg.signer == nil {
		// Every node must re-submit the config updates it computes again:
		// a node that did not could let a later re-submission overtake one
		// in the log, and the update would be dropped as a duplicate.
		return nil, fmt.Errorf("consensus: channel %s: %w: its configuration (Fabric's config tree) needs the node's signing identity (WithSigner)", channel, ErrNoSigner)
	}
	core, err := NewCore(channel, st, c.cfg.coreOpts()...)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(c.cfg.meters, channel)
	if err != nil {
		return nil, fmt.Errorf("consensus: metrics: %w", err)
	}
	ch := newChain(channel, &c.cfg, c.kc, l, core, m, c.creator)
	if err := m.observe(c.cfg.meters, ch); err != nil {
		return nil, fmt.Errorf("consensus: metrics: %w", err)
	}
	c.chains[channel] = ch
	return ch, nil
}

// restore reads where a chain resumes from its ledger.
func restore(l Ledger, genesis *cb.Block, parse ConfigParser) (CoreState, error) {
	if l.Height() == 0 {
		if genesis == nil {
			return CoreState{}, errors.New("empty ledger and no genesis block")
		}
		if err := l.Append(genesis); err != nil {
			return CoreState{}, fmt.Errorf("appending genesis block: %w", err)
		}
	} else if genesis != nil {
		b0, err := l.Block(0)
		if err != nil {
			return CoreState{}, err
		}
		if string(protoutil.HeaderHash(b0.Header)) != string(protoutil.HeaderHash(genesis.GetHeader())) {
			return CoreState{}, errors.New("the ledger's block 0 is not the genesis block given")
		}
	}
	last, err := l.Block(l.Height() - 1)
	if err != nil {
		return CoreState{}, fmt.Errorf("reading last block: %w", err)
	}
	idx, err := protoutil.LastConfigIndex(last)
	if err != nil {
		return CoreState{}, err
	}
	cfgBlock, err := l.Block(idx)
	if err != nil {
		return CoreState{}, fmt.Errorf("reading last config block %d: %w", idx, err)
	}
	cfg, err := parse(cfgBlock)
	if err != nil {
		return CoreState{}, fmt.Errorf("config block %d: %w", idx, err)
	}
	return CoreState{LastBlock: last, Config: cfg}, nil
}

// Channels returns the channels the consenter has chains of, sorted.
func (c *Consenter) Channels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.chains))
}

// Chain returns the chain of channel, or nil.
func (c *Consenter) Chain(channel string) *Chain {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chains[channel]
}

// Close halts every chain and waits for them. The ledgers stay open: they
// belong to the caller.
func (c *Consenter) Close() {
	c.mu.Lock()
	c.closed = true
	chains := make([]*Chain, 0, len(c.chains))
	for _, ch := range c.chains {
		chains = append(chains, ch)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, ch := range chains {
		wg.Add(1)
		go func() { defer wg.Done(); ch.Halt() }()
	}
	wg.Wait()
	c.closeOnce.Do(c.kc.close)
}
