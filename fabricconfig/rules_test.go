package fabricconfig_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// configUpdate returns the ConfigUpdate carried by a CONFIG_UPDATE
// envelope.
func configUpdate(t *testing.T, env *cb.Envelope) *cb.ConfigUpdate {
	t.Helper()
	cue := new(cb.ConfigUpdateEnvelope)
	require.NoError(t, proto.Unmarshal(mustHeaders(t, env).Payload.Data, cue))
	cu := new(cb.ConfigUpdate)
	require.NoError(t, proto.Unmarshal(cue.ConfigUpdate, cu))
	return cu
}

// TestComputeUpdateMatchesConfigtxlator computes the updates between the
// fixtures' configurations and compares them with the ones configtxlator
// computed for u1 and u2.
func TestComputeUpdateMatchesConfigtxlator(t *testing.T) {
	cfg := func(n int) *cb.Config { return bundleAt(t, n).Config() }
	u1, err := fabricconfig.ComputeUpdate(channel, cfg(0), cfg(4))
	require.NoError(t, err)
	require.True(t, proto.Equal(configUpdate(t, update(t, "u1-batchsize-20")), u1), "u1: %v", u1)
	u2, err := fabricconfig.ComputeUpdate(channel, cfg(4), cfg(8))
	require.NoError(t, err)
	require.True(t, proto.Equal(configUpdate(t, update(t, "u2-org1-anchorpeer")), u2), "u2: %v", u2)
	_, err = fabricconfig.ComputeUpdate(channel, cfg(4), cfg(4))
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
	_, err = fabricconfig.ComputeUpdate(channel, cfg(4), &cb.Config{})
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
}

// edit returns a copy of b's configuration changed by f.
func edit(b *fabricconfig.Bundle, f func(ch *cb.ConfigGroup)) *cb.Config {
	cfg := b.Config()
	f(cfg.ChannelGroup)
	return cfg
}

// signedUpdate computes the update from b's configuration to updated and
// signs it by the named fixture identities (the first also signs the
// envelope).
func signedUpdate(t *testing.T, b *fabricconfig.Bundle, updated *cb.Config, signers ...string) *cb.Envelope {
	t.Helper()
	cu, err := fabricconfig.ComputeUpdate(channel, b.Config(), updated)
	require.NoError(t, err)
	return signUpdate(t, cu, signers...)
}

func signUpdate(t *testing.T, cu *cb.ConfigUpdate, signers ...string) *cb.Envelope {
	t.Helper()
	var ss []fabricconfig.Signer
	for _, n := range signers {
		ss = append(ss, identity(t, n))
	}
	env, err := fabricconfig.NewConfigUpdateEnvelope(cu, ss...)
	require.NoError(t, err)
	return env
}

func setValue(g *cb.ConfigGroup, key string, m proto.Message) {
	v := g.Values[key]
	if v == nil {
		v = &cb.ConfigValue{ModPolicy: fabricconfig.AdminsPolicy}
		g.Values[key] = v
	}
	v.Value = protoutil.MarshalOrPanic(m)
}

