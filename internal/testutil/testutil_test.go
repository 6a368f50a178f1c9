package testutil_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func TestCAAndEnvelope(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP", testutil.WithNodeOUs())
	ica := ca.NewIntermediate()
	require.Same(t, ca.CA, ica.Root().CA)
	alice := ica.Issue("alice", testutil.WithOU(testutil.OUClient))
	m := ca.MSP()
	require.NoError(t, m.Validate(alice))

	env := testutil.Envelope(alice, "ch", cb.HeaderType_MESSAGE, []byte("data"))
	h, err := protoutil.EnvelopeHeaders(env)
	require.NoError(t, err)
	require.Equal(t, "ch", h.ChannelHeader.ChannelId)
	require.Equal(t, alice.Serialized(), h.SignatureHeader.Creator)
	require.Len(t, h.SignatureHeader.Nonce, 24)
	require.NotEmpty(t, h.ChannelHeader.TxId)
	require.Equal(t, []byte("data"), h.Payload.Data)
	require.NoError(t, alice.Verify(env.Payload, env.Signature))
}

func TestWriteMSPDirLoads(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP")
	signer := ca.Issue("peer0", testutil.Ed25519Key())
	dir := filepath.Join(t.TempDir(), "msp")
	require.NoError(t, ca.WriteMSPDir(dir, signer))
	cfg, err := msp.LoadDir(dir, "Org1MSP")
	require.NoError(t, err)
	m, err := msp.New(cfg)
	require.NoError(t, err)
	si, err := msp.LoadSigningIdentity(dir, "Org1MSP")
	require.NoError(t, err)
	require.NoError(t, m.Validate(si))
}

func TestChannelConfig(t *testing.T) {
	org1, org2 := testutil.NewCA(t, "Org1MSP"), testutil.NewCA(t, "Org2MSP")
	cfg := testutil.ChannelConfig("ch", []*testutil.CA{org1}, testutil.WithOrdererOrgs(org2))
	b, err := channelconfig.FromGenesisBlock(testutil.GenesisBlock(t, cfg))
	require.NoError(t, err)
	require.Equal(t, []string{"Org1MSP", "Org2MSP"}, b.MSPManager().MSPIDs())
	require.NoError(t, b.ValidateNormal(testutil.Envelope(org2.Issue("o"), "ch", cb.HeaderType_MESSAGE, nil)))
}
