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
	// fails, and returns ctx's error when ctx ends. Blocks may be called
	// concurrently for different channels.
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
