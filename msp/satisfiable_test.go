package msp_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
)

// TestCouldSatisfy judges policies against what the MSPs define: an
// unknown MSP, an admin role without admins, or a NodeOU role without
// NodeOUs can never be satisfied.
func TestCouldSatisfy(t *testing.T) {
	plain := testutil.NewCA(t, "PlainMSP") // no admins listed, no NodeOUs
	admins := testutil.NewCA(t, "AdminsMSP")
	admins.Issue("admin", testutil.ListedAdmin())
	ous := testutil.NewCA(t, "OUMSP", testutil.WithNodeOUs())
	mgr, err := msp.NewManager(plain.MSP(), admins.MSP(), ous.MSP())
	require.NoError(t, err)
	for _, tt := range []struct {
		policy string
		ok     bool
	}{
		{"OR('PlainMSP.member')", true},
		{"OR('PlainMSP.admin')", false},
		{"OR('PlainMSP.client')", false},
		{"OR('AdminsMSP.admin')", true},
		{"OR('OUMSP.admin', 'OUMSP.peer', 'OUMSP.client', 'OUMSP.orderer')", true},
		{"OR('OUMSP.peer')", true},
		{"OR('GoneMSP.member')", false},
		{"OR('GoneMSP.member', 'PlainMSP.member')", true},
		{"AND('GoneMSP.member', 'PlainMSP.member')", false},
		{"OutOf(2, 'PlainMSP.admin', 'AdminsMSP.admin', 'OUMSP.admin')", true},
		{"OutOf(3, 'PlainMSP.admin', 'AdminsMSP.admin', 'OUMSP.admin')", false},
	} {
		env, err := msp.FromString(tt.policy)
		require.NoError(t, err, tt.policy)
		err = mgr.CouldSatisfy(env)
		if tt.ok {
			require.NoError(t, err, tt.policy)
		} else {
			require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied, tt.policy)
			t.Logf("%s: %v", tt.policy, err)
		}
	}
}
