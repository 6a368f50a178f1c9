package fabricconfig_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// answers returns Fabric's answers to the fixture updates: file name (without
// .pb) -> status and info, from updates/ANSWERS.txt.
func answers(t *testing.T) map[string]struct {
	status cb.Status
	info   string
} {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, "updates", "ANSWERS.txt"))
	require.NoError(t, err)
	out := make(map[string]struct {
		status cb.Status
		info   string
	})
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimRight(line, "\n")
		// FILE STATUS CODE INFO, the info possibly empty.
		parts := strings.SplitN(line, " ", 4)
		require.GreaterOrEqual(t, len(parts), 3, "line %q", line)
		info := ""
		if len(parts) == 4 {
			info = parts[3]
		}
		st, ok := cb.Status_value[parts[1]]
		require.True(t, ok, "status %q", parts[1])
		out[strings.TrimSuffix(parts[0], ".pb")] = struct {
			status cb.Status
			info   string
		}{cb.Status(st), info}
	}
	return out
}

// TestFixtureUpdates submits each fixture update to the configuration it
// was submitted to in Fabric's network (the one in force after the
// updates before it) and checks Fabric's answer: u1 and u2 give exactly
// the configurations of blocks 4 and 8; u3, u4 and u5 are refused with
// BAD_REQUEST and Fabric's info string.
func TestFixtureUpdates(t *testing.T) {
	want := answers(t)
	orderer0 := identity(t, "orderer0")
	tests := []struct {
		name   string
		at     int // config block in force
		result int // config block Fabric wrote, 0 if none
	}{
		{"u1-batchsize-20", 0, 4},
		{"u2-org1-anchorpeer", 4, 8},
		{"u3-batchtimeout-org1-only", 8, 0},
		{"u4-stale-readset", 8, 0},
		{"u5-stale-writeset", 8, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bundleAt(t, tt.at)
			env := update(t, tt.name)
			out, err := b.ProcessConfigUpdate(env, orderer0)
			answer := want[tt.name]
			require.Equal(t, answer.status, status(err), "error %v", err)
			if tt.result == 0 {
				require.EqualError(t, err, answer.info)
				require.ErrorIs(t, err, fabricconfig.ErrBadUpdate)
				require.NotErrorIs(t, err, channelconfig.ErrForbidden)
				_, err = b.ProposeConfigUpdate(env)
				require.EqualError(t, err, strings.TrimPrefix(answer.info, "error applying config update to existing channel 'fabchannel': "))
				return
			}
			require.NoError(t, err)
			fabric := configEnvelope(t, block(t, tt.result))
			ce, err := b.ProposeConfigUpdate(env)
			require.NoError(t, err)
			require.True(t, proto.Equal(fabric.Config, ce.Config), "computed config differs from block %d's", tt.result)
			require.True(t, proto.Equal(env, ce.LastUpdate))
			require.True(t, proto.Equal(fabric.LastUpdate, ce.LastUpdate))

			// The CONFIG envelope made here is one the next configuration
			// follows from, like Fabric's own.
			next, err := b.ValidateConfig(out)
			require.NoError(t, err)
			require.True(t, proto.Equal(fabric.Config, next.Config()))
			require.Equal(t, b.Sequence()+1, next.Sequence())
		})
	}
	// The refusals' kinds: u3 is a policy failure, u4 and u5 stale versions.
	b := bundleAt(t, 8)
	_, err := b.ProposeConfigUpdate(update(t, "u3-batchtimeout-org1-only"))
	require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied)
	for _, name := range []string{"u4-stale-readset", "u5-stale-writeset"} {
		_, err := b.ProposeConfigUpdate(update(t, name))
		require.ErrorIs(t, err, channelconfig.ErrBadSequence, name)
	}
}