// TestUpdateRules checks Fabric's configtx rules on updates made here,
// against fabchannel's genesis configuration.
func TestUpdateRules(t *testing.T) {
	b := bundleAt(t, 0)
	app := func(ch *cb.ConfigGroup) *cb.ConfigGroup { return ch.Groups["Application"] }
	removeOrg2 := edit(b, func(ch *cb.ConfigGroup) { delete(app(ch).Groups, "Org2MSP") })
	addresses := edit(b, func(ch *cb.ConfigGroup) {
		setValue(ch, fabricconfig.OrdererAddressesKey, &cb.OrdererAddresses{Addresses: []string{"127.0.0.1:31050"}})
	})
	width := edit(b, func(ch *cb.ConfigGroup) {
		setValue(ch, fabricconfig.BlockDataHashingStructureKey, &cb.BlockDataHashingStructure{Width: 5})
	})
	timeout := edit(b, func(ch *cb.ConfigGroup) {
		setValue(ch.Groups["Orderer"], fabricconfig.BatchTimeoutKey, &ab.BatchTimeout{Timeout: "250ms"})
	})
	renamed := edit(b, func(ch *cb.ConfigGroup) {
		org1 := app(ch).Groups["Org1MSP"]
		mc := new(mspb.MSPConfig)
		require.NoError(t, proto.Unmarshal(org1.Values["MSP"].Value, mc))
		fc := new(mspb.FabricMSPConfig)
		require.NoError(t, proto.Unmarshal(mc.Config, fc))
		fc.Name = "Org9MSP"
		mc.Config = protoutil.MarshalOrPanic(fc)
		setValue(org1, fabricconfig.MSPKey, mc)
	})
	modPolicy := edit(b, func(ch *cb.ConfigGroup) { ch.Groups["Orderer"].Values["BatchSize"].ModPolicy = "Nope/Admins" })
	removeAllOrgs := edit(b, func(ch *cb.ConfigGroup) {
		delete(app(ch).Groups, "Org1MSP")
		delete(app(ch).Groups, "Org2MSP")
	})
	removeOrdererOrg := edit(b, func(ch *cb.ConfigGroup) { delete(ch.Groups["Orderer"].Groups, "OrdererOrg") })
	foreverTimeout := edit(b, func(ch *cb.ConfigGroup) {
		setValue(ch.Groups["Orderer"], fabricconfig.BatchTimeoutKey, &ab.BatchTimeout{Timeout: "8760h"})
	})
	unsatisfiableWriters := edit(b, func(ch *cb.ConfigGroup) {
		ch.Policies["Writers"].Policy = fabricconfig.SignaturePolicy(mustPolicy(t, "OR('GoneMSP.member')"))
	})

	tests := []struct {
		name string
		env  *cb.Envelope
		want []error // nil: accepted
		msg  string  // the error's message, if checked
		then func(t *testing.T, nb *fabricconfig.Bundle)
	}{
		{
			name: "remove an organisation with the Application admins",
			env:  signedUpdate(t, b, removeOrg2, "Admin@org1", "Admin@org2"),
			then: func(t *testing.T, nb *fabricconfig.Bundle) {
				for _, o := range nb.Organizations() {
					require.NotEqual(t, "Org2MSP", o.MSPID)
				}
				require.Error(t, nb.ValidateNormal(testEnvelope(t, "User1@org2")))
				require.NoError(t, nb.ValidateNormal(testEnvelope(t, "User1@org1")))
			},
		},
		{
			name: "remove an organisation with one of two Application admins",
			env:  signedUpdate(t, b, removeOrg2, "Admin@org1"),
			want: []error{fabricconfig.ErrBadUpdate, msp.ErrPolicyNotSatisfied},
			msg:  "error authorizing update: error validating DeltaSet: policy for [Group]  /Channel/Application not satisfied: implicit policy evaluation failed - 1 sub-policies were satisfied, but this policy requires 2 of the 'Admins' sub-policies to be satisfied",
		},
		{
			name: "absolute mod_policy: OrdererAddresses by the orderer admin",
			env:  signedUpdate(t, b, addresses, "OrdererAdm"),
			then: func(t *testing.T, nb *fabricconfig.Bundle) {
				require.Equal(t, []string{"127.0.0.1:31050"}, nb.OrdererAddresses())
			},
		},
		{
			name: "absolute mod_policy: OrdererAddresses by the application admins",
			env:  signedUpdate(t, b, addresses, "Admin@org1", "Admin@org2"),
			want: []error{fabricconfig.ErrBadUpdate, msp.ErrPolicyNotSatisfied},
			msg:  "error authorizing update: error validating DeltaSet: policy for [Value]  /Channel/OrdererAddresses not satisfied: implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Admins' sub-policies to be satisfied",
		},
		{
			name: "channel value by the orderer admin alone",
			env:  signedUpdate(t, b, width, "OrdererAdm"),
			want: []error{fabricconfig.ErrBadUpdate, msp.ErrPolicyNotSatisfied},
			msg:  "error authorizing update: error validating DeltaSet: policy for [Value]  /Channel/BlockDataHashingStructure not satisfied: implicit policy evaluation failed - 1 sub-policies were satisfied, but this policy requires 2 of the 'Admins' sub-policies to be satisfied",
		},
		{
			name: "authorised but invalid result",
			env:  signedUpdate(t, b, width, "OrdererAdm", "Admin@org1", "Admin@org2"),
			want: []error{fabricconfig.ErrBadUpdate, channelconfig.ErrMalformed},
		},
		{
			name: "batch timeout by the orderer admin",
			env:  signedUpdate(t, b, timeout, "OrdererAdm"),
			then: func(t *testing.T, nb *fabricconfig.Bundle) {
				require.Equal(t, "250ms", nb.BatchTimeout().String())
			},
		},
		{
			name: "organisation changes its MSP ID",
			env:  signedUpdate(t, b, renamed, "Admin@org1"),
			want: []error{fabricconfig.ErrBadUpdate, channelconfig.ErrMalformed},
			msg:  "application org Org1MSP attempted to change MSP ID from Org1MSP to Org9MSP",
		},
		{
			name: "mod_policy naming no policy",
			env:  signedUpdate(t, b, modPolicy, "OrdererAdm"),
			then: func(t *testing.T, nb *fabricconfig.Bundle) {
				// Accepted (the current mod_policy authorises the change),
				// but nobody can change BatchSize any more.
				next := edit(nb, func(ch *cb.ConfigGroup) {
					setValue(ch.Groups["Orderer"], fabricconfig.BatchSizeKey, &ab.BatchSize{MaxMessageCount: 1, AbsoluteMaxBytes: 1, PreferredMaxBytes: 1})
				})
				_, err := nb.ProposeConfigUpdate(signedUpdate(t, nb, next, "OrdererAdm", "Admin@org1", "Admin@org2"))
				require.EqualError(t, err, "error authorizing update: error validating DeltaSet: unexpected missing policy Nope/Admins for item [Value]  /Channel/Orderer/BatchSize")
			},
		},
		{
			name: "remove every application organisation",
			env:  signedUpdate(t, b, removeAllOrgs, "Admin@org1", "Admin@org2"),
			want: []error{fabricconfig.ErrBadUpdate, channelconfig.ErrMalformed},
			msg:  "no application organisation",
		},
		{
			name: "remove the orderer organisation",
			env:  signedUpdate(t, b, removeOrdererOrg, "OrdererAdm"),
			want: []error{fabricconfig.ErrBadUpdate, channelconfig.ErrMalformed},
			msg:  "no orderer organisation",
		},
		{
			name: "Writers nobody could satisfy",
			env:  signedUpdate(t, b, unsatisfiableWriters, "OrdererAdm", "Admin@org1", "Admin@org2"),
			want: []error{fabricconfig.ErrBadUpdate, channelconfig.ErrMalformed},
			msg:  "no identity could satisfy policy /Channel/Writers",
		},
		{
			name: "batch timeout of a year",
			env:  signedUpdate(t, b, foreverTimeout, "OrdererAdm"),
			want: []error{fabricconfig.ErrBadUpdate, channelconfig.ErrMalformed},
			msg:  "more than 1h0m0s",
		},
		{
			name: "signatures of another update",
			env: func() *cb.Envelope {
				env := signedUpdate(t, b, timeout, "OrdererAdm")
				other := signedUpdate(t, b, addresses, "OrdererAdm")
				h, oh := mustHeaders(t, env), mustHeaders(t, other)
				cue, ocue := new(cb.ConfigUpdateEnvelope), new(cb.ConfigUpdateEnvelope)
				require.NoError(t, proto.Unmarshal(h.Payload.Data, cue))
				require.NoError(t, proto.Unmarshal(oh.Payload.Data, ocue))
				cue.Signatures = ocue.Signatures
				h.Payload.Data = mustMarshal(t, cue)
				env.Payload = mustMarshal(t, h.Payload)
				return env
			}(),
			want: []error{fabricconfig.ErrBadUpdate, msp.ErrPolicyNotSatisfied},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce, err := b.ProposeConfigUpdate(tt.env)
			if tt.want == nil {
				require.NoError(t, err)
				require.EqualValues(t, b.Sequence()+1, ce.Config.Sequence)
				cfgEnv, err := fabricconfig.NewConfigEnvelope(channel, ce, identity(t, "orderer0"))
				require.NoError(t, err)
				nb, err := b.ValidateConfig(cfgEnv)
				require.NoError(t, err)
				if tt.then != nil {
					tt.then(t, nb)
				}
				return
			}
			for _, w := range tt.want {
				require.ErrorIs(t, err, w)
			}
			require.NotErrorIs(t, err, channelconfig.ErrForbidden)
			require.Equal(t, cb.Status_BAD_REQUEST, status(err))
			if tt.msg != "" {
				require.ErrorContains(t, err, tt.msg)
			}
		})
	}
}

