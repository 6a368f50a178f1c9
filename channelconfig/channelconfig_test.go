package channelconfig_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

const channel = "mychannel"

// org is a test organisation: its CA, an admin and a member.
type org struct {
	ca     *testutil.CA
	admin  *testutil.Identity
	member *testutil.Identity
}

func newOrg(t testing.TB, mspID string) org {
	ca := testutil.NewCA(t, mspID)
	return org{ca: ca, admin: ca.Issue("admin", testutil.ListedAdmin()), member: ca.Issue("member")}
}

func newOrgs(t testing.TB, ids ...string) ([]org, []*testutil.CA) {
	var orgs []org
	var cas []*testutil.CA
	for _, id := range ids {
		o := newOrg(t, id)
		orgs = append(orgs, o)
		cas = append(cas, o.ca)
	}
	return orgs, cas
}

func TestGenesisRoundTrip(t *testing.T) {
	_, cas := newOrgs(t, "Org1MSP", "Org2MSP")
	cfg := testutil.ChannelConfig(channel, cas, testutil.WithBatchTimeout(time.Second), testutil.WithKafkaBrokers("k1:9092"))
	block := testutil.GenesisBlock(t, cfg)

	require.Equal(t, uint64(0), block.Header.Number)
	require.Nil(t, block.Header.PreviousHash)
	require.Len(t, block.Data.Data, 1)
	require.NoError(t, protoutil.CheckDataHash(block))
	idx, err := protoutil.LastConfigIndex(block)
	require.NoError(t, err)
	require.Equal(t, uint64(0), idx)
	again := testutil.GenesisBlock(t, cfg)
	require.True(t, proto.Equal(block, again), "genesis block must be deterministic")

	env, err := protoutil.UnmarshalEnvelope(block.Data.Data[0])
	require.NoError(t, err)
	h, err := protoutil.EnvelopeHeaders(env)
	require.NoError(t, err)
	require.Equal(t, int32(cb.HeaderType_CONFIG), h.ChannelHeader.Type)
	require.Equal(t, channel, h.ChannelHeader.ChannelId)
	got, err := channelconfig.ConfigFromEnvelope(env)
	require.NoError(t, err)
	require.True(t, proto.Equal(cfg, got))

	b, err := channelconfig.FromGenesisBlock(block)
	require.NoError(t, err)
	require.True(t, proto.Equal(cfg, b.Config()))
	require.Equal(t, channel, b.ChannelID())
	require.Equal(t, uint64(0), b.Sequence())
	require.Equal(t, channelconfig.BatchSize{MaxMessageCount: 10, AbsoluteMaxBytes: 1 << 20, PreferredMaxBytes: 512 << 10}, b.BatchSize())
	require.Equal(t, time.Second, b.BatchTimeout())
	require.Equal(t, []string{"k1:9092"}, b.KafkaBrokers())
	require.Equal(t, []string{"Org1MSP", "Org2MSP"}, b.MSPManager().MSPIDs())

	// The bundle is immutable: changing the returned copy changes nothing.
	b.Config().ChannelId = "other"
	require.Equal(t, channel, b.ChannelID())
}

