package channelconfig_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// TestValidateNormalCachedCreatorExpires checks that a creator validated
// (and cached) earlier is rejected once the clock passes its expiry.
func TestValidateNormalCachedCreatorExpires(t *testing.T) {
	o := newOrg(t, "Org1MSP")
	var now atomic.Pointer[time.Time]
	set := func(t time.Time) { now.Store(&t) }
	start := time.Now()
	set(start)
	b := testutil.Bundle(t, testutil.ChannelConfig(channel, []*testutil.CA{o.ca}),
		channelconfig.WithClock(func() time.Time { return *now.Load() }))
	env := testutil.Envelope(o.member, channel, cb.HeaderType_MESSAGE, []byte("x"))

	require.NoError(t, b.ValidateNormal(env))
	require.NoError(t, b.ValidateNormal(env))
	set(start.Add(25 * time.Hour)) // the member's certificate is valid for a day
	err := b.ValidateNormal(env)
	require.ErrorIs(t, err, channelconfig.ErrForbidden)
	require.ErrorIs(t, err, msp.ErrExpired)
	err = b.EvaluatePolicy(channelconfig.WritersPolicy, []msp.SignedData{o.member.SignedData([]byte("y"))})
	require.ErrorIs(t, err, channelconfig.ErrForbidden)
	set(start)
	require.NoError(t, b.ValidateNormal(env))
}

// TestValidateNormalConcurrent validates envelopes of valid and invalid
// creators from several goroutines; run it with -race.
func TestValidateNormalConcurrent(t *testing.T) {
	orgs, cas := newOrgs(t, "Org1MSP", "Org2MSP")
	b := testutil.Bundle(t, testutil.ChannelConfig(channel, cas))
	expired := orgs[0].ca.Issue("old", testutil.Expired())
	tx := func(s msp.SigningIdentity) *cb.Envelope {
		return testutil.Envelope(s, channel, cb.HeaderType_MESSAGE, []byte("x"))
	}
	badSig := tx(orgs[1].member)
	badSig.Signature = tx(orgs[1].member).Signature
	cases := []struct {
		env  *cb.Envelope
		want error
	}{
		{tx(orgs[0].member), nil},
		{tx(orgs[1].member), nil},
		{tx(orgs[1].admin), nil},
		{tx(expired), msp.ErrExpired},
		{tx(testutil.NewCA(t, "Org1MSP").Issue("mallory")), msp.ErrUntrusted},
		{badSig, channelconfig.ErrBadSignature},
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 30 {
				c := cases[(g+i)%len(cases)]
				err := b.ValidateNormal(c.env)
				if c.want == nil {
					if err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if !errorsIs(err, c.want) {
					t.Errorf("got %v, want %v", err, c.want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func errorsIs(err, target error) bool { return err != nil && errors.Is(err, target) }
