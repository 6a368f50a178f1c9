package fabricconfig_test

import "testing"

// BenchmarkValidateNormal measures Bundle.ValidateNormal of a transaction
// Fabric's orderer ordered (User1@org1's, block 1) under fabchannel's
// genesis configuration: /Channel/Writers is ANY of the Application and
// Orderer groups' ANY Writers.
func BenchmarkValidateNormal(b *testing.B) {
	bundle := bundleAt(b, 0)
	env := envelope(b, block(b, 1), 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := bundle.ValidateNormal(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProposeConfigUpdate measures computing the configuration of
// Fabric's update u1 (one value, signed by one orderer admin).
func BenchmarkProposeConfigUpdate(b *testing.B) {
	bundle := bundleAt(b, 0)
	env := update(b, "u1-batchsize-20")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bundle.ProposeConfigUpdate(env); err != nil {
			b.Fatal(err)
		}
	}
}
