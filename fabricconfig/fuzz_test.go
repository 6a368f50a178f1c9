package fabricconfig_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// FuzzConfigEnvelope gives the checks that every ordering node runs on a
// CONFIG envelope it consumes (ValidateConfig, and ReproposeConfig for
// one made against an older configuration) and on a CONFIG_UPDATE
// (ProposeConfigUpdate) envelopes of any content: a record from anyone who
// can write to the topic. They refuse what they cannot use with an error,
// and never panic. The seeds are the envelopes of Fabric's config blocks 4
// and 8 and the fixture updates. The inputs are large: fuzz with
// -fuzzminimizetime 0, or minimizing each new input takes most of the time.
func FuzzConfigEnvelope(f *testing.F) {
	for _, n := range []int{4, 8} {
		f.Add(mustMarshal(f, envelope(f, block(f, n), 0)))
	}
	for _, u := range []string{"u1-batchsize-20", "u2-org1-anchorpeer", "u4-stale-readset"} {
		f.Add(mustMarshal(f, update(f, u)))
	}
	b := bundleAt(f, 0)
	b4 := bundleAt(f, 4)
	f.Fuzz(func(t *testing.T, raw []byte) {
		env := new(cb.Envelope)
		if proto.Unmarshal(raw, env) != nil {
			return
		}
		if nb, err := b.ValidateConfig(env); err == nil {
			require.Equal(t, b.Sequence()+1, nb.Sequence())
		}
		_, _ = b4.ReproposeConfig(env)
		_, _ = b.ProposeConfigUpdate(env)
	})
}
