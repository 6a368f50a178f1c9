package plainconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Sentinel errors; test for them with errors.Is.
var (
	// ErrMalformed reports a serialized configuration that does not decode
	// or is not canonical, settings that are not valid, or a block that is
	// not a config block.
	ErrMalformed = errors.New("plainconfig: malformed configuration")
	// ErrBadUpdate reports a config update for another channel or whose
	// sequence is not the current one plus one.
	ErrBadUpdate = errors.New("plainconfig: bad config update")
	// ErrForbidden reports a config update, Deliver request or block that
	// the Rules refuse, or for which they have no function.
	ErrForbidden = errors.New("plainconfig: forbidden")
)

// Format names the serialized form this package writes and reads: the
// value of the "format" field of Settings.Marshal's JSON.
const Format = "plainconfig/1"

// Settings are a channel's configuration at one sequence, as the genesis
// block and config blocks carry it.
type Settings struct {
	// Channel is the channel's name (its Kafka topic).
	Channel string
	// Sequence is 0 in the genesis block and one more per config update.
	Sequence uint64
	// BatchSize are the block cutter's limits. AbsoluteMaxBytes is also
	// the largest envelope (payload plus signature) a node accepts.
	BatchSize blockcutter.Limits
	// BatchTimeout is how long after the first envelope of a batch a node
	// asks for the batch to be cut.
	BatchTimeout time.Duration
	// Data is the application's own configuration, opaque to this package
	// (member keys' names, a schema version...). Rules see it through
	// Config.Data. It is public: every node and every reader of the blocks
	// sees it, so it must not hold secrets.
	Data []byte
}

// Validate reports whether s is a usable configuration: a valid channel
// name (consensus.ValidTopicName), a MaxMessageCount, AbsoluteMaxBytes and
// PreferredMaxBytes above zero with PreferredMaxBytes at most
// AbsoluteMaxBytes, and a positive BatchTimeout. Errors wrap ErrMalformed.
func (s Settings) Validate() error {
	var errs []error
	if err := consensus.ValidTopicName(s.Channel); err != nil {
		errs = append(errs, err)
	}
	l := s.BatchSize
	if l.MaxMessageCount == 0 || l.AbsoluteMaxBytes == 0 || l.PreferredMaxBytes == 0 {
		errs = append(errs, fmt.Errorf("batch size %+v: every limit must be above zero", l))
	} else if l.PreferredMaxBytes > l.AbsoluteMaxBytes {
		errs = append(errs, fmt.Errorf("batch size: preferred max bytes %d above absolute max bytes %d", l.PreferredMaxBytes, l.AbsoluteMaxBytes))
	}
	if s.BatchTimeout <= 0 {
		errs = append(errs, fmt.Errorf("batch timeout %v: must be positive", s.BatchTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrMalformed, errors.Join(errs...))
	}
	return nil
}

// wireSettings is the serialized form: its field order is the encoding's.
type wireSettings struct {
	Format            string `json:"format"`
	Channel           string `json:"channel"`
	Sequence          uint64 `json:"sequence"`
	MaxMessageCount   uint32 `json:"max_message_count"`
	AbsoluteMaxBytes  uint32 `json:"absolute_max_bytes"`
	PreferredMaxBytes uint32 `json:"preferred_max_bytes"`
	BatchTimeout      string `json:"batch_timeout"`
	Data              []byte `json:"data,omitempty"`
}

// Marshal returns the canonical encoding of s, after checking it with
// Validate: compact JSON with the fields in a fixed order, the batch
// timeout as time.Duration's String ("1.5s") and Data in standard base64
// (omitted when empty), for example
//
//	{"format":"plainconfig/1","channel":"events","sequence":0,"max_message_count":100,
//	 "absolute_max_bytes":1048576,"preferred_max_bytes":524288,"batch_timeout":"1s"}
//
// (on one line).
func (s Settings) Marshal() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s.encode(), nil
}

