package msptest_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

// Example makes an organisation with NodeOUs, an administrator and a
// client, a channel whose only member it is, and an envelope the channel
// accepts.
func Example() {
	org1, err := msptest.NewCA("Org1MSP", msptest.WithNodeOUs())
	if err != nil {
		log.Fatal(err)
	}
	admin, err := org1.Issue("admin", msptest.WithOU(msptest.OUAdmin))
	if err != nil {
		log.Fatal(err)
	}
	alice, err := org1.Issue("alice", msptest.WithOU(msptest.OUClient))
	if err != nil {
		log.Fatal(err)
	}
	genesis, err := msptest.GenesisBlock("mychannel", []*msptest.CA{org1}, msptest.WithBatchSize(100, 1<<20, 512<<10))
	if err != nil {
		log.Fatal(err)
	}
	bundle, err := channelconfig.FromGenesisBlock(genesis)
	if err != nil {
		log.Fatal(err)
	}
	env, err := alice.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, "mychannel", []byte("tx"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("envelope accepted:", bundle.ValidateNormal(env) == nil)

	m, err := org1.MSP()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("admin is an admin:", m.SatisfiesPrincipal(admin, org1.RolePrincipal(mspb.MSPRole_ADMIN)) == nil)
	fmt.Println("alice is an admin:", m.SatisfiesPrincipal(alice, org1.RolePrincipal(mspb.MSPRole_ADMIN)) == nil)
	// Output:
	// envelope accepted: true
	// admin is an admin: true
	// alice is an admin: false
}

// ExampleCA_WriteMSPDir writes an orderer's MSP folder, with its signing
// identity, and its TLS folder, as cryptogen does, then loads the identity
// back.
func ExampleCA_WriteMSPDir() {
	dir, err := os.MkdirTemp("", "msptest-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	org, err := msptest.NewCA("OrdererMSP", msptest.WithNodeOUs(), msptest.WithCAName("ca.example.com"))
	if err != nil {
		log.Fatal(err)
	}
	orderer, err := org.Issue("orderer0.example.com", msptest.WithOU(msptest.OUOrderer))
	if err != nil {
		log.Fatal(err)
	}
	if err := org.WriteMSPDir(filepath.Join(dir, "msp"), orderer); err != nil {
		log.Fatal(err)
	}
	tlsCert, err := org.IssueTLS("orderer0.example.com", []string{"orderer0.example.com", "127.0.0.1"})
	if err != nil {
		log.Fatal(err)
	}
	if err := tlsCert.WriteDir(filepath.Join(dir, "tls")); err != nil {
		log.Fatal(err)
	}

	si, err := msp.LoadSigningIdentity(filepath.Join(dir, "msp"), "OrdererMSP")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(si.MSPID(), si.Certificate().Subject.CommonName, si.OrganizationalUnits())
	// Output:
	// OrdererMSP orderer0.example.com [orderer]
}