// TestUpdateSetRules checks the read and write set rules on hand-made
// updates.
func TestUpdateSetRules(t *testing.T) {
	b := bundleAt(t, 4)
	group := func(version uint64, groups map[string]*cb.ConfigGroup, values map[string]*cb.ConfigValue) *cb.ConfigGroup {
		return &cb.ConfigGroup{Version: version, Groups: groups, Values: values}
	}
	batchSize := func(version uint64, modPolicy string) *cb.ConfigValue {
		return &cb.ConfigValue{Version: version, ModPolicy: modPolicy, Value: protoutil.MarshalOrPanic(&ab.BatchSize{MaxMessageCount: 7, AbsoluteMaxBytes: 100, PreferredMaxBytes: 10})}
	}
	orderer := func(version uint64, values map[string]*cb.ConfigValue) *cb.ConfigGroup {
		return group(0, map[string]*cb.ConfigGroup{"Orderer": group(version, nil, values)}, nil)
	}
	read := orderer(0, nil)
	tests := []struct {
		name      string
		cu        *cb.ConfigUpdate
		want      error
		msg       string
		unchanged bool // accepted, with no effect on the tree
	}{
		{"BatchSize to version 2", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: orderer(0, map[string]*cb.ConfigValue{"BatchSize": batchSize(2, "Admins")})}, nil, "", false},
		{"BatchSize to version 3", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: orderer(0, map[string]*cb.ConfigValue{"BatchSize": batchSize(3, "Admins")})},
			channelconfig.ErrBadSequence, "error authorizing update: error validating DeltaSet: attempt to set key [Value]  /Channel/Orderer/BatchSize to version 3, but key is at version 1", false},
		{"read set of a missing element", &cb.ConfigUpdate{ChannelId: channel, ReadSet: orderer(0, map[string]*cb.ConfigValue{"Nope": {}}), WriteSet: orderer(0, map[string]*cb.ConfigValue{"BatchSize": batchSize(2, "Admins")})},
			channelconfig.ErrBadSequence, "error authorizing update: error validating ReadSet: existing config does not contain element for [Value]  /Channel/Orderer/Nope but was in the read set", false},
		{"new key at version 1", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: orderer(0, map[string]*cb.ConfigValue{"KafkaBrokers2": {Version: 1, ModPolicy: "Admins"}})},
			channelconfig.ErrBadSequence, "error authorizing update: error validating DeltaSet: attempted to set key [Value]  /Channel/Orderer/KafkaBrokers2 to version 1, but key does not exist", false},
		{"empty mod_policy", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: orderer(0, map[string]*cb.ConfigValue{"BatchSize": batchSize(2, "")})},
			channelconfig.ErrMalformed, "error authorizing update: error validating DeltaSet: invalid mod_policy for element [Value]  /Channel/Orderer/BatchSize: mod_policy not set", false},
		{"no change", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: read},
			channelconfig.ErrMalformed, "error authorizing update: error validating DeltaSet: delta set was empty -- update would have no effect", false},
		{"illegal key", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: orderer(0, map[string]*cb.ConfigValue{"a b": {ModPolicy: "Admins"}})},
			channelconfig.ErrMalformed, "error mapping WriteSet", false},
		{"other channel", &cb.ConfigUpdate{ChannelId: "other", ReadSet: read, WriteSet: orderer(0, map[string]*cb.ConfigValue{"BatchSize": batchSize(2, "Admins")})},
			channelconfig.ErrWrongChannel, "error authorizing update: ConfigUpdate for channel 'other' but envelope for channel 'fabchannel'", false},
		// As in Fabric: a new element of a group whose version the update
		// does not raise is accepted but not part of the result.
		{"new value in an unmodified group", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: orderer(0, map[string]*cb.ConfigValue{"Extra": {ModPolicy: "Admins"}})}, nil, "", true},
		// A modified group lists all its elements: these are deleted.
		{"rewritten group omitting its elements", &cb.ConfigUpdate{ChannelId: channel, ReadSet: read, WriteSet: group(0, map[string]*cb.ConfigGroup{"Orderer": {Version: 1, ModPolicy: "Admins"}}, nil)},
			channelconfig.ErrMalformed, "initializing channelconfig failed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce, err := b.ProposeConfigUpdate(signUpdate(t, tt.cu, "OrdererAdm"))
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				require.ErrorIs(t, err, fabricconfig.ErrBadUpdate)
				require.ErrorContains(t, err, tt.msg)
				require.Equal(t, cb.Status_BAD_REQUEST, status(err))
				return
			}
			require.NoError(t, err)
			if tt.unchanged {
				require.True(t, proto.Equal(b.Config().ChannelGroup, ce.Config.ChannelGroup))
			}
		})
	}

	// Not a CONFIG_UPDATE envelope.
	_, err := b.ProposeConfigUpdate(testEnvelope(t, "User1@org1"))
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
	require.ErrorContains(t, err, "error converting envelope to config update: not a tx of type CONFIG_UPDATE")
	_, err = b.ProposeConfigUpdate(nil)
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
}

