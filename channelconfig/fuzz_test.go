package channelconfig_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// FuzzValidateConfig gives ValidateConfig, which every ordering node runs
// on a config envelope it consumes, envelopes of any content: a record
// from anyone who can write to the topic. It refuses what it cannot use
// with an error and never panics, and what it accepts is the next
// sequence. The seeds are a valid update signed by a majority of admins
// and the same update with too few signatures.
func FuzzValidateConfig(f *testing.F) {
	orgs, cas := newOrgs(f, "Org1MSP", "Org2MSP", "Org3MSP")
	b := testutil.Bundle(f, testutil.ChannelConfig(channel, cas, testutil.WithOrdererOrgs(cas[0])))
	next := b.Config()
	next.Sequence++
	next.BatchSize.MaxMessageCount = 20
	for _, admins := range [][]msp.SigningIdentity{{orgs[0].admin, orgs[1].admin}, {orgs[2].admin}} {
		env, err := channelconfig.NewConfigEnvelope(next, orgs[0].member, admins...)
		require.NoError(f, err)
		f.Add(mustMarshal(f, env))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env := new(cb.Envelope)
		if proto.Unmarshal(raw, env) != nil {
			return
		}
		if nb, err := b.ValidateConfig(env); err == nil {
			require.Equal(t, b.Sequence()+1, nb.Sequence())
		}
	})
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	return b
}
