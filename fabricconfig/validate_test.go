package fabricconfig_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// TestFixtureBlockSignatures verifies the SIGNATURES metadata of Fabric's
// blocks 1-9 against BlockValidation of the configuration in force, as a
// peer does, and rejects tampered blocks.
func TestFixtureBlockSignatures(t *testing.T) {
	bundles := map[uint64]int{0: 0, 4: 4, 8: 8}
	for n := 1; n <= 9; n++ {
		blk := block(t, n)
		last, err := protoutil.LastConfigIndex(blk)
		require.NoError(t, err)
		at, ok := bundles[last]
		require.True(t, ok, "block %d: last config %d", n, last)
		require.NoError(t, bundleAt(t, at).VerifyBlockSignatures(blk), "block %d", n)
	}

	b := bundleAt(t, 0)
	sigs := func(blk *cb.Block) *cb.Metadata {
		md, err := protoutil.Metadata(blk, cb.BlockMetadataIndex_SIGNATURES)
		require.NoError(t, err)
		return md
	}
	user1, err := identity(t, "User1@org1").Serialize()
	require.NoError(t, err)
	tests := []struct {
		name   string
		tamper func(blk *cb.Block)
		want   error
	}{
		{"signature", func(blk *cb.Block) {
			md := sigs(blk)
			md.Signatures[0].Signature[12] ^= 1
			protoutil.SetMetadata(blk, cb.BlockMetadataIndex_SIGNATURES, md)
		}, channelconfig.ErrForbidden},
		{"header number", func(blk *cb.Block) { blk.Header.Number++ }, channelconfig.ErrForbidden},
		{"previous hash", func(blk *cb.Block) { blk.Header.PreviousHash[0] ^= 1 }, channelconfig.ErrForbidden},
		{"metadata value", func(blk *cb.Block) {
			md := sigs(blk)
			md.Value = append(md.Value, 0)
			protoutil.SetMetadata(blk, cb.BlockMetadataIndex_SIGNATURES, md)
		}, channelconfig.ErrForbidden},
		{"signer replaced", func(blk *cb.Block) {
			md := sigs(blk)
			sh := new(cb.SignatureHeader)
			require.NoError(t, proto.Unmarshal(md.Signatures[0].SignatureHeader, sh))
			sh.Creator = user1
			md.Signatures[0].SignatureHeader = mustMarshal(t, sh)
			protoutil.SetMetadata(blk, cb.BlockMetadataIndex_SIGNATURES, md)
		}, channelconfig.ErrForbidden},
		{"no signatures", func(blk *cb.Block) {
			md := sigs(blk)
			md.Signatures = nil
			protoutil.SetMetadata(blk, cb.BlockMetadataIndex_SIGNATURES, md)
		}, channelconfig.ErrForbidden},
		{"data", func(blk *cb.Block) { blk.Data.Data[0] = append(blk.Data.Data[0], 0) }, channelconfig.ErrMalformed},
		{"garbage signatures slot", func(blk *cb.Block) { blk.Metadata.Metadata[0] = []byte{0xff} }, channelconfig.ErrMalformed},
		{"garbage signature header", func(blk *cb.Block) {
			md := sigs(blk)
			md.Signatures[0].SignatureHeader = []byte{0xff}
			protoutil.SetMetadata(blk, cb.BlockMetadataIndex_SIGNATURES, md)
		}, channelconfig.ErrMalformed},
		{"no metadata", func(blk *cb.Block) { blk.Metadata = nil }, channelconfig.ErrMalformed},
		{"no header", func(blk *cb.Block) { blk.Header = nil }, channelconfig.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blk := block(t, 2)
			tt.tamper(blk)
			err := b.VerifyBlockSignatures(blk)
			require.ErrorIs(t, err, tt.want)
		})
	}
	// The genesis block carries no signature.
	require.ErrorIs(t, b.VerifyBlockSignatures(genesisBlock(t)), msp.ErrPolicyNotSatisfied)
}

