package plainconfig_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/blockcutter"
	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/plainconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func settings() plainconfig.Settings {
	return plainconfig.Settings{
		Channel:      "events",
		BatchSize:    blockcutter.Limits{MaxMessageCount: 10, AbsoluteMaxBytes: 1000, PreferredMaxBytes: 500},
		BatchTimeout: 1500 * time.Millisecond,
		Data:         []byte("app data"),
	}
}

// adminRules accept payloads that do not start with "bad", and updates
// signed "admin".
var adminRules = plainconfig.Rules{
	Validate: func(_ *plainconfig.Config, env *cb.Envelope) error {
		if bytes.HasPrefix(env.Payload, []byte("bad")) {
			return errors.New("bad payload")
		}
		return nil
	},
	AuthorizeUpdate: func(_ *plainconfig.Config, _ plainconfig.Settings, env *cb.Envelope) error {
		if string(env.Signature) != "admin" {
			return errors.New("not signed by the admin")
		}
		return nil
	},
}

func signAdmin([]byte) ([]byte, error) { return []byte("admin"), nil }

func TestMarshalCanonical(t *testing.T) {
	b, err := settings().Marshal()
	require.NoError(t, err)
	require.Equal(t, `{"format":"plainconfig/1","channel":"events","sequence":0,"max_message_count":10,`+
		`"absolute_max_bytes":1000,"preferred_max_bytes":500,"batch_timeout":"1.5s","data":"YXBwIGRhdGE="}`, string(b))
	s, err := plainconfig.Unmarshal(b)
	require.NoError(t, err)
	require.Equal(t, settings(), s)

	noData := settings()
	noData.Data = nil
	b, err = noData.Marshal()
	require.NoError(t, err)
	require.NotContains(t, string(b), "data")
	s, err = plainconfig.Unmarshal(b)
	require.NoError(t, err)
	require.Equal(t, noData, s)
}

func TestUnmarshalRefusesNonCanonical(t *testing.T) {
	good, err := settings().Marshal()
	require.NoError(t, err)
	for name, b := range map[string]string{
		"whitespace":        strings.Replace(string(good), ",", ", ", 1),
		"trailing bytes":    string(good) + "\n",
		"another duration":  strings.Replace(string(good), `"1.5s"`, `"1500ms"`, 1),
		"reordered fields":  strings.Replace(string(good), `"format":"plainconfig/1","channel":"events"`, `"channel":"events","format":"plainconfig/1"`, 1),
		"unknown field":     strings.Replace(string(good), `{`, `{"extra":1,`, 1),
		"key case":          strings.Replace(string(good), `"channel"`, `"Channel"`, 1),
		"other format":      strings.Replace(string(good), `plainconfig/1`, `plainconfig/2`, 1),
		"no format":         strings.Replace(string(good), `"format":"plainconfig/1",`, ``, 1),
		"bad duration":      strings.Replace(string(good), `"1.5s"`, `"soon"`, 1),
		"zero count":        strings.Replace(string(good), `"max_message_count":10`, `"max_message_count":0`, 1),
		"negative sequence": strings.Replace(string(good), `"sequence":0`, `"sequence":-1`, 1),
		"not json":          "\x0a\x03abc",
		"empty":             "",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := plainconfig.Unmarshal([]byte(b))
			require.ErrorIs(t, err, plainconfig.ErrMalformed)
		})
	}
}

func TestSettingsValidate(t *testing.T) {
	for name, mutate := range map[string]func(*plainconfig.Settings){
		"no channel":          func(s *plainconfig.Settings) { s.Channel = "" },
		"bad channel":         func(s *plainconfig.Settings) { s.Channel = "a/b" },
		"zero count":          func(s *plainconfig.Settings) { s.BatchSize.MaxMessageCount = 0 },
		"zero absolute":       func(s *plainconfig.Settings) { s.BatchSize.AbsoluteMaxBytes = 0 },
		"zero preferred":      func(s *plainconfig.Settings) { s.BatchSize.PreferredMaxBytes = 0 },
		"preferred too large": func(s *plainconfig.Settings) { s.BatchSize.PreferredMaxBytes = 1001 },
		"zero timeout":        func(s *plainconfig.Settings) { s.BatchTimeout = 0 },
		"negative timeout":    func(s *plainconfig.Settings) { s.BatchTimeout = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			s := settings()
			mutate(&s)
			require.ErrorIs(t, s.Validate(), plainconfig.ErrMalformed)
			_, err := s.Marshal()
			require.ErrorIs(t, err, plainconfig.ErrMalformed)
			_, err = plainconfig.New(s, adminRules)
			require.ErrorIs(t, err, plainconfig.ErrMalformed)
		})
	}
	require.NoError(t, settings().Validate())
}

