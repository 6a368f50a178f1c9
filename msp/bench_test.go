package msp_test

import (
	"testing"

	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
)

// BenchmarkDeserializeValidate measures what validating a creator costs:
// Manager.Deserialize followed by Manager.Validate of the same serialized
// identity, as every envelope does.
func BenchmarkDeserializeValidate(b *testing.B) {
	ca := testutil.NewCA(b, "Org1MSP")
	ica := ca.NewIntermediate()
	for _, bc := range []struct {
		name string
		id   *testutil.Identity
	}{
		{"root-issued", ca.Issue("alice")},
		{"intermediate-issued", ica.Issue("bob")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mgr := testutil.Manager(b, ca)
			ser := bc.id.Serialized()
			b.ReportAllocs()
			for b.Loop() {
				id, err := mgr.Deserialize(ser)
				if err != nil {
					b.Fatal(err)
				}
				if err := mgr.Validate(id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
