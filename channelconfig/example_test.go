package channelconfig_test

import (
	"errors"
	"fmt"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ExampleFromGenesisBlock builds a channel of one organisation, reads its
// genesis block back and validates envelopes against it.
func ExampleFromGenesisBlock() {
	org1, err := msptest.NewCA("Org1MSP")
	if err != nil {
		panic(err)
	}
	org9, err := msptest.NewCA("Org9MSP")
	if err != nil {
		panic(err)
	}
	alice, err := org1.Issue("alice")
	if err != nil {
		panic(err)
	}
	stranger, err := org9.Issue("stranger")
	if err != nil {
		panic(err)
	}
	envelope := func(signer *msptest.Identity, channel string) *cb.Envelope {
		env, err := signer.Envelope(cb.HeaderType_ENDORSER_TRANSACTION, channel, []byte("tx"))
		if err != nil {
			panic(err)
		}
		return env
	}

	genesis, err := channelconfig.GenesisBlock(msptest.ChannelConfig("mychannel", []*msptest.CA{org1}))
	if err != nil {
		panic(err)
	}
	bundle, err := channelconfig.FromGenesisBlock(genesis)
	if err != nil {
		panic(err)
	}
	fmt.Println(bundle.ChannelID(), "sequence", bundle.Sequence(), "timeout", bundle.BatchTimeout())

	err = bundle.ValidateNormal(envelope(alice, "mychannel"))
	fmt.Println("alice:", err)
	err = bundle.ValidateNormal(envelope(stranger, "mychannel"))
	fmt.Println("stranger forbidden:", errors.Is(err, channelconfig.ErrForbidden))
	err = bundle.ValidateNormal(envelope(alice, "otherchannel"))
	fmt.Println("wrong channel:", errors.Is(err, channelconfig.ErrWrongChannel))
	// Output:
	// mychannel sequence 0 timeout 2s
	// alice: <nil>
	// stranger forbidden: true
	// wrong channel: true
}