// TestProcessConfigUpdateChecks checks the envelope checks around an
// update, as Fabric's orderer applies them.
func TestProcessConfigUpdateChecks(t *testing.T) {
	b := bundleAt(t, 0)
	orderer0 := identity(t, "orderer0")
	next := edit(b, func(ch *cb.ConfigGroup) {
		setValue(ch.Groups["Orderer"], fabricconfig.BatchTimeoutKey, &ab.BatchTimeout{Timeout: "3s"})
	})
	// Signed, as an envelope, by a peer, which is no writer: FORBIDDEN as
	// in Fabric, although the config signature satisfies the mod_policy.
	cu, err := fabricconfig.ComputeUpdate(channel, b.Config(), next)
	require.NoError(t, err)
	env := signUpdate(t, cu, "peer0.org1", "OrdererAdm")
	_, err = b.ProcessConfigUpdate(env, orderer0)
	require.Equal(t, cb.Status_FORBIDDEN, status(err))
	require.ErrorContains(t, err, "config update for existing channel did not pass initial checks: ")
	_, err = b.ProposeConfigUpdate(env)
	require.NoError(t, err, "the mod_policy is satisfied")

	// A normal envelope is no config update.
	_, err = b.ProcessConfigUpdate(testEnvelope(t, "User1@org1"), orderer0)
	require.Equal(t, cb.Status_BAD_REQUEST, status(err))

	// The orderer signing the CONFIG envelope must be a writer.
	good := signUpdate(t, cu, "OrdererAdm")
	_, err = b.ProcessConfigUpdate(good, identity(t, "peer0.org1"))
	require.ErrorContains(t, err, "config update for existing channel did not pass final checks: ")
	out, err := b.ProcessConfigUpdate(good, orderer0)
	require.NoError(t, err)
	h := mustHeaders(t, out)
	require.Equal(t, int32(cb.HeaderType_CONFIG), h.ChannelHeader.Type)
	require.Equal(t, channel, h.ChannelHeader.ChannelId)
	require.Empty(t, h.ChannelHeader.TxId)
	require.Len(t, h.SignatureHeader.Nonce, 24)

	// ProcessConfigMsg re-derives a CONFIG envelope from its last_update:
	// against the configuration it was made for it succeeds; against the
	// next one, the update's read set is stale.
	again, err := b.ProcessConfigMsg(out, orderer0)
	require.NoError(t, err)
	nb, err := b.ValidateConfig(again)
	require.NoError(t, err)
	// Its first half, ReproposeConfig, signs nothing and computes the same
	// configuration; SignConfig is the second, with the final checks.
	ce, err := b.ReproposeConfig(out)
	require.NoError(t, err)
	require.True(t, proto.Equal(nb.Config(), ce.GetConfig()), "ReproposeConfig's configuration differs from ProcessConfigMsg's")
	_, err = b.SignConfig(ce, identity(t, "peer0.org1"))
	require.ErrorContains(t, err, "config update for existing channel did not pass final checks: ")
	signed, err := b.SignConfig(ce, orderer0)
	require.NoError(t, err)
	_, err = b.ValidateConfig(signed)
	require.NoError(t, err)
	_, err = nb.ReproposeConfig(out)
	require.ErrorIs(t, err, channelconfig.ErrBadSequence)
	_, err = nb.ProcessConfigMsg(out, orderer0)
	require.ErrorIs(t, err, channelconfig.ErrBadSequence)
	_, err = nb.ProcessConfigMsg(testEnvelope(t, "User1@org1"), orderer0)
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
}

func mustPolicy(t *testing.T, p string) *cb.SignaturePolicyEnvelope {
	t.Helper()
	env, err := msp.FromString(p)
	require.NoError(t, err)
	return env
}
