package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// BlockSource is another node's copy of a channel's blocks. A chain whose
// log no longer holds records it has not consumed (retention or
// DeleteRecords removed them, or a new node joins late) pulls the blocks it
// lacks from its sources (see WithBlockSources), verifies each one, and
// resumes consuming after the last.
type BlockSource interface {
	// Blocks calls fn with the channel's blocks from number from on, in
	// order, up to the newest block the source has, and returns nil once
	// it has sent them all. It stops early, returning fn's error, when fn
	// fails, and returns ctx's error when ctx ends. A source that waits on
	// the network must bound the wait (a peer that stops answering): the
	// chain waits for Blocks before it tries the next source. Blocks may be
	// called concurrently for different channels.
	Blocks(ctx context.Context, channel string, from uint64, fn func(*cb.Block) error) error
}

// BlockVerifier is the optional interface of a ChannelConfig that can
// verify the signatures of a block another node serves. BundleConfig
// implements it: at least one valid signature by a member of an orderer
// organisation.
type BlockVerifier interface {
	// VerifyBlockSignatures checks the SIGNATURES metadata of b.
	VerifyBlockSignatures(b *cb.Block) error
}

// ErrBadBlock reports a block from a BlockSource that does not verify.
var ErrBadBlock = errors.New("consensus: block does not verify")

// verifyBlock checks that b is the block that follows prev, whose LAST_CONFIG
// slot named lastConfig, under cfg: its number and previous hash, its data
// hash, metadata that agrees with itself (the ORDERER and LAST_CONFIG slots
// are what the signed SIGNATURES value says, when it says anything), and its
// signatures (cfg's BlockVerifier, or verify when not nil). A config block
// must hold one envelope that is a valid update of cfg: the configuration
// it establishes is returned; otherwise cfg is.
func verifyBlock(prev *cb.BlockHeader, lastConfig uint64, b *cb.Block, cfg ChannelConfig, verify func(ChannelConfig, *cb.Block) error) (ChannelConfig, error) {
	next, err := checkBlock(prev, lastConfig, b, cfg, verify)
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", ErrBadBlock, b.GetHeader().GetNumber(), err)
	}
	return next, nil
}

func checkBlock(prev *cb.BlockHeader, lastConfig uint64, b *cb.Block, cfg ChannelConfig, verify func(ChannelConfig, *cb.Block) error) (ChannelConfig, error) {
	h := b.GetHeader()
	switch {
	case h == nil:
		return nil, errors.New("no header")
	case h.Number != prev.Number+1:
		return nil, fmt.Errorf("number %d, want %d", h.Number, prev.Number+1)
	case !bytes.Equal(h.PreviousHash, protoutil.HeaderHash(prev)):
		return nil, errors.New("previous hash is not the hash of the previous block's header")
	}
	if err := protoutil.CheckDataHash(b); err != nil {
		return nil, err
	}
	lc, err := protoutil.LastConfigIndex(b)
	if err != nil {
		return nil, err
	}
	isConfig := lc == h.Number
	if !isConfig && lc != lastConfig {
		return nil, fmt.Errorf("last config block %d, want %d", lc, lastConfig)
	}
	if _, err := KafkaMetadataOf(b); err != nil {
		return nil, err
	}
	if err := checkSignedMetadata(b, lc); err != nil {
		return nil, err
	}
	if verify == nil {
		v, ok := cfg.(BlockVerifier)
		if !ok {
			return nil, fmt.Errorf("the channel configuration (%T) cannot verify block signatures", cfg)
		}
		verify = func(_ ChannelConfig, b *cb.Block) error { return v.VerifyBlockSignatures(b) }
	}
	if err := verify(cfg, b); err != nil {
		return nil, err
	}
	if !isConfig {
		return cfg, nil
	}
	if n := len(b.GetData().GetData()); n != 1 {
		return nil, fmt.Errorf("config block with %d envelopes", n)
	}
	env, err := protoutil.UnmarshalEnvelope(b.Data.Data[0])
	if err != nil {
		return nil, err
	}
	next, err := cfg.ValidateConfig(env)
	if err != nil {
		return nil, fmt.Errorf("config envelope: %w", err)
	}
	return next, nil
}