func TestFromGenesisBlockErrors(t *testing.T) {
	o := newOrg(t, "Org1MSP")
	cfg := testutil.ChannelConfig(channel, []*testutil.CA{o.ca})
	good := testutil.GenesisBlock(t, cfg)
	normal := testutil.Envelope(o.member, channel, cb.HeaderType_MESSAGE, []byte("x"))
	seq1 := proto.Clone(cfg).(*ccpb.ChannelConfig)
	seq1.Sequence = 1

	tests := []struct {
		name  string
		block func() *cb.Block
		want  error
	}{
		{"nil", func() *cb.Block { return nil }, channelconfig.ErrMalformed},
		{"number 1", func() *cb.Block { b := proto.Clone(good).(*cb.Block); b.Header.Number = 1; return b }, channelconfig.ErrMalformed},
		{"two envelopes", func() *cb.Block {
			return protoutil.NewBlock(0, nil, [][]byte{good.Data.Data[0], good.Data.Data[0]})
		}, channelconfig.ErrMalformed},
		{"data hash", func() *cb.Block { b := proto.Clone(good).(*cb.Block); b.Header.DataHash = []byte("x"); return b }, channelconfig.ErrMalformed},
		{"garbage envelope", func() *cb.Block { return protoutil.NewBlock(0, nil, [][]byte{{0xff}}) }, channelconfig.ErrMalformed},
		{"not CONFIG", func() *cb.Block { return protoutil.NewBlock(0, nil, [][]byte{protoutil.MarshalOrPanic(normal)}) }, channelconfig.ErrMalformed},
		{"sequence 1", func() *cb.Block {
			env, err := channelconfig.NewConfigEnvelope(seq1, o.admin)
			require.NoError(t, err)
			return protoutil.NewBlock(0, nil, [][]byte{protoutil.MarshalOrPanic(env)})
		}, channelconfig.ErrBadSequence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := channelconfig.FromGenesisBlock(tt.block())
			require.ErrorIs(t, err, tt.want)
		})
	}
	_, err := channelconfig.GenesisBlock(seq1)
	require.ErrorIs(t, err, channelconfig.ErrBadSequence)
	_, err = channelconfig.GenesisBlock(nil)
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
}

func TestNewBundleInvalid(t *testing.T) {
	_, cas := newOrgs(t, "Org1MSP", "Org2MSP")
	other := newOrg(t, "Org1MSP")
	tests := []struct {
		name   string
		mutate func(c *ccpb.ChannelConfig)
	}{
		{"empty channel ID", func(c *ccpb.ChannelConfig) { c.ChannelId = "" }},
		{"no batch size", func(c *ccpb.ChannelConfig) { c.BatchSize = nil }},
		{"zero max count", func(c *ccpb.ChannelConfig) { c.BatchSize.MaxMessageCount = 0 }},
		{"zero absolute", func(c *ccpb.ChannelConfig) { c.BatchSize.AbsoluteMaxBytes = 0 }},
		{"zero preferred", func(c *ccpb.ChannelConfig) { c.BatchSize.PreferredMaxBytes = 0 }},
		{"preferred above absolute", func(c *ccpb.ChannelConfig) { c.BatchSize.PreferredMaxBytes = c.BatchSize.AbsoluteMaxBytes + 1 }},
		{"no timeout", func(c *ccpb.ChannelConfig) { c.BatchTimeout = nil }},
		{"zero timeout", func(c *ccpb.ChannelConfig) { c.BatchTimeout = durationpb.New(0) }},
		{"negative timeout", func(c *ccpb.ChannelConfig) { c.BatchTimeout = durationpb.New(-time.Second) }},
		{"no Readers", func(c *ccpb.ChannelConfig) { delete(c.Policies, "Readers") }},
		{"no Writers", func(c *ccpb.ChannelConfig) { delete(c.Policies, "Writers") }},
		{"no Admins", func(c *ccpb.ChannelConfig) { delete(c.Policies, "Admins") }},
		{"undecodable policy", func(c *ccpb.ChannelConfig) {
			c.Policies["Admins"] = &cb.Policy{Type: int32(cb.Policy_SIGNATURE), Value: []byte{0xff}}
		}},
		{"unsupported policy type", func(c *ccpb.ChannelConfig) { c.Policies["Admins"] = &cb.Policy{Type: int32(cb.Policy_MSP)} }},
		{"implicit meta without sub-policy", func(c *ccpb.ChannelConfig) {
			c.Policies["Admins"] = channelconfig.ImplicitMetaPolicy("", cb.ImplicitMetaPolicy_ANY)
		}},
		{"implicit meta unknown rule", func(c *ccpb.ChannelConfig) {
			c.Policies["Admins"] = channelconfig.ImplicitMetaPolicy("Admins", 7)
		}},
		{"signature policy out of range", func(c *ccpb.ChannelConfig) {
			c.Policies["Admins"] = channelconfig.SignaturePolicy(&cb.SignaturePolicyEnvelope{Rule: msp.SignedBy(3)})
		}},
		{"org implicit meta policy", func(c *ccpb.ChannelConfig) {
			c.ApplicationOrgs[0].Policies["Admins"] = channelconfig.ImplicitMetaPolicy("Admins", cb.ImplicitMetaPolicy_ANY)
		}},
		{"duplicate MSP ID", func(c *ccpb.ChannelConfig) {
			c.ApplicationOrgs = append(c.ApplicationOrgs, channelconfig.NewOrganization(other.ca.MSPConfig()))
		}},
		{"orderer org differs from application org", func(c *ccpb.ChannelConfig) {
			c.OrdererOrgs = append(c.OrdererOrgs, channelconfig.NewOrganization(other.ca.MSPConfig()))
		}},
		{"org without MSP ID", func(c *ccpb.ChannelConfig) { c.ApplicationOrgs[0].MspId = "" }},
		{"org without MSP", func(c *ccpb.ChannelConfig) { c.ApplicationOrgs[0].Msp = nil }},
		{"MSP name mismatch", func(c *ccpb.ChannelConfig) { c.ApplicationOrgs[0].Msp.Name = "Other" }},
		{"bad MSP", func(c *ccpb.ChannelConfig) { c.ApplicationOrgs[0].Msp.RootCerts = nil }},
	}
	_, err := channelconfig.NewBundle(nil)
	require.ErrorIs(t, err, channelconfig.ErrMalformed)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testutil.ChannelConfig(channel, cas)
			_, err := channelconfig.NewBundle(cfg)
			require.NoError(t, err)
			tt.mutate(cfg)
			_, err = channelconfig.NewBundle(cfg)
			require.ErrorIs(t, err, channelconfig.ErrMalformed)
		})
	}
	// The same organisation may be both an application and an orderer
	// organisation.
	cfg := testutil.ChannelConfig(channel, cas, testutil.WithOrdererOrgs(cas[0]))
	_, err = channelconfig.NewBundle(cfg)
	require.NoError(t, err)
}

