package fabricconfig_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// The Fabric-made fixtures (see testdata/fabric/README.md).
const (
	fixtures = "testdata/fabric"
	channel  = "fabchannel"
)

// now is the clock of every bundle of the tests: within the validity of
// the fixtures' certificates (2026-11-29 to 2036-11-26) whenever the tests
// run.
func now() time.Time { return time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC) }

var clock = fabricconfig.WithClock(now)

// Identities of the fixtures, by name, with their MSP and folder under
// testdata/fabric/crypto.
var identities = map[string]struct{ mspID, dir string }{
	"orderer0":   {"OrdererMSP", "ordererOrganizations/example.com/orderers/orderer0.example.com"},
	"OrdererAdm": {"OrdererMSP", "ordererOrganizations/example.com/users/Admin@example.com"},
	"peer0.org1": {"Org1MSP", "peerOrganizations/org1.example.com/peers/peer0.org1.example.com"},
	"Admin@org1": {"Org1MSP", "peerOrganizations/org1.example.com/users/Admin@org1.example.com"},
	"User1@org1": {"Org1MSP", "peerOrganizations/org1.example.com/users/User1@org1.example.com"},
	"Admin@org2": {"Org2MSP", "peerOrganizations/org2.example.com/users/Admin@org2.example.com"},
	"User1@org2": {"Org2MSP", "peerOrganizations/org2.example.com/users/User1@org2.example.com"},
}

// identity loads a fixture identity with its private key.
func identity(t testing.TB, name string) msp.SigningIdentity {
	t.Helper()
	x, ok := identities[name]
	require.True(t, ok, "no fixture identity %s", name)
	id, err := msp.LoadSigningIdentity(filepath.Join(fixtures, "crypto", x.dir, "msp"), x.mspID)
	require.NoError(t, err)
	return id
}

// Organisation MSP folders of the fixtures.
var orgDirs = map[string]string{
	"OrdererMSP": "crypto/ordererOrganizations/example.com/msp",
	"Org1MSP":    "crypto/peerOrganizations/org1.example.com/msp",
	"Org2MSP":    "crypto/peerOrganizations/org2.example.com/msp",
}

// readProto decodes the file at path (under testdata/fabric) into m.
func readProto[M proto.Message](t testing.TB, path string, m M) M {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, path))
	require.NoError(t, err)
	require.NoError(t, proto.Unmarshal(raw, m))
	return m
}

// genesisBlock is fabchannel's block 0, as Fabric's orderer made it.
func genesisBlock(t testing.TB) *cb.Block {
	return readProto(t, "fabchannel-genesis.block", new(cb.Block))
}

// block is fabchannel's block n (1 to 9), as Fabric's orderer made it.
func block(t testing.TB, n int) *cb.Block {
	return readProto(t, filepath.Join("blocks", fmt.Sprintf("%03d.block", n)), new(cb.Block))
}

// update is the signed CONFIG_UPDATE envelope of updates/name.pb.
func update(t testing.TB, name string) *cb.Envelope {
	return readProto(t, filepath.Join("updates", name+".pb"), new(cb.Envelope))
}

// bundleAt returns the Bundle of the config block n (0, 4 or 8).
func bundleAt(t testing.TB, n int) *fabricconfig.Bundle {
	t.Helper()
	blk := genesisBlock(t)
	if n > 0 {
		blk = block(t, n)
	}
	b, err := fabricconfig.FromConfigBlock(blk, clock)
	require.NoError(t, err)
	return b
}

// envelope returns envelope i of blk.
func envelope(t testing.TB, blk *cb.Block, i int) *cb.Envelope {
	t.Helper()
	env, err := protoutil.UnmarshalEnvelope(blk.Data.Data[i])
	require.NoError(t, err)
	return env
}

// configEnvelope returns the ConfigEnvelope of config block blk.
func configEnvelope(t testing.TB, blk *cb.Block) *cb.ConfigEnvelope {
	t.Helper()
	h, err := protoutil.EnvelopeHeaders(envelope(t, blk, 0))
	require.NoError(t, err)
	require.Equal(t, int32(cb.HeaderType_CONFIG), h.ChannelHeader.Type)
	ce := new(cb.ConfigEnvelope)
	require.NoError(t, proto.Unmarshal(h.Payload.Data, ce))
	return ce
}

// status maps an error to the Broadcast status the AtomicBroadcast service
// answers (atomicbroadcast.StatusOf), SUCCESS for nil.
func status(err error) cb.Status {
	if err == nil {
		return cb.Status_SUCCESS
	}
	return atomicbroadcast.StatusOf(err)
}

func mustHeaders(t testing.TB, env *cb.Envelope) *protoutil.Headers {
	t.Helper()
	h, err := protoutil.EnvelopeHeaders(env)
	require.NoError(t, err)
	return h
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := protoutil.Marshal(m)
	require.NoError(t, err)
	return b
}

// testEnvelope returns an ENDORSER_TRANSACTION envelope for fabchannel
// signed by the named fixture identity.
func testEnvelope(t testing.TB, signer string) *cb.Envelope {
	t.Helper()
	return testutil.Envelope(identity(t, signer), channel, cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx"))
}