// TestFixtureNormalEnvelopes validates the transactions Fabric's orderer
// ordered in blocks 1-3 under the genesis configuration, and envelopes that
// Fabric's Broadcast would refuse.
func TestFixtureNormalEnvelopes(t *testing.T) {
	b := bundleAt(t, 0)
	n := 0
	for i := 1; i <= 3; i++ {
		blk := block(t, i)
		for j := range blk.Data.Data {
			require.NoError(t, b.ValidateNormal(envelope(t, blk, j)), "block %d envelope %d", i, j)
			n++
		}
	}
	require.Equal(t, 25, n)

	stranger := testutil.NewCA(t, "Org1MSP", testutil.WithCAClock(now)).Issue("mallory", testutil.WithOU(testutil.OUClient))
	org3 := testutil.NewCA(t, "Org3MSP", testutil.WithCAClock(now)).Issue("carol")
	user1 := identity(t, "User1@org1")
	badSig := testutil.Envelope(user1, channel, cb.HeaderType_ENDORSER_TRANSACTION, []byte("x"))
	badSig.Signature = testutil.Envelope(user1, channel, cb.HeaderType_ENDORSER_TRANSACTION, []byte("y")).Signature
	tests := []struct {
		name   string
		env    *cb.Envelope
		want   error
		status cb.Status
	}{
		{"User1@org2", testutil.Envelope(identity(t, "User1@org2"), channel, cb.HeaderType_ENDORSER_TRANSACTION, nil), nil, cb.Status_SUCCESS},
		{"Admin@org2", testutil.Envelope(identity(t, "Admin@org2"), channel, cb.HeaderType_MESSAGE, nil), nil, cb.Status_SUCCESS},
		{"orderer0", testutil.Envelope(identity(t, "orderer0"), channel, cb.HeaderType_MESSAGE, nil), nil, cb.Status_SUCCESS},
		{"unknown CA", testutil.Envelope(stranger, channel, cb.HeaderType_ENDORSER_TRANSACTION, nil), msp.ErrUntrusted, cb.Status_FORBIDDEN},
		{"unknown MSP", testutil.Envelope(org3, channel, cb.HeaderType_ENDORSER_TRANSACTION, nil), msp.ErrUnknownMSP, cb.Status_FORBIDDEN},
		{"peer is no writer", testutil.Envelope(identity(t, "peer0.org1"), channel, cb.HeaderType_ENDORSER_TRANSACTION, nil), msp.ErrPolicyNotSatisfied, cb.Status_FORBIDDEN},
		{"bad signature", badSig, channelconfig.ErrBadSignature, cb.Status_FORBIDDEN},
		{"other channel", testutil.Envelope(user1, "other", cb.HeaderType_ENDORSER_TRANSACTION, nil), channelconfig.ErrWrongChannel, cb.Status_BAD_REQUEST},
		{"CONFIG_UPDATE", update(t, "u1-batchsize-20"), channelconfig.ErrMalformed, cb.Status_BAD_REQUEST},
		{"CONFIG", envelope(t, block(t, 4), 0), channelconfig.ErrMalformed, cb.Status_BAD_REQUEST},
		{"garbage", &cb.Envelope{Payload: []byte{0xff}}, channelconfig.ErrMalformed, cb.Status_BAD_REQUEST},
		{"nil", nil, channelconfig.ErrMalformed, cb.Status_BAD_REQUEST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.ValidateNormal(tt.env)
			if h, herr := protoutil.EnvelopeHeaders(tt.env); herr == nil {
				require.Equal(t, fmt.Sprint(err), fmt.Sprint(b.ValidateNormalHeaders(tt.env, h)), "with the headers decoded by the caller")
			}
			require.Equal(t, tt.status, status(err), "error %v", err)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func TestValidateDeliver(t *testing.T) {
	b := bundleAt(t, 8)
	seek := func(name string) *cb.Envelope {
		return testutil.Envelope(identity(t, name), channel, cb.HeaderType_DELIVER_SEEK_INFO, nil)
	}
	require.NoError(t, b.ValidateDeliver(seek("peer0.org1")))
	require.NoError(t, b.ValidateDeliver(seek("User1@org2")))
	require.NoError(t, b.ValidateDeliver(seek("orderer0")))
	stranger := testutil.NewCA(t, "Org1MSP", testutil.WithCAClock(now)).Issue("mallory", testutil.WithOU(testutil.OUPeer))
	require.ErrorIs(t, b.ValidateDeliver(testutil.Envelope(stranger, channel, cb.HeaderType_DELIVER_SEEK_INFO, nil)), channelconfig.ErrForbidden)
	require.ErrorIs(t, b.ValidateDeliver(testutil.Envelope(identity(t, "peer0.org1"), channel, cb.HeaderType_ENDORSER_TRANSACTION, nil)), channelconfig.ErrMalformed)
	require.ErrorIs(t, b.ValidateDeliver(testutil.Envelope(identity(t, "peer0.org1"), "other", cb.HeaderType_DELIVER_SEEK_INFO, nil)), channelconfig.ErrWrongChannel)
}

// TestValidateConcurrent validates envelopes of valid and invalid creators
// from several goroutines; run it with -race.
func TestValidateConcurrent(t *testing.T) {
	b := bundleAt(t, 0)
	good := []*cb.Envelope{envelope(t, block(t, 1), 0), testEnvelope(t, "User1@org2"), testEnvelope(t, "Admin@org1")}
	bad := []*cb.Envelope{testEnvelope(t, "peer0.org1"), envelope(t, block(t, 4), 0)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				if err := b.ValidateNormal(good[(g+i)%len(good)]); err != nil {
					t.Error(err)
					return
				}
				if err := b.ValidateNormal(bad[(g+i)%len(bad)]); err == nil {
					t.Error("invalid envelope accepted")
					return
				}
			}
		})
	}
	wg.Wait()
}