func TestValidateNormal(t *testing.T) {
	orgs, cas := newOrgs(t, "Org1MSP", "Org2MSP")
	o1 := orgs[0]
	expired := o1.ca.Issue("old", testutil.Expired())
	stranger := testutil.NewCA(t, "Org9MSP").Issue("stranger")
	// Writers: only Org1 admins; Readers and Admins stay the defaults.
	writers, err := msp.FromString("OR('Org1MSP.admin')")
	require.NoError(t, err)
	cfg := testutil.ChannelConfig(channel, cas, testutil.WithBatchSize(10, 2000, 1000),
		testutil.WithPolicy("Writers", channelconfig.SignaturePolicy(writers)))
	b := testutil.Bundle(t, cfg)

	tx := func(signer msp.SigningIdentity) *cb.Envelope {
		return testutil.Envelope(signer, channel, cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx"))
	}
	tests := []struct {
		name string
		env  *cb.Envelope
		want error
	}{
		{"valid", tx(o1.admin), nil},
		{"large, the node's check", testutil.Envelope(o1.admin, channel, cb.HeaderType_MESSAGE, make([]byte, 2000)), nil},
		{"nil", nil, channelconfig.ErrMalformed},
		{"garbage payload", &cb.Envelope{Payload: []byte{0xff, 0x01}}, channelconfig.ErrMalformed},
		{"no header", &cb.Envelope{Payload: protoutil.MarshalOrPanic(&cb.Payload{Data: []byte("x")})}, channelconfig.ErrMalformed},
		{"wrong channel", testutil.Envelope(o1.admin, "other", cb.HeaderType_MESSAGE, nil), channelconfig.ErrWrongChannel},
		{"config type", testutil.Envelope(o1.admin, channel, cb.HeaderType_CONFIG, nil), channelconfig.ErrMalformed},
		{"unknown creator", tx(stranger), msp.ErrUnknownMSP},
		{"expired creator", tx(expired), msp.ErrExpired},
		{"bad signature", func() *cb.Envelope { e := tx(o1.admin); e.Signature = tx(o1.admin).Signature; return e }(), channelconfig.ErrBadSignature},
		{"missing signature", func() *cb.Envelope { e := tx(o1.admin); e.Signature = nil; return e }(), channelconfig.ErrBadSignature},
		{"not a writer", tx(o1.member), channelconfig.ErrForbidden},
		{"other org not a writer", tx(orgs[1].admin), channelconfig.ErrForbidden},
	}
	// The second pass finds the creators in the MSPs' caches and must give
	// the same verdicts.
	for pass := range 2 {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("pass%d/%s", pass, tt.name), func(t *testing.T) {
				err := b.ValidateNormal(tt.env)
				if h, herr := protoutil.EnvelopeHeaders(tt.env); herr == nil {
					require.Equal(t, fmt.Sprint(err), fmt.Sprint(b.ValidateNormalHeaders(tt.env, h)), "with the headers decoded by the caller")
				}
				if tt.want == nil {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, tt.want)
			})
		}
	}
	// Creator failures are also forbidden.
	require.ErrorIs(t, b.ValidateNormal(tx(expired)), channelconfig.ErrForbidden)

	// With the default Writers policy (ANY Writers) any member writes.
	def := testutil.Bundle(t, testutil.ChannelConfig(channel, cas))
	require.NoError(t, def.ValidateNormal(tx(orgs[1].member)))
}