// TestFixtureConfigBlocksValidate re-validates the CONFIG envelopes of
// blocks 4 and 8 against the configuration before each, as a peer does,
// and rejects tampered ones.
func TestFixtureConfigBlocksValidate(t *testing.T) {
	b0 := bundleAt(t, 0)
	b4, err := b0.ValidateConfig(envelope(t, block(t, 4), 0))
	require.NoError(t, err)
	require.True(t, proto.Equal(configEnvelope(t, block(t, 4)).Config, b4.Config()))
	require.EqualValues(t, 2, b4.Sequence())
	require.EqualValues(t, 20, b4.BatchSize().MaxMessageCount)
	b8, err := b4.ValidateConfig(envelope(t, block(t, 8), 0))
	require.NoError(t, err)
	require.EqualValues(t, 3, b8.Sequence())
	require.Equal(t, []string{"127.0.0.1:31151"}, b8.Organizations()[0].AnchorPeers)

	// Out of order: block 8's config is not a successor of block 0's.
	_, err = b0.ValidateConfig(envelope(t, block(t, 8), 0))
	require.ErrorIs(t, err, channelconfig.ErrBadSequence)
	// Block 4's config again on top of itself.
	_, err = b4.ValidateConfig(envelope(t, block(t, 4), 0))
	require.ErrorIs(t, err, channelconfig.ErrBadSequence)

	orderer0 := identity(t, "orderer0")
	tamper := func(edit func(ce *cb.ConfigEnvelope)) *cb.Envelope {
		ce := configEnvelope(t, block(t, 4))
		edit(ce)
		env, err := fabricconfig.NewConfigEnvelope(channel, ce, orderer0)
		require.NoError(t, err)
		return env
	}
	tests := []struct {
		name string
		env  *cb.Envelope
		want error
	}{
		{"re-signed untouched", tamper(func(*cb.ConfigEnvelope) {}), nil},
		{"batch size changed beyond the update", tamper(func(ce *cb.ConfigEnvelope) {
			v := ce.Config.ChannelGroup.Groups["Orderer"].Values["BatchTimeout"]
			v.Value = []byte("\x0a\x022s")
		}), fabricconfig.ErrBadUpdate},
		{"version not bumped", tamper(func(ce *cb.ConfigEnvelope) {
			ce.Config.ChannelGroup.Groups["Orderer"].Values["BatchSize"].Version = 0
		}), fabricconfig.ErrBadUpdate},
		{"sequence", tamper(func(ce *cb.ConfigEnvelope) { ce.Config.Sequence = 5 }), channelconfig.ErrBadSequence},
		{"no config", tamper(func(ce *cb.ConfigEnvelope) { ce.Config = nil }), channelconfig.ErrMalformed},
		{"no last update", tamper(func(ce *cb.ConfigEnvelope) { ce.LastUpdate = nil }), channelconfig.ErrMalformed},
		{"update signature broken", tamper(func(ce *cb.ConfigEnvelope) {
			lu := ce.LastUpdate
			h := mustHeaders(t, lu)
			cue := new(cb.ConfigUpdateEnvelope)
			require.NoError(t, proto.Unmarshal(h.Payload.Data, cue))
			cue.Signatures[0].Signature[10] ^= 1
			h.Payload.Data = mustMarshal(t, cue)
			lu.Payload = mustMarshal(t, h.Payload)
		}), msp.ErrPolicyNotSatisfied},
		{"update from another channel", tamper(func(ce *cb.ConfigEnvelope) {
			lu := ce.LastUpdate
			h := mustHeaders(t, lu)
			cue := new(cb.ConfigUpdateEnvelope)
			require.NoError(t, proto.Unmarshal(h.Payload.Data, cue))
			cu := new(cb.ConfigUpdate)
			require.NoError(t, proto.Unmarshal(cue.ConfigUpdate, cu))
			cu.ChannelId = "other"
			cue.ConfigUpdate = mustMarshal(t, cu)
			h.Payload.Data = mustMarshal(t, cue)
			lu.Payload = mustMarshal(t, h.Payload)
		}), channelconfig.ErrWrongChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b0.ValidateConfig(tt.env)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
		})
	}

	// The envelope itself: its signature, its signer, its type.
	env := envelope(t, block(t, 4), 0)
	env.Signature[8] ^= 1
	_, err = b0.ValidateConfig(env)
	require.ErrorIs(t, err, channelconfig.ErrBadSignature)
	env, err = fabricconfig.NewConfigEnvelope(channel, configEnvelope(t, block(t, 4)), identity(t, "peer0.org1"))
	require.NoError(t, err)
	_, err = b0.ValidateConfig(env)
	require.ErrorIs(t, err, channelconfig.ErrForbidden, "peer0.org1 is not a writer")
	_, err = b0.ValidateConfig(envelope(t, block(t, 1), 0))
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
}
