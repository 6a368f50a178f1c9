package fabricconfig_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
)

// signedBy returns one SignedData of msg per named fixture identity.
func signedBy(t *testing.T, msg []byte, names ...string) []msp.SignedData {
	t.Helper()
	var out []msp.SignedData
	for _, n := range names {
		id := identity(t, n)
		creator, err := id.Serialize()
		require.NoError(t, err)
		sig, err := id.Sign(msg)
		require.NoError(t, err)
		out = append(out, msp.SignedData{Data: msg, Identity: creator, Signature: sig})
	}
	return out
}

// policyCases is who satisfies which policy of fabchannel's genesis
// configuration, as Fabric evaluates them (see testdata/fabric/README.md:
// Org1MSP/Org2MSP Writers OR(admin, client), Readers OR(admin, peer,
// client), Admins OR(admin); OrdererOrg Readers/Writers OR(member), Admins
// OR(admin); implicit policies ANY Readers, ANY Writers, MAJORITY Admins;
// BlockValidation ANY Writers of the Orderer group).
var policyCases = []struct {
	path    string
	signers string // comma-separated fixture identities
	ok      bool
}{
	{fabricconfig.ChannelWriters, "User1@org1", true},
	{fabricconfig.ChannelWriters, "Admin@org2", true},
	{fabricconfig.ChannelWriters, "User1@org2", true},
	{fabricconfig.ChannelWriters, "orderer0", true},
	{fabricconfig.ChannelWriters, "peer0.org1", false},
	{fabricconfig.ChannelReaders, "peer0.org1", true},
	{fabricconfig.ChannelReaders, "User1@org1", true},
	{fabricconfig.ChannelReaders, "orderer0", true},
	{"/Channel/Application/Writers", "orderer0", false},
	{"/Channel/Application/Readers", "peer0.org1", true},
	{"/Channel/Orderer/Writers", "User1@org1", false},
	{fabricconfig.ChannelAdmins, "Admin@org1", false},
	{fabricconfig.ChannelAdmins, "Admin@org1,Admin@org2", false},
	{fabricconfig.ChannelAdmins, "Admin@org1,OrdererAdm", false},
	{fabricconfig.ChannelAdmins, "Admin@org1,Admin@org2,OrdererAdm", true},
	{fabricconfig.ChannelAdmins, "OrdererAdm,Admin@org2,User1@org1,Admin@org1", true},
	{"/Channel/Application/Admins", "Admin@org1,Admin@org2", true},
	{"/Channel/Application/Admins", "Admin@org1,Admin@org1", false},
	{"/Channel/Application/Admins", "Admin@org1,User1@org2", false},
	{fabricconfig.OrdererAdmins, "OrdererAdm", true},
	{fabricconfig.OrdererAdmins, "orderer0", false},
	{fabricconfig.BlockValidation, "orderer0", true},
	{fabricconfig.BlockValidation, "OrdererAdm", true},
	{fabricconfig.BlockValidation, "User1@org1,Admin@org1", false},
	{"/Channel/Application/Org1MSP/Admins", "Admin@org1", true},
	{"/Channel/Application/Org1MSP/Admins", "User1@org1", false},
	{"/Channel/Application/Org1MSP/Endorsement", "peer0.org1", true},
	{"/Channel/Application/Endorsement", "peer0.org1", false},
	{"/Channel/Application/LifecycleEndorsement", "peer0.org1,User1@org2", false},
	{"/Channel/Orderer/OrdererOrg/Readers", "orderer0", true},
}

func TestFixturePolicies(t *testing.T) {
	b := bundleAt(t, 0)
	msg := []byte("message")
	for _, tc := range policyCases {
		t.Run(tc.path+" by "+tc.signers, func(t *testing.T) {
			err := b.EvaluatePolicy(tc.path, signedBy(t, msg, strings.Split(tc.signers, ",")...))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, channelconfig.ErrForbidden)
			require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied)
		})
	}
}

func TestEvaluatePolicyErrors(t *testing.T) {
	b := bundleAt(t, 0)
	msg := []byte("message")
	good := signedBy(t, msg, "User1@org1")
	require.NoError(t, b.EvaluatePolicy("Writers", good), "relative to the channel group")
	require.NoError(t, b.EvaluatePolicy("Application/Org1MSP/Writers", good))
	for _, path := range []string{"/Channel/Nope", "Channel/Writers", "/Channel", "/Channel/", "/Channel/Application/Nope/Writers", "/Other/Writers", ""} {
		err := b.EvaluatePolicy(path, good)
		require.ErrorIs(t, err, channelconfig.ErrForbidden, path)
		require.NotErrorIs(t, err, msp.ErrPolicyNotSatisfied, path)
	}
	// A signature over other data, or by nobody the channel knows.
	bad := signedBy(t, []byte("other"), "User1@org1")
	bad[0].Data = msg
	require.ErrorIs(t, b.EvaluatePolicy(fabricconfig.ChannelWriters, bad), channelconfig.ErrForbidden)
	require.ErrorIs(t, b.EvaluatePolicy(fabricconfig.ChannelWriters, nil), msp.ErrPolicyNotSatisfied)

	// Fabric's wording, and the failing signature policies in detail.
	err := b.EvaluatePolicy(fabricconfig.OrdererAdmins, signedBy(t, msg, "Admin@org1"))
	require.ErrorContains(t, err, "implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Admins' sub-policies to be satisfied")
	require.ErrorContains(t, err, "/Channel/Orderer/OrdererOrg/Admins: msp: signature policy not satisfied")
}