func TestValidateNormalClock(t *testing.T) {
	o := newOrg(t, "Org1MSP")
	cfg := testutil.ChannelConfig(channel, []*testutil.CA{o.ca})
	later := testutil.Bundle(t, cfg, channelconfig.WithClock(func() time.Time { return time.Now().Add(48 * time.Hour) }))
	err := later.ValidateNormal(testutil.Envelope(o.member, channel, cb.HeaderType_MESSAGE, nil))
	require.ErrorIs(t, err, msp.ErrExpired)
}

func TestValidateDeliver(t *testing.T) {
	orgs, cas := newOrgs(t, "Org1MSP", "Org2MSP")
	readers, err := msp.FromString("OR('Org2MSP.member')")
	require.NoError(t, err)
	b := testutil.Bundle(t, testutil.ChannelConfig(channel, cas, testutil.WithPolicy("Readers", channelconfig.SignaturePolicy(readers))))
	seek := func(signer msp.SigningIdentity, ch string, ht cb.HeaderType) *cb.Envelope {
		return testutil.Envelope(signer, ch, ht, []byte("seek"))
	}
	require.NoError(t, b.ValidateDeliver(seek(orgs[1].member, channel, cb.HeaderType_DELIVER_SEEK_INFO)))
	require.ErrorIs(t, b.ValidateDeliver(seek(orgs[0].member, channel, cb.HeaderType_DELIVER_SEEK_INFO)), channelconfig.ErrForbidden)
	require.ErrorIs(t, b.ValidateDeliver(seek(orgs[1].member, channel, cb.HeaderType_MESSAGE)), channelconfig.ErrMalformed)
	require.ErrorIs(t, b.ValidateDeliver(seek(orgs[1].member, "other", cb.HeaderType_DELIVER_SEEK_INFO)), channelconfig.ErrWrongChannel)
}