func TestSecureDefaults(t *testing.T) {
	_, err := plainconfig.New(settings(), plainconfig.Rules{})
	require.ErrorContains(t, err, "Rules.Validate is required")

	cfg, err := plainconfig.New(settings(), plainconfig.Rules{Validate: adminRules.Validate})
	require.NoError(t, err)
	require.NoError(t, cfg.ValidateNormal(&cb.Envelope{Payload: []byte("x")}))
	require.ErrorContains(t, cfg.ValidateNormal(&cb.Envelope{Payload: []byte("bad")}), "bad payload")
	require.Error(t, cfg.ValidateNormal(nil))

	// No AuthorizeUpdate: no update, however well formed.
	env, err := plainconfig.UpdateEnvelope(cfg.Next(), signAdmin)
	require.NoError(t, err)
	_, err = cfg.ValidateConfig(env)
	require.ErrorIs(t, err, plainconfig.ErrForbidden)
	require.ErrorContains(t, err, "config updates are disabled")

	// No AuthorizeDeliver: no reader.
	err = cfg.ValidateDeliver(&cb.Envelope{Payload: []byte("seek")})
	require.ErrorIs(t, err, plainconfig.ErrForbidden)

	// No VerifyBlock: no block from another node.
	err = cfg.VerifyBlockSignatures(protoutil.NewBlock(1, nil, nil))
	require.ErrorIs(t, err, plainconfig.ErrForbidden)
}

func TestRulesGetTheConfiguration(t *testing.T) {
	var seen []uint64
	r := plainconfig.Rules{
		Validate:         func(c *plainconfig.Config, _ *cb.Envelope) error { seen = append(seen, c.Sequence()); return nil },
		AuthorizeDeliver: func(c *plainconfig.Config, env *cb.Envelope) error { return errors.New(string(c.Data())) },
		VerifyBlock:      func(c *plainconfig.Config, b *cb.Block) error { return errors.New(c.Channel()) },
	}
	cfg, err := plainconfig.New(settings(), r)
	require.NoError(t, err)
	require.NoError(t, cfg.ValidateNormal(&cb.Envelope{}))
	require.Equal(t, []uint64{0}, seen)
	require.EqualError(t, cfg.ValidateDeliver(&cb.Envelope{}), "app data")
	require.EqualError(t, cfg.VerifyBlockSignatures(&cb.Block{}), "events")
}

func TestValidateConfig(t *testing.T) {
	cfg, err := plainconfig.New(settings(), adminRules)
	require.NoError(t, err)

	next := cfg.Next()
	next.BatchSize.MaxMessageCount = 3
	next.Data = []byte("v2")
	env, err := plainconfig.UpdateEnvelope(next, signAdmin)
	require.NoError(t, err)
	got, err := cfg.ValidateConfig(env)
	require.NoError(t, err)
	require.Equal(t, uint64(1), got.Sequence())
	require.Equal(t, uint32(3), got.BatchLimits().MaxMessageCount)
	require.Equal(t, next, got.(*plainconfig.Config).Settings())
	require.Equal(t, uint64(0), cfg.Sequence(), "a Config never changes")

	tests := []struct {
		name   string
		mutate func(*plainconfig.Settings)
		sign   func([]byte) ([]byte, error)
		want   error
	}{
		{"another channel", func(s *plainconfig.Settings) { s.Channel = "other" }, signAdmin, plainconfig.ErrBadUpdate},
		{"same sequence", func(s *plainconfig.Settings) { s.Sequence = 0 }, signAdmin, plainconfig.ErrBadUpdate},
		{"sequence skipped", func(s *plainconfig.Settings) { s.Sequence = 2 }, signAdmin, plainconfig.ErrBadUpdate},
		{"not signed", func(*plainconfig.Settings) {}, nil, plainconfig.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := cfg.Next()
			tt.mutate(&s)
			env, err := plainconfig.UpdateEnvelope(s, tt.sign)
			require.NoError(t, err)
			_, err = cfg.ValidateConfig(env)
			require.ErrorIs(t, err, tt.want)
		})
	}
	_, err = cfg.ValidateConfig(&cb.Envelope{Payload: []byte("{}"), Signature: []byte("admin")})
	require.ErrorIs(t, err, plainconfig.ErrMalformed)
	_, err = cfg.ValidateConfig(nil)
	require.Error(t, err)

	_, err = plainconfig.UpdateEnvelope(cfg.Next(), func([]byte) ([]byte, error) { return nil, errors.New("no key") })
	require.ErrorContains(t, err, "no key")
}

