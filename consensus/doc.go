// Package consensus orders the envelopes of a channel through one Kafka
// partition, following the protocol of Hyperledger Fabric's Kafka consenter
// (release 1.4) with Fabric's wire formats.
//
// # Usage
//
// One Consenter per orderer node; one Chain per channel:
//
//	cons, err := consensus.NewConsenter(
//		consensus.WithSeedBrokers("127.0.0.1:9092"),
//		consensus.WithSigner(nodeIdentity), // signs every block it writes
//	)
//	chain, err := cons.NewChain("mychannel", ledger, genesisBlock)
//	chain.Start()
//	err = chain.WaitReady(ctx)
//
//	seq, err := chain.ProcessNormal(env) // validate: signature, Writers, size, channel
//	err = chain.Order(ctx, env, seq)    // returns once Kafka acknowledged env
//
// Order blocks its caller; OrderAsync takes a callback instead, so one
// caller can keep many envelopes in flight. Either way, concurrent
// envelopes share produce requests. The blocks appear in the ledger, on
// every node, once consumed: read them with the ledger's Iterator.
//
// # Your own configuration
//
// A ChannelConfig decides what a channel orders, with which batch limits
// and timeout. The default, BundleConfig (BundleConfigParser), is the
// library's own format with MSPs and policies; package fabricconfig reads
// Fabric's configuration tree; package plainconfig orders payloads that
// are not Fabric transactions (JSON events, say) with a validate function
// of the application's. Give every node the same ConfigParser
// (WithConfigParser): it reads the configuration from the genesis block,
// and on restart from the last config block.
//
// Under any ChannelConfig, Chain.ProcessNormal (and Submit) checks exactly
// two things, in this order: that the envelope is not nil and its size,
// payload plus signature, is at most BatchLimits().AbsoluteMaxBytes (else
// ErrTooLarge); then ChannelConfig.ValidateNormal, whose error it returns
// wrapped with the channel's name. No header, channel or signature is
// checked unless ValidateNormal checks it. ProcessConfig (and
// SubmitConfig) checks the size, then ValidateConfig. Order and Configure
// then refuse while the chain is not ready or has halted (ErrNotReady,
// ErrHalted), wait while a re-submitted config is in flight, check the
// size again against the configuration in force, and refuse a sequence
// ahead of the chain's (ErrStaleConfig). While consuming, every node applies the same
// checks again to an envelope validated under an older sequence (to every
// envelope with WithEnvelopeValidation), and ValidateConfig to every
// config message.
//
// A ChannelConfig may implement optional interfaces, which the code that
// needs them asserts: BlockVerifier verifies the signatures of blocks
// pulled from BlockSources during catch-up (without it, and without
// WithBlockVerifier, such a chain halts); and a Deliver service asks the
// configuration whether a request may read the channel's blocks through an
// interface of its own, whose method is ValidateDeliver(env) error
// (BundleConfig, fabricconfig's and plainconfig's configurations have it).
//
// # Experiments
//
// The core is the whole protocol as a pure function of the record stream:
// NewCore, then Step for each record and TimerFired for each timer expiry,
// each returning a Ready (see ExampleCore). Package coretest builds the
// records, and runs several cores over an in-memory log the way the loop
// does (each node producing its own time-to-cuts and re-submissions, batch
// timers on a fake clock), with faults (random interleavings, duplicates,
// restarts at any record, strangers' records) and invariant checks
// (identical blocks, exactly once, restart equivalence). The core's own
// scenarios are datadriven scripts in testdata/core (see its README).
//
// # The protocol
//
// Each channel is a Kafka topic named after it, partition 0. Order wraps an
// envelope in a KafkaMessage{Regular{payload, config_seq, NORMAL}} and
// produces it (acks=all, idempotent). Every node consumes the partition in
// order from the offset after the last one persisted in its ledger, and
// feeds each record to its Core, the deterministic state machine that
// decides everything; the loop around it (one goroutine per chain) only
// does IO. So every node cuts the same blocks from the same log without any
// talk between nodes:
//
//   - Batching follows Fabric's block cutter (package blockcutter).
//   - When the first envelope of a batch arrives, a node starts a timer of
//     BatchTimeout; when it fires, the node produces TimeToCut{n} for the
//     next block n. The first TimeToCut{n} in the log cuts block n; later
//     ones are stale and ignored. One for a block beyond the next is
//     skipped by every node alike, as Fabric does: no node of the channel
//     writes one, and anyone who can write to the topic could, so halting
//     on it would let one record stop the channel.
//   - A CONFIG message cuts the pending batch, then goes alone in the next
//     block, and its configuration applies from the next message.
//   - A message validated under an older configuration sequence is
//     validated again: an invalid one is dropped, a valid one is produced
//     again with original_offset set; re-submissions already processed are
//     dropped as duplicates. When another config update makes a
//     re-submitted normal message stale again, only its first copy in the
//     log is re-submitted once more; the blocks record its original offset
//     (KafkaMetadata field 102) until it is processed, and every other
//     copy is a duplicate, where Fabric 1.4 would order one per copy. While a re-submitted CONFIG message is in
//     flight, Order and Configure wait, so that nothing overtakes it. A
//     CONFIG message of Fabric's config tree holds a whole configuration
//     computed for its sequence, so it is not validated again as it is:
//     its configuration is computed again from its last_update against
//     the one in force (ConfigReprocessor, as Fabric's ProcessConfigMsg),
//     and each node re-submits the result signed by itself; the log keeps
//     the first. Such a channel needs every node's signing identity
//     (NewChain refuses it without WithSigner), and a node whose signature
//     the configuration no longer accepts halts.
//   - Records that are not orderer messages (anything another writer put in
//     the topic, or messages with fields the protocol does not define, or
//     an original offset that is not below the record's own) are skipped
//     by every node alike, logged and counted. With
//     WithEnvelopeValidation every node also validates each envelope it
//     consumes and skips invalid ones alike; without it, Kafka's ACLs are
//     the boundary (only orderers may write to channel topics).
//
// # Restart invariant
//
// Every block carries, in its ORDERER metadata slot, a KafkaMetadata with
// the offset of the last record it persisted, the last original offset
// processed and the last re-submitted config offset (Fabric's three
// fields); the identity of the log it was cut from (fields of our own,
// 100 and 101, which Fabric's decoders skip): the topic ID, and a
// LogFingerprint of the last record consumed at or before the persisted
// offset (its offset, leader epoch and the SHA-256 of its value); and the
// original offsets re-submitted again and not yet processed (field 102,
// resubmitted_again). Every node writes the same values. The SIGNATURES
// slot's value is Fabric 1.4.12's OrdererBlockMetadata (the last config
// block's number and the ORDERER slot's bytes), so each node's signature
// covers the offsets. A restarting node reads its last block, restores the
// offsets and field 102, restores the channel configuration from the block
// its LAST_CONFIG slot names, and resumes consumption after the persisted
// offset. When a record both cuts a block and stays pending (or goes into
// a second block), the first block records the offset before it, so the
// record is consumed again after a restart. A restarted node therefore
// writes exactly the blocks it would have written had it not stopped.
//
// # The log is checked before it is trusted
//
// On start, and every time it consumes again after an interruption, a
// chain reads the log without writing to it (metadata, the log start and
// end offsets, and the record its last block fingerprinted) and its core
// decides (Core.CheckLog):
//
//   - another topic ID: the topic was deleted and created again
//     (ErrLogReplaced): halt;
//   - the log ends before the next offset (ErrLogTruncated): halt;
//   - the fingerprinted record is another record now, after an unclean
//     leader election or a rewritten log (ErrLogDiverged): halt;
//   - the log starts after the next offset: records the node has not
//     consumed are gone (retention, DeleteRecords; ErrRecordsMissing). The
//     chain pulls the blocks it lacks from its BlockSources (other nodes,
//     see WithBlockSources), verifies each one (number, previous hash,
//     data hash, metadata, an orderer's signature; config blocks as
//     updates of the configuration in force) and appends it, then consumes
//     after the last one. A source that fails or serves a bad block is
//     skipped. Without a usable source the chain halts.
//
// The first three wrap ErrInconsistent. The error is a *LogError naming the
// channel, the offsets and what differs. A chain that cannot trust its log
// never produces into it: no Connect, time-to-cut or re-submission.
//
// # Faults
//
// Kafka set-up (client, topic) is retried as RetryPolicy says, and the
// chain is not ready until it succeeds. While the partition cannot be
// consumed, Errored's channel is closed and Order fails fast with
// ErrNotReady; the chain stops consuming, asks Kafka every half second
// (metadata and offsets only, nothing is produced) whether the log can be
// used, checks it, and returns to ready on its own. It logs each change of
// state once and a repeated error at most once per 30 seconds, with a
// count. An Order whose envelope was not acknowledged returns an error
// wrapping ErrNotAcknowledged (the envelope may still be in the log).
// Ledger or signing failures halt the chain, logged at ERROR: a node never
// skips a block.
package consensus
