package msp_test

import (
	"testing"

	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
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

// BenchmarkEvaluate measures CheckedSignatures.Evaluate of Fabric's sample
// Writers policy of an organisation, OR('Org1MSP.admin', 'Org1MSP.client'),
// with a client's signature checked once: the admin principal fails on the
// way to the client one, as for every transaction.
func BenchmarkEvaluate(b *testing.B) {
	ca := testutil.NewCA(b, "Org1MSP", testutil.WithNodeOUs())
	client := ca.Issue("client", testutil.WithOU(msptest.OUClient))
	mgr := testutil.Manager(b, ca)
	policy, err := msp.FromString("OR('Org1MSP.admin', 'Org1MSP.client')")
	if err != nil {
		b.Fatal(err)
	}
	cs := mgr.CheckSignatures([]msp.SignedData{client.SignedData([]byte("tx"))})
	if err := cs.Err(0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := cs.Evaluate(policy); err != nil {
			b.Fatal(err)
		}
	}
}