// checkSignedMetadata checks that the signed value of b's SIGNATURES slot,
// when set, names the block's last config block and carries exactly the
// ORDERER slot's bytes: the unsigned slots then say what the signer signed.
func checkSignedMetadata(b *cb.Block, lastConfig uint64) error {
	md, err := protoutil.Metadata(b, cb.BlockMetadataIndex_SIGNATURES)
	if err != nil {
		return err
	}
	if len(md.Value) == 0 {
		return nil // written before the signed value existed
	}
	obm := new(cb.OrdererBlockMetadata)
	if err := proto.Unmarshal(md.Value, obm); err != nil {
		return fmt.Errorf("decoding OrdererBlockMetadata: %w", err)
	}
	if obm.GetLastConfig().GetIndex() != lastConfig {
		return fmt.Errorf("signed last config %d, LAST_CONFIG slot %d", obm.GetLastConfig().GetIndex(), lastConfig)
	}
	if !bytes.Equal(obm.ConsenterMetadata, b.Metadata.Metadata[cb.BlockMetadataIndex_ORDERER]) {
		return errors.New("the ORDERER slot is not the signed consenter metadata")
	}
	return nil
}

// catchUp pulls the blocks the log no longer holds from the block sources,
// in turn, until the log holds every record after the last block pulled.
// A source that fails or serves a block that does not verify is skipped.
// It returns nil once caught up (the caller checks the log again); an error
// wrapping missing and errSourcesBehind when the sources answered but none
// has cut a block past the gap yet (the records after their last block,
// gone from the log, are still in their memory: they will cut them), to be
// retried; or missing itself when no source could be used.
func (ch *Chain) catchUp(missing *LogError) error {
	ch.quiet.Log(logWarn, "catch-up", "records missing from the log, catching up from other nodes", "err", missing, "sources", len(ch.cfg.sources))
	usable := false
	for _, src := range ch.cfg.sources {
		before := ch.core.Height()
		err := ch.pull(src)
		if ch.ctx.Err() != nil {
			return ch.ctx.Err()
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err // the ledger failed: no source can help
		}
		if err != nil {
			ch.log.Warn("block source skipped", "source", sourceName(src), "err", err)
			continue
		}
		usable = true
		if ch.core.Height() > before {
			ch.log.Info("caught up from a block source", "source", sourceName(src), "from", before, "height", ch.core.Height(), "next_offset", ch.core.Position())
		}
		if ch.core.Position() >= missing.Start {
			ch.quiet.Reset("catch-up")
			return nil
		}
	}
	if usable {
		return fmt.Errorf("%w: %w", errSourcesBehind, missing)
	}
	return missing
}

// errSourcesBehind reports block sources that have no block past the
// records missing from the log yet.
var errSourcesBehind = errors.New("no block source has cut a block past the missing records yet")

// pull appends the blocks src serves after the ledger's last one, each
// verified, and restarts the core after the last.
func (ch *Chain) pull(src BlockSource) error {
	last, err := ch.ledger.Block(ch.ledger.Height() - 1)
	if err != nil {
		return err
	}
	cfg := ch.core.Config()
	lastConfig, err := protoutil.LastConfigIndex(last)
	if err != nil {
		return err
	}
	prev, appended := last.Header, false
	defer func() {
		if appended {
			ch.restartCore(cfg)
		}
	}()
	return src.Blocks(ch.ctx, ch.channel, prev.Number+1, func(b *cb.Block) error {
		next, err := verifyBlock(prev, lastConfig, b, cfg, ch.cfg.verifier)
		if err != nil {
			return err
		}
		if err := ch.ledger.Append(b); err != nil {
			return &permanentError{fmt.Errorf("appending block %d: %w", b.Header.Number, err)}
		}
		if next != cfg {
			lastConfig = b.Header.Number
		}
		prev, cfg, appended = b.Header, next, true
		return nil
	})
}

// restartCore replaces the core by one that continues after the ledger's
// last block, with cfg in force.
func (ch *Chain) restartCore(cfg ChannelConfig) {
	last, err := ch.ledger.Block(ch.ledger.Height() - 1)
	if err == nil {
		var core *Core
		if core, err = NewCore(ch.channel, CoreState{LastBlock: last, Config: cfg}, ch.cfg.coreOpts()...); err == nil {
			ch.core = core
			ch.config.Store(&configBox{cfg})
			ch.tracing.lastOff = core.LastOffsetPersisted()
			return
		}
	}
	ch.fatal(fmt.Errorf("restarting after catch-up: %w", err))
}

// sourceName names a block source in logs.
func sourceName(src BlockSource) string {
	if s, ok := src.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", src)
}
