package channelconfig

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// VerifyBlockSignatures checks the SIGNATURES metadata of b: at least one
// of its signatures must be by a valid member of an orderer organisation of
// this configuration, over the slot's value, the signature header and the
// block header (Fabric's block signature). Errors wrap ErrForbidden, or
// ErrMalformed for metadata that does not decode.
func (b *Bundle) VerifyBlockSignatures(block *cb.Block) error {
	md, err := protoutil.Metadata(block, cb.BlockMetadataIndex_SIGNATURES)
	if err != nil {
		return fmt.Errorf("%w: channel %s: block %d: %w", ErrMalformed, b.ChannelID(), block.GetHeader().GetNumber(), err)
	}
	if len(md.Signatures) == 0 {
		return fmt.Errorf("%w: channel %s: block %d is not signed", ErrForbidden, b.ChannelID(), block.GetHeader().GetNumber())
	}
	header := protoutil.HeaderBytes(block.GetHeader())
	signed := make([]msp.SignedData, 0, len(md.Signatures))
	for _, s := range md.Signatures {
		sh := new(cb.SignatureHeader)
		if err := proto.Unmarshal(s.SignatureHeader, sh); err != nil {
			return fmt.Errorf("%w: channel %s: block %d: signature header: %w", ErrMalformed, b.ChannelID(), block.GetHeader().GetNumber(), err)
		}
		data := make([]byte, 0, len(md.Value)+len(s.SignatureHeader)+len(header))
		data = append(append(append(data, md.Value...), s.SignatureHeader...), header...)
		signed = append(signed, msp.SignedData{Data: data, Identity: sh.Creator, Signature: s.Signature})
	}
	if err := b.mgr.CheckSignatures(signed).Evaluate(b.ordererMembers()); err != nil {
		return fmt.Errorf("%w: channel %s: block %d: no valid signature of an orderer: %w", ErrForbidden, b.ChannelID(), block.GetHeader().GetNumber(), err)
	}
	return nil
}

// ordererMembers is the policy "one member of any orderer organisation".
func (b *Bundle) ordererMembers() *cb.SignaturePolicyEnvelope {
	env := &cb.SignaturePolicyEnvelope{}
	var rules []*cb.SignaturePolicy
	for i, og := range b.cfg.GetOrdererOrgs() {
		env.Identities = append(env.Identities, msp.RolePrincipal(og.GetMspId(), mspb.MSPRole_MEMBER))
		rules = append(rules, msp.SignedBy(int32(i)))
	}
	env.Rule = msp.NOutOf(1, rules)
	return env
}