func TestEvaluatePolicyImplicitMeta(t *testing.T) {
	orgs, cas := newOrgs(t, "Org1MSP", "Org2MSP", "Org3MSP")
	cfg := testutil.ChannelConfig(channel, cas,
		testutil.WithPolicy("AnyAdmins", channelconfig.ImplicitMetaPolicy("Admins", cb.ImplicitMetaPolicy_ANY)),
		testutil.WithPolicy("AllAdmins", channelconfig.ImplicitMetaPolicy("Admins", cb.ImplicitMetaPolicy_ALL)),
		testutil.WithPolicy("MajorityAdmins", channelconfig.ImplicitMetaPolicy("Admins", cb.ImplicitMetaPolicy_MAJORITY)),
		testutil.WithPolicy("AnyMissing", channelconfig.ImplicitMetaPolicy("Missing", cb.ImplicitMetaPolicy_ANY)),
	)
	b := testutil.Bundle(t, cfg)
	msg := []byte("data")
	admins := func(idx ...int) []msp.SignedData {
		var out []msp.SignedData
		for _, i := range idx {
			out = append(out, orgs[i].admin.SignedData(msg))
		}
		return out
	}
	tests := []struct {
		policy string
		signed []msp.SignedData
		ok     bool
	}{
		{"AnyAdmins", admins(2), true},
		{"AnyAdmins", nil, false},
		{"AnyAdmins", []msp.SignedData{orgs[0].member.SignedData(msg)}, false},
		{"AllAdmins", admins(0, 1, 2), true},
		{"AllAdmins", admins(0, 1), false},
		{"MajorityAdmins", admins(0, 2), true},
		{"MajorityAdmins", admins(1), false},
		{"MajorityAdmins", admins(1, 1, 1), false},
		{"Admins", admins(0, 1), true},
		{"Admins", admins(2), false},
		{"Writers", []msp.SignedData{orgs[1].member.SignedData(msg)}, true},
		{"Readers", []msp.SignedData{orgs[2].admin.SignedData(msg)}, true},
		{"AnyMissing", admins(0, 1, 2), false},
		{"NoSuchPolicy", admins(0, 1, 2), false},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			err := b.EvaluatePolicy(tt.policy, tt.signed)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, channelconfig.ErrForbidden)
			}
		})
	}

	// A refusal counts the organisations and says why each failed.
	err := b.EvaluatePolicy("MajorityAdmins", admins(1))
	require.ErrorIs(t, err, msp.ErrPolicyNotSatisfied)
	require.ErrorContains(t, err, "policy MajorityAdmins (MAJORITY Admins): 1 of 3 organisations satisfied, need 2")
	require.ErrorContains(t, err, "Org1MSP: ")
	require.ErrorContains(t, err, "Org3MSP: ")
	require.NotContains(t, err.Error(), "Org2MSP: ")
	require.ErrorContains(t, b.EvaluatePolicy("AnyMissing", admins(0)), "Org1MSP has no policy Missing; Org2MSP has no policy Missing; Org3MSP has no policy Missing")

	// An organisation in both lists counts once: MAJORITY of {Org1, Org2}
	// needs both.
	two := testutil.Bundle(t, testutil.ChannelConfig(channel, cas[:2], testutil.WithOrdererOrgs(cas[0])))
	require.ErrorIs(t, two.EvaluatePolicy("Admins", admins(0)), channelconfig.ErrForbidden)
	require.NoError(t, two.EvaluatePolicy("Admins", admins(0, 1)))
	// Orderer organisations take part in implicit meta policies.
	withOrderer := testutil.Bundle(t, testutil.ChannelConfig(channel, cas[:1], testutil.WithOrdererOrgs(cas[2])))
	require.NoError(t, withOrderer.EvaluatePolicy("Writers", []msp.SignedData{orgs[2].member.SignedData(msg)}))
	require.ErrorIs(t, withOrderer.EvaluatePolicy("Admins", admins(2)), channelconfig.ErrForbidden)
	require.NoError(t, withOrderer.EvaluatePolicy("Admins", admins(0, 2)))
}

