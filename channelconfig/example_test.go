package channelconfig_test

import (
	"errors"
	"fmt"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ExampleFromGenesisBlock builds a channel of one organisation, reads its
// genesis block back and validates envelopes against it.
func ExampleFromGenesisBlock() {
	org1 := testutil.NewCA(nil, "Org1MSP")
	alice := org1.Issue("alice")
	stranger := testutil.NewCA(nil, "Org9MSP").Issue("stranger")

	genesis, err := channelconfig.GenesisBlock(testutil.ChannelConfig("mychannel", []*testutil.CA{org1}))
	if err != nil {
		panic(err)
	}
	bundle, err := channelconfig.FromGenesisBlock(genesis)
	if err != nil {
		panic(err)
	}
	fmt.Println(bundle.ChannelID(), "sequence", bundle.Sequence(), "timeout", bundle.BatchTimeout())

	err = bundle.ValidateNormal(testutil.Envelope(alice, "mychannel", cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx")))
	fmt.Println("alice:", err)
	err = bundle.ValidateNormal(testutil.Envelope(stranger, "mychannel", cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx")))
	fmt.Println("stranger forbidden:", errors.Is(err, channelconfig.ErrForbidden))
	err = bundle.ValidateNormal(testutil.Envelope(alice, "otherchannel", cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx")))
	fmt.Println("wrong channel:", errors.Is(err, channelconfig.ErrWrongChannel))
	// Output:
	// mychannel sequence 0 timeout 2s
	// alice: <nil>
	// stranger forbidden: true
	// wrong channel: true
}
