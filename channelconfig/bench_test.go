package channelconfig_test

import (
	"testing"

	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// BenchmarkValidateNormal measures Bundle.ValidateNormal of one envelope
// under the default policies (Writers is ANY Writers of two
// organisations), signed by a member of the first or of the second
// organisation evaluated.
func BenchmarkValidateNormal(b *testing.B) {
	org1, org2 := testutil.NewCA(b, "Org1MSP"), testutil.NewCA(b, "Org2MSP")
	bundle := testutil.Bundle(b, testutil.ChannelConfig(channel, []*testutil.CA{org1, org2}))
	for _, bc := range []struct {
		name   string
		signer *testutil.Identity
	}{
		{"first-org", org1.Issue("alice")},
		{"second-org", org2.Issue("bob")},
	} {
		env := testutil.Envelope(bc.signer, channel, cb.HeaderType_ENDORSER_TRANSACTION, make([]byte, 256))
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bundle.ValidateNormal(env); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bundle.ValidateNormal(env); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