func TestValidateConfig(t *testing.T) {
	orgs, cas := newOrgs(t, "Org1MSP", "Org2MSP", "Org3MSP")
	// Org1 runs the orderers too: one organisation, counted once.
	b := testutil.Bundle(t, testutil.ChannelConfig(channel, cas, testutil.WithOrdererOrgs(cas[0])))

	next := func(mutate ...func(*ccpb.ChannelConfig)) *ccpb.ChannelConfig {
		c := b.Config()
		c.Sequence++
		c.BatchSize.MaxMessageCount = 20
		for _, m := range mutate {
			m(c)
		}
		return c
	}
	envelope := func(cfg *ccpb.ChannelConfig, admins ...int) *cb.Envelope {
		var signers []msp.SigningIdentity
		for _, i := range admins {
			signers = append(signers, orgs[i].admin)
		}
		env, err := channelconfig.NewConfigEnvelope(cfg, orgs[0].member, signers...)
		require.NoError(t, err)
		return env
	}
	signedPayload := func(data []byte) *cb.Envelope {
		return testutil.Envelope(orgs[0].member, channel, cb.HeaderType_CONFIG, data)
	}
	tests := []struct {
		name string
		env  *cb.Envelope
		want error
	}{
		{"majority of three", envelope(next(), 0, 2), nil},
		{"all three", envelope(next(), 0, 1, 2), nil},
		{"one of three", envelope(next(), 1), channelconfig.ErrForbidden},
		{"same admin twice", envelope(next(), 1, 1), channelconfig.ErrForbidden},
		{"no signatures", envelope(next()), channelconfig.ErrForbidden},
		{"same sequence", envelope(next(func(c *ccpb.ChannelConfig) { c.Sequence = 0 }), 0, 1), channelconfig.ErrBadSequence},
		{"skipped sequence", envelope(next(func(c *ccpb.ChannelConfig) { c.Sequence = 2 }), 0, 1), channelconfig.ErrBadSequence},
		{"other channel", envelope(next(func(c *ccpb.ChannelConfig) { c.ChannelId = "other" }), 0, 1), channelconfig.ErrWrongChannel},
		{"invalid new config", envelope(next(func(c *ccpb.ChannelConfig) { c.BatchSize.MaxMessageCount = 0 }), 0, 1), channelconfig.ErrMalformed},
		{"not CONFIG", testutil.Envelope(orgs[0].member, channel, cb.HeaderType_MESSAGE, nil), channelconfig.ErrMalformed},
		{"garbage ConfigEnvelope", signedPayload([]byte{0xff}), channelconfig.ErrMalformed},
		{"garbage config", signedPayload(protoutil.MarshalOrPanic(&ccpb.ConfigEnvelope{Config: []byte{0xff}})), channelconfig.ErrMalformed},
		{"garbage signature header", signedPayload(protoutil.MarshalOrPanic(&ccpb.ConfigEnvelope{
			Config:     protoutil.MarshalOrPanic(next()),
			Signatures: []*ccpb.ConfigSignature{{SignatureHeader: []byte{0xff}}},
		})), channelconfig.ErrMalformed},
		{"bad envelope signature", func() *cb.Envelope {
			e := envelope(next(), 0, 1)
			e.Signature = envelope(next(), 0, 1).Signature
			return e
		}(), channelconfig.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nb, err := b.ValidateConfig(tt.env)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				require.Nil(t, nb)
				return
			}
			require.NoError(t, err)
			require.Equal(t, uint64(1), nb.Sequence())
			require.Equal(t, uint32(20), nb.BatchSize().MaxMessageCount)
			require.Equal(t, uint64(0), b.Sequence(), "the old bundle is unchanged")
		})
	}
}