func TestGenesisAndParser(t *testing.T) {
	g, err := plainconfig.GenesisBlock(settings())
	require.NoError(t, err)
	again, err := plainconfig.GenesisBlock(settings())
	require.NoError(t, err)
	require.Equal(t, protoutil.MarshalOrPanic(g), protoutil.MarshalOrPanic(again), "every node builds the same genesis block")
	require.Equal(t, uint64(0), g.Header.Number)

	cfg, err := plainconfig.Parser(adminRules)(g)
	require.NoError(t, err)
	require.Equal(t, settings(), cfg.(*plainconfig.Config).Settings())

	s := settings()
	s.Sequence = 1
	_, err = plainconfig.GenesisBlock(s)
	require.ErrorIs(t, err, plainconfig.ErrMalformed)

	// Not config blocks.
	_, err = plainconfig.FromConfigBlock(&cb.Block{}, adminRules)
	require.ErrorIs(t, err, plainconfig.ErrMalformed)
	normal := protoutil.NewBlock(1, nil, [][]byte{protoutil.MarshalOrPanic(&cb.Envelope{Payload: []byte("x")})})
	protoutil.SetMetadata(normal, cb.BlockMetadataIndex_LAST_CONFIG, &cb.Metadata{Value: protoutil.MarshalOrPanic(&cb.LastConfig{Index: 0})})
	_, err = plainconfig.FromConfigBlock(normal, adminRules)
	require.ErrorContains(t, err, "not a config block")
	_, err = plainconfig.Parser(adminRules)(nil)
	require.ErrorIs(t, err, plainconfig.ErrMalformed)
	_, err = plainconfig.FromConfigBlock(g, plainconfig.Rules{})
	require.ErrorContains(t, err, "Rules.Validate is required")
}

// TestCoreRestartsFromConfigBlock: a core orders a config update; the
// config block it cuts, read back through the Parser, is the configuration
// the core applied, and a core restarted from it orders as the first one.
func TestCoreRestartsFromConfigBlock(t *testing.T) {
	g, err := plainconfig.GenesisBlock(settings())
	require.NoError(t, err)
	parse := plainconfig.Parser(adminRules)
	cfg, err := parse(g)
	require.NoError(t, err)
	core, err := consensus.NewCore("events", consensus.CoreState{LastBlock: g, Config: cfg})
	require.NoError(t, err)

	next := cfg.(*plainconfig.Config).Next()
	next.BatchSize.MaxMessageCount = 2
	update, err := plainconfig.UpdateEnvelope(next, signAdmin)
	require.NoError(t, err)
	r := core.Step(consensus.Record{Offset: 0, Value: coretest.Config(update, 0)})
	require.Len(t, r.Blocks, 1)
	require.True(t, r.Blocks[0].IsConfig)
	block := r.Blocks[0].Block

	restored, err := parse(block)
	require.NoError(t, err)
	require.Equal(t, next, restored.(*plainconfig.Config).Settings())
	require.Equal(t, r.Config.(*plainconfig.Config).Settings(), restored.(*plainconfig.Config).Settings())

	rc, err := consensus.NewCore("events", consensus.CoreState{LastBlock: block, Config: restored})
	require.NoError(t, err)
	for _, c := range []*consensus.Core{core, rc} {
		c.Step(consensus.Record{Offset: 1, Value: coretest.Normal(coretest.Envelope("a"), 1)})
		r := c.Step(consensus.Record{Offset: 2, Value: coretest.Normal(coretest.Envelope("b"), 1)})
		require.Len(t, r.Blocks, 1, "two envelopes make a block at sequence 1")
	}
}

// FuzzValidateConfig gives ValidateConfig, which every node runs on a
// config envelope it consumes, and Unmarshal envelopes and settings of
// any content: no panic, and an accepted update is the next sequence.
func FuzzValidateConfig(f *testing.F) {
	cfg, err := plainconfig.New(settings(), adminRules)
	require.NoError(f, err)
	next := cfg.Next()
	next.BatchSize.MaxMessageCount = 3
	env, err := plainconfig.UpdateEnvelope(next, signAdmin)
	require.NoError(f, err)
	f.Add(env.Payload, env.Signature)
	f.Add([]byte(`{"format":"plainconfig/1","channel":"events","sequence":1,"max_message_count":1,"absolute_max_bytes":1,"preferred_max_bytes":1,"batch_timeout":"1ns"}`), []byte("admin"))
	f.Fuzz(func(t *testing.T, payload, signature []byte) {
		_, _ = plainconfig.Unmarshal(payload)
		nc, err := cfg.ValidateConfig(&cb.Envelope{Payload: payload, Signature: signature})
		if err == nil {
			require.Equal(t, cfg.Sequence()+1, nc.Sequence())
		}
	})
}