func (s Settings) encode() []byte {
	b, err := json.Marshal(wireSettings{
		Format: Format, Channel: s.Channel, Sequence: s.Sequence,
		MaxMessageCount: s.BatchSize.MaxMessageCount, AbsoluteMaxBytes: s.BatchSize.AbsoluteMaxBytes,
		PreferredMaxBytes: s.BatchSize.PreferredMaxBytes, BatchTimeout: s.BatchTimeout.String(), Data: s.Data,
	})
	if err != nil {
		panic(fmt.Sprintf("plainconfig: encoding settings: %v", err)) // strings and numbers always encode
	}
	return b
}

// Unmarshal decodes settings that Marshal wrote and checks them with
// Validate. It refuses any byte string that is not exactly the canonical
// encoding of the settings it holds, so that one configuration has one
// encoding and every node decodes it alike. Errors wrap ErrMalformed.
func Unmarshal(b []byte) (Settings, error) {
	var w wireSettings
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Settings{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if w.Format != Format {
		return Settings{}, fmt.Errorf("%w: format %q, want %q", ErrMalformed, w.Format, Format)
	}
	timeout, err := time.ParseDuration(w.BatchTimeout)
	if err != nil {
		return Settings{}, fmt.Errorf("%w: batch timeout: %w", ErrMalformed, err)
	}
	s := Settings{
		Channel: w.Channel, Sequence: w.Sequence, BatchTimeout: timeout, Data: w.Data,
		BatchSize: blockcutter.Limits{MaxMessageCount: w.MaxMessageCount, AbsoluteMaxBytes: w.AbsoluteMaxBytes, PreferredMaxBytes: w.PreferredMaxBytes},
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	if !bytes.Equal(s.encode(), b) {
		return Settings{}, fmt.Errorf("%w: not the canonical encoding (see Settings.Marshal)", ErrMalformed)
	}
	return s, nil
}

// Rules decide what a channel accepts. They are code that every node runs
// alike, not configuration: give every node the same Rules. Each function
// gets the configuration in force, and must be deterministic (the same
// verdict on every node, whatever the time or the node's state), because
// nodes also apply them while consuming the log. A nil function has the
// secure default its field names.
type Rules struct {
	// Validate decides whether env may be ordered as a normal envelope
	// under cfg. Required: New refuses Rules without it.
	Validate func(cfg *Config, env *cb.Envelope) error
	// AuthorizeUpdate decides whether env, a config update carrying next,
	// may change cfg into next. next has already been checked: valid
	// settings, the same channel, sequence cfg.Sequence()+1. Nil refuses
	// every update, so the genesis configuration stays in force.
	AuthorizeUpdate func(cfg *Config, next Settings, env *cb.Envelope) error
	// AuthorizeDeliver decides whether env, a Deliver request (a seek
	// envelope), may read the channel's blocks. Nil refuses every request.
	AuthorizeDeliver func(cfg *Config, env *cb.Envelope) error
	// VerifyBlock checks the signatures of a block another node serves
	// while this one catches up (consensus.BlockSource,
	// consensus.BlockVerifier); its number, hashes and metadata are checked
	// by the chain. Nil refuses every such block: a node that needs
	// catch-up then halts with consensus.ErrRecordsMissing.
	VerifyBlock func(cfg *Config, b *cb.Block) error
}

// Config is one configuration of a channel of plain payloads: Settings at
// one sequence and the Rules that validate under them. It implements
// consensus.ChannelConfig and the optional consensus.BlockVerifier, and
// has the ValidateDeliver method a Deliver service asks a configuration
// for. A Config never changes: ValidateConfig returns a new one.
type Config struct {
	s     Settings
	rules Rules
}

var (
	_ consensus.ChannelConfig = (*Config)(nil)
	_ consensus.BlockVerifier = (*Config)(nil)
)

// New returns the configuration of s under r. s must pass Validate and
// r.Validate must not be nil.
func New(s Settings, r Rules) (*Config, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if r.Validate == nil {
		return nil, errors.New("plainconfig: Rules.Validate is required (say which envelopes a channel orders)")
	}
	s.Data = slices.Clone(s.Data)
	return &Config{s: s, rules: r}, nil
}

// Sequence is the configuration's sequence number.
func (c *Config) Sequence() uint64 { return c.s.Sequence }

// BatchLimits are the block cutter's limits.
func (c *Config) BatchLimits() blockcutter.Limits { return c.s.BatchSize }

// BatchTimeout is the batch timeout.
func (c *Config) BatchTimeout() time.Duration { return c.s.BatchTimeout }

// Channel is the channel's name.
func (c *Config) Channel() string { return c.s.Channel }

// Data returns a copy of the application's data (Settings.Data).
func (c *Config) Data() []byte { return slices.Clone(c.s.Data) }

// Settings returns a copy of the configuration's settings.
func (c *Config) Settings() Settings {
	s := c.s
	s.Data = slices.Clone(s.Data)
	return s
}

// Next returns a copy of the settings at the next sequence: the starting
// point of a config update (see UpdateEnvelope).
func (c *Config) Next() Settings {
	s := c.Settings()
	s.Sequence++
	return s
}

// ValidateNormal reports whether env may be ordered: Rules.Validate's
// verdict. The chain has already checked its size against
// BatchSize.AbsoluteMaxBytes.
func (c *Config) ValidateNormal(env *cb.Envelope) error {
	if env == nil {
		return errors.New("plainconfig: nil envelope")
	}
	return c.rules.Validate(c, env)
}

// ValidateConfig reports whether env is a config update of c and returns
// the configuration it establishes, under the same Rules: env's payload
// must be the canonical encoding of valid settings (else ErrMalformed) for
// c's channel at sequence c.Sequence()+1 (else ErrBadUpdate), and
// Rules.AuthorizeUpdate must approve it (else ErrForbidden).
func (c *Config) ValidateConfig(env *cb.Envelope) (consensus.ChannelConfig, error) {
	if env == nil {
		return nil, errors.New("plainconfig: nil envelope")
	}
	next, err := Unmarshal(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("channel %s: config update: %w", c.s.Channel, err)
	}
	switch {
	case next.Channel != c.s.Channel:
		return nil, fmt.Errorf("%w: channel %s: configuration of channel %q", ErrBadUpdate, c.s.Channel, next.Channel)
	case next.Sequence != c.s.Sequence+1:
		return nil, fmt.Errorf("%w: channel %s: configuration sequence %d, want %d", ErrBadUpdate, c.s.Channel, next.Sequence, c.s.Sequence+1)
	case c.rules.AuthorizeUpdate == nil:
		return nil, fmt.Errorf("%w: channel %s: config updates are disabled (Rules.AuthorizeUpdate is nil)", ErrForbidden, c.s.Channel)
	}
	if err := c.rules.AuthorizeUpdate(c, next, env); err != nil {
		return nil, fmt.Errorf("%w: channel %s: config update to sequence %d: %w", ErrForbidden, c.s.Channel, next.Sequence, err)
	}
	return &Config{s: next, rules: c.rules}, nil
}

// ValidateDeliver reports whether env, a Deliver request, may read the
// channel's blocks: Rules.AuthorizeDeliver's verdict, or ErrForbidden
// without it.
func (c *Config) ValidateDeliver(env *cb.Envelope) error {
	if c.rules.AuthorizeDeliver == nil {
		return fmt.Errorf("%w: channel %s: Deliver is disabled (Rules.AuthorizeDeliver is nil)", ErrForbidden, c.s.Channel)
	}
	if env == nil {
		return errors.New("plainconfig: nil envelope")
	}
	return c.rules.AuthorizeDeliver(c, env)
}

// VerifyBlockSignatures checks the signatures of a block another node
// serves: Rules.VerifyBlock's verdict, or ErrForbidden without it.
func (c *Config) VerifyBlockSignatures(b *cb.Block) error {
	if c.rules.VerifyBlock == nil {
		return fmt.Errorf("%w: channel %s: blocks from other nodes cannot be verified (Rules.VerifyBlock is nil)", ErrForbidden, c.s.Channel)
	}
	return c.rules.VerifyBlock(c, b)
}

// UpdateEnvelope returns the config update envelope that carries next: its
// payload is next's canonical encoding, its signature what sign returns for
// that payload (none when sign is nil). Submit it with Chain.SubmitConfig.
func UpdateEnvelope(next Settings, sign func(payload []byte) ([]byte, error)) (*cb.Envelope, error) {
	payload, err := next.Marshal()
	if err != nil {
		return nil, err
	}
	env := &cb.Envelope{Payload: payload}
	if sign != nil {
		if env.Signature, err = sign(payload); err != nil {
			return nil, fmt.Errorf("plainconfig: signing the config update: %w", err)
		}
	}
	return env, nil
}

// GenesisBlock returns block 0 of a channel configured by s, whose Sequence
// must be 0: one envelope carrying s's canonical encoding, no previous
// hash, LAST_CONFIG pointing at block 0. Every node builds the same bytes
// from the same settings. Give it to Consenter.NewChain.
func GenesisBlock(s Settings) (*cb.Block, error) {
	if s.Sequence != 0 {
		return nil, fmt.Errorf("%w: genesis settings at sequence %d, want 0", ErrMalformed, s.Sequence)
	}
	payload, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	b := protoutil.NewBlock(0, nil, [][]byte{protoutil.MarshalOrPanic(&cb.Envelope{Payload: payload})})
	protoutil.SetMetadata(b, cb.BlockMetadataIndex_LAST_CONFIG, &cb.Metadata{Value: protoutil.MarshalOrPanic(&cb.LastConfig{Index: 0})})
	return b, nil
}

// FromConfigBlock returns the configuration a config block holds (the
// genesis block, or a block a config update was cut into), under r: a
// block whose LAST_CONFIG slot names itself, holding one envelope whose
// payload decodes with Unmarshal. The update's authorisation is not
// checked again: the block was validated when it was ordered.
func FromConfigBlock(b *cb.Block, r Rules) (*Config, error) {
	if b.GetHeader() == nil {
		return nil, fmt.Errorf("%w: block without a header", ErrMalformed)
	}
	n := b.Header.Number
	lc, err := protoutil.LastConfigIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", ErrMalformed, n, err)
	}
	if lc != n {
		return nil, fmt.Errorf("%w: block %d is not a config block (its last config block is %d)", ErrMalformed, n, lc)
	}
	if len(b.GetData().GetData()) != 1 {
		return nil, fmt.Errorf("%w: config block %d holds %d envelopes, want 1", ErrMalformed, n, len(b.GetData().GetData()))
	}
	if err := protoutil.CheckDataHash(b); err != nil {
		return nil, fmt.Errorf("%w: config block %d: %w", ErrMalformed, n, err)
	}
	env, err := protoutil.UnmarshalEnvelope(b.Data.Data[0])
	if err != nil {
		return nil, fmt.Errorf("%w: config block %d: %w", ErrMalformed, n, err)
	}
	s, err := Unmarshal(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("config block %d: %w", n, err)
	}
	if n == 0 && s.Sequence != 0 {
		return nil, fmt.Errorf("%w: genesis block at sequence %d", ErrMalformed, s.Sequence)
	}
	return New(s, r)
}

// Parser returns the consensus.ConfigParser of channels configured by this
// package under r (see FromConfigBlock): give it to every node with
// consensus.WithConfigParser.
func Parser(r Rules) consensus.ConfigParser {
	return func(b *cb.Block) (consensus.ChannelConfig, error) {
		cfg, err := FromConfigBlock(b, r)
		if err != nil {
			return nil, err
		}
		return cfg, nil
	}
}
