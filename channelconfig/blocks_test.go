package channelconfig_test

import (
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// signBlock adds signers' signatures to b's SIGNATURES slot, as a node
// signs: over the slot's value, the signature header and the header.
func signBlock(t *testing.T, b *cb.Block, signers ...msp.SigningIdentity) *cb.Block {
	t.Helper()
	md := &cb.Metadata{Value: []byte("value")}
	for _, s := range signers {
		creator, err := s.Serialize()
		require.NoError(t, err)
		nonce := make([]byte, 24)
		rand.Read(nonce)
		sh := protoutil.MarshalOrPanic(&cb.SignatureHeader{Creator: creator, Nonce: nonce})
		msg := append(append(append([]byte(nil), md.Value...), sh...), protoutil.HeaderBytes(b.Header)...)
		sig, err := s.Sign(msg)
		require.NoError(t, err)
		md.Signatures = append(md.Signatures, &cb.MetadataSignature{SignatureHeader: sh, Signature: sig})
	}
	protoutil.SetMetadata(b, cb.BlockMetadataIndex_SIGNATURES, md)
	return b
}

// TestVerifyBlockSignatures: a block needs one valid signature by a member
// of an orderer organisation.
func TestVerifyBlockSignatures(t *testing.T) {
	orgs, cas := newOrgs(t, "AppMSP", "OrdererMSP")
	cfg := testutil.ChannelConfig(channel, cas[:1], testutil.WithOrdererOrgs(cas[1]))
	b, err := channelconfig.FromGenesisBlock(testutil.GenesisBlock(t, cfg))
	require.NoError(t, err)
	orderer, client := orgs[1].member.SigningIdentity, orgs[0].member.SigningIdentity
	block := func() *cb.Block { return protoutil.NewBlock(1, []byte("prev"), [][]byte{[]byte("tx")}) }

	require.NoError(t, b.VerifyBlockSignatures(signBlock(t, block(), orderer)))
	require.NoError(t, b.VerifyBlockSignatures(signBlock(t, block(), client, orderer)), "one orderer among others is enough")
	require.ErrorIs(t, b.VerifyBlockSignatures(signBlock(t, block(), client)), channelconfig.ErrForbidden, "an application member is not an orderer")
	require.ErrorIs(t, b.VerifyBlockSignatures(signBlock(t, block())), channelconfig.ErrForbidden, "unsigned")

	tampered := signBlock(t, block(), orderer)
	tampered.Header.Number = 2
	require.ErrorIs(t, b.VerifyBlockSignatures(tampered), channelconfig.ErrForbidden, "the signature covers the header")
	garbled := block()
	garbled.Metadata.Metadata[cb.BlockMetadataIndex_SIGNATURES] = []byte{0xff}
	require.ErrorIs(t, b.VerifyBlockSignatures(garbled), channelconfig.ErrMalformed)
}
