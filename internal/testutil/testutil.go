// Package testutil is the test-only face of msp/msptest: the same
// organisations, identities, channel configurations and envelopes, from
// helpers that take a testing.TB and fail the test on error, so that a
// test reads as a list of steps. Examples and tests that others read use
// msptest itself.
//
// With a nil testing.TB (an Example function, a benchmark harness with no
// test) the helpers panic instead; nothing outside tests imports this
// package.
//
//	org1 := testutil.NewCA(t, "Org1MSP", testutil.WithNodeOUs())
//	alice := org1.Issue("alice", testutil.WithOU(testutil.OUClient))
//	cfg := testutil.ChannelConfig("mychannel", []*testutil.CA{org1})
//	genesis := testutil.GenesisBlock(t, cfg)
//	env := testutil.Envelope(alice, "mychannel", cb.HeaderType_ENDORSER_TRANSACTION, []byte("tx"))
package testutil

import (
	"crypto/elliptic"
	"crypto/x509"
	"testing"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// NodeOU names, as msptest's.
const (
	OUClient  = msptest.OUClient
	OUPeer    = msptest.OUPeer
	OUAdmin   = msptest.OUAdmin
	OUOrderer = msptest.OUOrderer
)

// Options, as msptest's.
type (
	CAOption     = msptest.CAOption
	IssueOption  = msptest.IssueOption
	ConfigOption = msptest.ConfigOption
)

// WithNodeOUs is msptest.WithNodeOUs.
func WithNodeOUs() CAOption { return msptest.WithNodeOUs() }

// WithCACurve is msptest.WithCurve.
func WithCACurve(curve elliptic.Curve) CAOption { return msptest.WithCurve(curve) }

// WithCAClock is msptest.WithClock.
func WithCAClock(now func() time.Time) CAOption { return msptest.WithClock(now) }

// WithOU is msptest.WithOU.
func WithOU(ous ...string) IssueOption { return msptest.WithOU(ous...) }

// ListedAdmin is msptest.ListedAdmin.
func ListedAdmin() IssueOption { return msptest.ListedAdmin() }

// WithValidity is msptest.WithValidity.
func WithValidity(notBefore, notAfter time.Time) IssueOption {
	return msptest.WithValidity(notBefore, notAfter)
}

// Expired is msptest.Expired.
func Expired() IssueOption { return msptest.Expired() }

// Ed25519Key is msptest.Ed25519Key.
func Ed25519Key() IssueOption { return msptest.Ed25519Key() }

// P384Key is msptest.P384Key.
func P384Key() IssueOption { return msptest.P384Key() }

// AsCA is msptest.AsCA.
func AsCA() IssueOption { return msptest.AsCA() }

// WithOrdererOrgs is msptest.WithOrdererOrgs.
func WithOrdererOrgs(cas ...*CA) ConfigOption { return msptest.WithOrdererOrgs(unwrap(cas)...) }

// WithBatchSize is msptest.WithBatchSize.
func WithBatchSize(maxMessageCount, absoluteMaxBytes, preferredMaxBytes uint32) ConfigOption {
	return msptest.WithBatchSize(maxMessageCount, absoluteMaxBytes, preferredMaxBytes)
}

// WithBatchTimeout is msptest.WithBatchTimeout.
func WithBatchTimeout(d time.Duration) ConfigOption { return msptest.WithBatchTimeout(d) }

// WithKafkaBrokers is msptest.WithKafkaBrokers.
func WithKafkaBrokers(brokers ...string) ConfigOption { return msptest.WithKafkaBrokers(brokers...) }

// WithPolicy is msptest.WithPolicy.
func WithPolicy(name string, p *cb.Policy) ConfigOption { return msptest.WithPolicy(name, p) }

// CA is an msptest.CA whose failing methods fail the test.
type CA struct {
	*msptest.CA
	t testing.TB
}

// Identity is an msptest.Identity whose failing methods fail the test.
type Identity struct {
	*msptest.Identity
	t testing.TB
}

// NewCA returns the root CA of a new organisation (msptest.NewCA).
func NewCA(t testing.TB, mspID string, opts ...CAOption) *CA {
	helper(t)
	ca, err := msptest.NewCA(mspID, opts...)
	check(t, err)
	return &CA{CA: ca, t: t}
}

// Root returns the organisation's root CA.
func (c *CA) Root() *CA { return &CA{CA: c.CA.Root(), t: c.t} }

// NewIntermediate returns an intermediate CA signed by c.
func (c *CA) NewIntermediate() *CA {
	helper(c.t)
	ica, err := c.CA.NewIntermediate()
	check(c.t, err)
	return &CA{CA: ica, t: c.t}
}

// Issue returns a new identity named name.
func (c *CA) Issue(name string, opts ...IssueOption) *Identity {
	helper(c.t)
	id, err := c.CA.Issue(name, opts...)
	check(c.t, err)
	return &Identity{Identity: id, t: c.t}
}

// Revoke revokes cert, which c must have issued.
func (c *CA) Revoke(cert *x509.Certificate) {
	helper(c.t)
	check(c.t, c.CA.Revoke(cert))
}

// MSP builds the organisation's msp.MSP.
func (c *CA) MSP(opts ...msp.Option) *msp.MSP {
	helper(c.t)
	m, err := c.CA.MSP(opts...)
	check(c.t, err)
	return m
}

// WriteMSPDir writes the organisation's MSP folder (msptest's
// CA.WriteMSPDir), with signer's identity unless nil.
func (c *CA) WriteMSPDir(dir string, signer *Identity) error {
	var s *msptest.Identity
	if signer != nil {
		s = signer.Identity
	}
	return c.CA.WriteMSPDir(dir, s)
}

// Serialized returns the identity's marshalled msp.SerializedIdentity.
func (id *Identity) Serialized() []byte {
	helper(id.t)
	b, err := id.Serialize()
	check(id.t, err)
	return b
}

// SignedData signs data and returns it as a policy input.
func (id *Identity) SignedData(data []byte) msp.SignedData {
	helper(id.t)
	sd, err := id.Identity.SignedData(data)
	check(id.t, err)
	return sd
}

// Manager builds an msp.Manager of the MSPs of cas.
func Manager(t testing.TB, cas ...*CA) *msp.Manager {
	helper(t)
	m, err := msptest.Manager(unwrap(cas)...)
	check(t, err)
	return m
}

// ChannelConfig is msptest.ChannelConfig.
func ChannelConfig(channelID string, orgs []*CA, opts ...ConfigOption) *ccpb.ChannelConfig {
	return msptest.ChannelConfig(channelID, unwrap(orgs), opts...)
}

// GenesisBlock returns the genesis block of cfg (channelconfig.GenesisBlock).
func GenesisBlock(t testing.TB, cfg *ccpb.ChannelConfig) *cb.Block {
	helper(t)
	b, err := channelconfig.GenesisBlock(cfg)
	check(t, err)
	return b
}

// Bundle returns the channelconfig.Bundle of cfg.
func Bundle(t testing.TB, cfg *ccpb.ChannelConfig, opts ...channelconfig.Option) *channelconfig.Bundle {
	helper(t)
	b, err := channelconfig.NewBundle(cfg, opts...)
	check(t, err)
	return b
}

// Envelope returns an envelope of type headerType for channelID carrying
// data, signed by signer (protoutil.NewSignedEnvelope). It panics if
// signing fails, which only a broken signer does.
func Envelope(signer protoutil.Signer, channelID string, headerType cb.HeaderType, data []byte) *cb.Envelope {
	env, err := protoutil.NewSignedEnvelope(headerType, channelID, data, signer)
	if err != nil {
		panic("testutil: " + err.Error())
	}
	return env
}

func unwrap(cas []*CA) []*msptest.CA {
	out := make([]*msptest.CA, len(cas))
	for i, ca := range cas {
		out[i] = ca.CA
	}
	return out
}

func helper(t testing.TB) {
	if t != nil {
		t.Helper()
	}
}

func check(t testing.TB, err error) {
	if err == nil {
		return
	}
	if t == nil {
		panic("testutil: " + err.Error())
	}
	t.Helper()
	t.Fatalf("testutil: %v", err)
}
