package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// fabricGenesis is a configure function of newNetwork that replaces the
// network's genesis block, before the nodes start, by the one the genesis
// command writes in Fabric's config tree, its default format.
func fabricGenesis(nw *network, i int, _ *nodeConfig) {
	if i != 0 {
		return
	}
	var out bytes.Buffer
	crypto := filepath.Join(nw.dir, "crypto")
	require.NoError(nw.t, dispatch(context.Background(), []string{"genesis", "--channel", testChannel,
		"--org", "Org1MSP=" + filepath.Join(crypto, "org1", "msp"),
		"--orderer-org", "OrdererMSP=" + filepath.Join(crypto, "orderer", "msp"),
		"--max-message-count", "10", "--batch-timeout", "100ms", "--orderer-address", "127.0.0.1:7050",
		"-o", nw.genesis}, &out, &out), out.String())
}

// TestFabricFormatGenesis starts a node on the block the genesis command
// writes by default: Fabric's config tree, which Fabric's tools read. Its
// policies are Fabric's defaults; a CONFIG_UPDATE made as configtxlator
// makes it, signed by the orderer organisation's admin, changes the batch
// size; the node's blocks verify against BlockValidation.
func TestFabricFormatGenesis(t *testing.T) {
	nw := newNetwork(t, 1, fabricGenesis)
	raw, err := os.ReadFile(nw.genesis)
	require.NoError(t, err)
	genesis, err := protoutil.UnmarshalBlock(raw)
	require.NoError(t, err)
	require.True(t, fabricconfig.IsFabricConfig(genesis))
	chain := nw.nodes[0].chains[testChannel]
	cfg, ok := chain.Config().(consensus.FabricConfig)
	require.True(t, ok, "%T", chain.Config())
	require.Equal(t, []string{"127.0.0.1:7050"}, cfg.OrdererAddresses())

	user := nw.signer("org1/users/user1/msp", "Org1MSP")
	c := nw.client(0)
	var out bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"cryptogen", "--out", filepath.Join(nw.dir, "crypto", "org9"), "--mspid", "Org9MSP", "--orderers", "0"}, &out, &out))
	outsider := nw.signer("org9/users/user1/msp", "Org9MSP")
	require.Equal(t, cb.Status_SUCCESS, broadcastOne(t, c, txEnvelope(t, user, testChannel, []byte("hello"))).GetStatus())
	require.Equal(t, cb.Status_FORBIDDEN, broadcastOne(t, c, txEnvelope(t, outsider, testChannel, []byte("x"))).GetStatus())

	// BatchSize 10 -> 3, as an operator edits the config with configtxlator.
	next := cfg.Config()
	bs := new(ab.BatchSize)
	orderer := next.ChannelGroup.Groups[fabricconfig.OrdererGroupKey]
	require.NoError(t, proto.Unmarshal(orderer.Values[fabricconfig.BatchSizeKey].Value, bs))
	bs.MaxMessageCount = 3
	orderer.Values[fabricconfig.BatchSizeKey].Value = protoutil.MarshalOrPanic(bs)
	update, err := fabricconfig.ComputeUpdate(testChannel, cfg.Config(), next)
	require.NoError(t, err)
	ordererAdmin := nw.signer("orderer/users/admin/msp", "OrdererMSP")
	for _, tc := range []struct {
		signer msp.SigningIdentity
		want   cb.Status
	}{{user, cb.Status_BAD_REQUEST}, {ordererAdmin, cb.Status_SUCCESS}} {
		env, err := fabricconfig.NewConfigUpdateEnvelope(update, tc.signer)
		require.NoError(t, err)
		r := broadcastOne(t, c, env)
		require.Equal(t, tc.want, r.GetStatus(), r.GetInfo())
	}
	require.Eventually(t, func() bool { return chain.Config().BatchLimits().MaxMessageCount == 3 }, 10*time.Second, 10*time.Millisecond)
	nw.send(0, 6, "after")
	blocks := followUntil(t, c, user, 1+1+6)
	checkChain(t, blocks)
	for _, b := range blocks[1:] {
		require.NoError(t, chain.Config().(consensus.FabricConfig).VerifyBlockSignatures(b), "block %d", b.Header.Number)
	}
}

// TestFabricMadeGenesisBlock starts a node, signing as Fabric's orderer0,
// on the genesis block Fabric's own orderer made for fabchannel: it serves
// the fixture users, and applies the config update u1 as Fabric did.
func TestFabricMadeGenesisBlock(t *testing.T) {
	const fixtures = "../../fabricconfig/testdata/fabric"
	const channel = "fabchannel"
	nw := newNetwork(t, 1, func(_ *network, _ int, c *nodeConfig) {
		c.genesis = []string{filepath.Join(fixtures, "fabchannel-genesis.block")}
		c.signer = signerFlags{dir: filepath.Join(fixtures, "crypto/ordererOrganizations/example.com/orderers/orderer0.example.com/msp"), mspID: "OrdererMSP"}
	})
	user, err := msp.LoadSigningIdentity(filepath.Join(fixtures, "crypto/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp"), "Org1MSP")
	require.NoError(t, err)
	c := nw.client(0)
	require.Equal(t, cb.Status_SUCCESS, broadcastOne(t, c, txEnvelope(t, user, channel, []byte("from a Fabric user"))).GetStatus())
	u1 := new(cb.Envelope)
	raw, err := os.ReadFile(filepath.Join(fixtures, "updates/u1-batchsize-20.pb"))
	require.NoError(t, err)
	require.NoError(t, proto.Unmarshal(raw, u1))
	r := broadcastOne(t, c, u1)
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
	chain := nw.nodes[0].chains[channel]
	require.Eventually(t, func() bool { return chain.Config().BatchLimits().MaxMessageCount == 20 }, 10*time.Second, 10*time.Millisecond)
	blocks, st := deliverBlocks(t, c, seek(t, user, channel, seekOldest(), seekNewest(), ab.SeekInfo_FAIL_IF_NOT_READY))
	require.Equal(t, cb.Status_SUCCESS, st)
	require.GreaterOrEqual(t, len(blocks), 3, "genesis, the envelope, the config")
}