func TestValidateConfigChain(t *testing.T) {
	orgs, cas := newOrgs(t, "Org1MSP", "Org2MSP")
	b := testutil.Bundle(t, testutil.ChannelConfig(channel, cas[:1], testutil.WithOrdererOrgs(cas[0])))
	admin1, admin2 := orgs[0].admin, orgs[1].admin

	// Sequence 1 adds Org2, authorised by Org1 alone (MAJORITY of one).
	c1 := b.Config()
	c1.Sequence = 1
	c1.ApplicationOrgs = append(c1.ApplicationOrgs, channelconfig.NewOrganization(cas[1].MSPConfig()))
	env, err := channelconfig.NewConfigEnvelope(c1, admin1, admin1)
	require.NoError(t, err)
	b1, err := b.ValidateConfig(env)
	require.NoError(t, err)
	require.Equal(t, []string{"Org1MSP", "Org2MSP"}, b1.MSPManager().MSPIDs())

	// Sequence 2 now needs both organisations' admins.
	c2 := b1.Config()
	c2.Sequence = 2
	c2.BatchTimeout = durationpb.New(5 * time.Second)
	env, err = channelconfig.NewConfigEnvelope(c2, admin1, admin1)
	require.NoError(t, err)
	_, err = b1.ValidateConfig(env)
	require.ErrorIs(t, err, channelconfig.ErrForbidden)
	env, err = channelconfig.NewConfigEnvelope(c2, admin2, admin1, admin2)
	require.NoError(t, err)
	b2, err := b1.ValidateConfig(env)
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, b2.BatchTimeout())

	// A config block restores the bundle.
	restored, err := channelconfig.FromConfigBlock(protoutil.NewBlock(7, []byte("prev"), [][]byte{protoutil.MarshalOrPanic(env)}))
	require.NoError(t, err)
	require.True(t, proto.Equal(b2.Config(), restored.Config()))
}

// TestValidateConfigRefusesUnusable refuses updates that would brick the
// channel: no application or orderer organisation, a policy nobody could
// satisfy, an unbounded batch timeout.
func TestValidateConfigRefusesUnusable(t *testing.T) {
	orgs, cas := newOrgs(t, "AppMSP", "OrdererMSP")
	b := testutil.Bundle(t, testutil.ChannelConfig(channel, cas[:1], testutil.WithOrdererOrgs(cas[1])))
	update := func(f func(*ccpb.ChannelConfig)) error {
		c := b.Config()
		c.Sequence++
		f(c)
		// Signed by both admins: MAJORITY Admins of the current config.
		env, err := channelconfig.NewConfigEnvelope(c, orgs[0].admin, orgs[0].admin, orgs[1].admin)
		require.NoError(t, err)
		_, err = b.ValidateConfig(env)
		return err
	}
	require.NoError(t, update(func(c *ccpb.ChannelConfig) { c.BatchSize.MaxMessageCount = 7 }))
	policy := func(p string) *cb.Policy {
		env, err := msp.FromString(p)
		require.NoError(t, err)
		return channelconfig.SignaturePolicy(env)
	}
	for _, tt := range []struct {
		name, want string
		f          func(*ccpb.ChannelConfig)
	}{
		{"no organisation", "no application organisation", func(c *ccpb.ChannelConfig) { c.ApplicationOrgs, c.OrdererOrgs = nil, nil }},
		{"no application organisation", "no application organisation", func(c *ccpb.ChannelConfig) { c.ApplicationOrgs = nil }},
		{"no orderer organisation", "no orderer organisation", func(c *ccpb.ChannelConfig) { c.OrdererOrgs = nil }},
		{"Writers of a removed organisation", "policy Writers", func(c *ccpb.ChannelConfig) { c.Policies["Writers"] = policy("OR('GoneMSP.member')") }},
		{"Admins nobody holds", "policy Admins", func(c *ccpb.ChannelConfig) { c.Policies["Admins"] = policy("OR('AppMSP.peer')") }},
		{"Readers with no organisation's sub-policy", "policy Readers: ANY Nobody: 0 of 2 organisations could, need 1: AppMSP has no policy Nobody\nOrdererMSP has no policy Nobody", func(c *ccpb.ChannelConfig) {
			c.Policies["Readers"] = channelconfig.ImplicitMetaPolicy("Nobody", cb.ImplicitMetaPolicy_ANY)
		}},
		{"10,000 years", "exceeds 1h0m0s", func(c *ccpb.ChannelConfig) { c.BatchTimeout = &durationpb.Duration{Seconds: 10000 * 365 * 24 * 3600} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := update(tt.f)
			require.ErrorIs(t, err, channelconfig.ErrMalformed)
			require.ErrorContains(t, err, tt.want)
		})
	}
}
