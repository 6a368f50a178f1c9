// Package plainconfig is a ready-made channel configuration for ordering
// payloads that are not Fabric transactions: JSON events, sensor readings,
// anything whose validity the application decides. It implements
// consensus.ChannelConfig, so a Consenter orders these payloads with the
// same protocol, the same blocks and the same restart guarantees as
// Fabric envelopes.
//
// # The recipe
//
// An envelope is a cb.Envelope whose Payload is the application's bytes and
// whose Signature is whatever the application authenticates them with (an
// HMAC, an Ed25519 signature, nothing). Both count towards the batch size.
//
//	rules := plainconfig.Rules{Validate: checkHMAC} // func(*Config, *cb.Envelope) error
//	genesis, err := plainconfig.GenesisBlock(plainconfig.Settings{
//		Channel:      "events",
//		BatchSize:    blockcutter.Limits{MaxMessageCount: 100, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 512 << 10},
//		BatchTimeout: time.Second,
//	})
//	cons, err := consensus.NewConsenter(consensus.WithSeedBrokers(addrs...),
//		consensus.WithConfigParser(plainconfig.Parser(rules)))
//	chain, err := cons.NewChain("events", ledger, genesis)
//	chain.Start()
//	err = chain.Submit(ctx, &cb.Envelope{Payload: event, Signature: mac})
//
// Every node must run the same Rules: they are code, not configuration.
//
// # What is checked
//
// Chain.ProcessNormal (and Submit) first refuses an envelope larger than
// BatchSize.AbsoluteMaxBytes, payload plus signature, with
// consensus.ErrTooLarge; then Config.ValidateNormal calls Rules.Validate.
// A node also calls Validate while consuming the log, for an envelope that
// was validated under an older configuration sequence (and for every
// envelope with consensus.ValidateEveryEnvelope), so Validate must be
// deterministic: the same verdict on every node, whatever the time or the
// node's local state.
//
// Rules has secure defaults: Validate is required; without AuthorizeUpdate
// every config update is refused (the configuration stays the genesis
// one); without AuthorizeDeliver every Deliver request is refused; without
// VerifyBlock, blocks pulled from other nodes during catch-up
// (consensus.BlockSource) are refused.
//
// # Configuration updates
//
// A config update is a CONFIG envelope (Chain.SubmitConfig) whose payload
// is the whole next configuration (Settings.Marshal) with sequence
// current+1, and whose signature authorises it:
//
//	next := cfg.Next() // a copy at sequence+1
//	next.BatchSize.MaxMessageCount = 500
//	env, err := plainconfig.UpdateEnvelope(next, signWithAdminKey)
//	err = chain.SubmitConfig(ctx, env)
//
// Config.ValidateConfig accepts it when it decodes, its settings are valid,
// it names the same channel, its sequence is current+1 and
// Rules.AuthorizeUpdate approves it under the current configuration.
//
// # The serialized form
//
// Settings are carried in the genesis block and in every config block as
// canonical JSON (see Settings.Marshal): one configuration has exactly one
// encoding, and Unmarshal refuses any other byte string (unknown or
// reordered fields, whitespace, another duration spelling), so every node
// decodes a config block to the same configuration. A restarted node reads
// its configuration back from its last config block through Parser.
package plainconfig
