package fabricconfig_test

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Example reads the genesis block Fabric's orderer wrote for fabchannel,
// processes a config update as Fabric's orderer does, and refuses a stale
// one with Fabric's answer.
func Example() {
	read := func(path string, m proto.Message) {
		raw, err := os.ReadFile("testdata/fabric/" + path)
		if err == nil {
			err = proto.Unmarshal(raw, m)
		}
		if err != nil {
			panic(err)
		}
	}
	genesis := new(cb.Block)
	read("fabchannel-genesis.block", genesis)
	fmt.Println(fabricconfig.IsFabricConfig(genesis))

	bundle, err := fabricconfig.FromConfigBlock(genesis, fabricconfig.WithClock(now))
	if err != nil {
		panic(err)
	}
	fmt.Println(bundle.ChannelID(), bundle.Sequence(), bundle.BatchSize().MaxMessageCount, bundle.BatchTimeout())

	orderer0, err := msp.LoadSigningIdentity("testdata/fabric/crypto/ordererOrganizations/example.com/orderers/orderer0.example.com/msp", "OrdererMSP")
	if err != nil {
		panic(err)
	}
	update := new(cb.Envelope)
	read("updates/u1-batchsize-20.pb", update)
	config, err := bundle.ProcessConfigUpdate(update, orderer0)
	if err != nil {
		panic(err)
	}
	next, err := bundle.ValidateConfig(config)
	if err != nil {
		panic(err)
	}
	fmt.Println(next.Sequence(), next.BatchSize().MaxMessageCount)

	read("updates/u5-stale-writeset.pb", update)
	_, err = next.ProcessConfigUpdate(update, orderer0)
	fmt.Println(err)
	// Output:
	// true
	// fabchannel 1 10 1s
	// 2 20
	// error applying config update to existing channel 'fabchannel': error authorizing update: error validating DeltaSet: attempt to set key [Value]  /Channel/Orderer/BatchSize to version 1, but key is at version 1
}
