package msp_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

// clock is a settable clock for msp.WithClock.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock {
	c := new(clock)
	c.set(t)
	return c
}

func (c *clock) set(t time.Time)    { c.t.Store(&t) }
func (c *clock) now() time.Time     { return *c.t.Load() }
func (c *clock) option() msp.Option { return msp.WithClock(c.now) }

// TestValidateCached runs the validation table twice on the same MSPs: the
// second pass is answered from the caches and must give the same verdicts,
// through Validate and through Deserialize then Validate.
func TestValidateCached(t *testing.T) {
	org1, tests := validateCases(t)
	shared := org1.MSP()
	own := make([]*msp.MSP, len(tests))
	for i, tt := range tests {
		own[i] = shared
		if tt.opts != nil {
			own[i] = org1.MSP(tt.opts...)
		}
	}
	lens := func() (ids, valid int) { return msp.CacheLen(shared) }
	var ids1, valid1 int
	for pass := range 2 {
		for i, tt := range tests {
			t.Run(fmt.Sprintf("pass%d/%s", pass, tt.name), func(t *testing.T) {
				m := own[i]
				checkVerdict(t, tt.want, m.Validate(asIdentity(tt.id)))
				if tt.id == nil {
					return
				}
				id, err := m.Deserialize(tt.id.Serialized())
				if err != nil {
					require.ErrorIs(t, err, tt.want)
					require.ErrorIs(t, tt.want, msp.ErrUnknownMSP)
					return
				}
				checkVerdict(t, tt.want, m.Validate(id))
				_, err = m.CertifiersIdentifier(id)
				checkVerdict(t, tt.want, err)
				err = m.SatisfiesPrincipal(id, msp.RolePrincipal("Org1MSP", mspb.MSPRole_MEMBER))
				checkVerdict(t, tt.want, err)
			})
		}
		if pass == 0 {
			ids1, valid1 = lens()
			// Only the four valid identities of the shared MSP are cached
			// as validated; every identity of Org1MSP that decodes is
			// cached as deserialized.
			require.Equal(t, 4, valid1)
			continue
		}
		ids2, valid2 := lens()
		require.Equal(t, ids1, ids2, "the second pass deserializes nothing new")
		require.Equal(t, valid1, valid2, "the second pass validates nothing new")
	}
}

// TestCachedValidationExpires checks that a cached validation is rejected
// once the MSP's clock leaves the validity period of the leaf, or of any
// certificate of its chain, and accepted again when it returns.
func TestCachedValidationExpires(t *testing.T) {
	start := time.Now()
	t.Run("leaf", func(t *testing.T) {
		ca := testutil.NewCA(t, "Org1MSP")
		alice := ca.Issue("alice") // valid for a day
		clk := newClock(start)
		mgr, err := msp.NewManager(ca.MSP(clk.option()))
		require.NoError(t, err)
		id, err := mgr.Deserialize(alice.Serialized())
		require.NoError(t, err)
		require.NoError(t, mgr.Validate(id))
		require.NoError(t, mgr.Validate(id)) // cached

		clk.set(start.Add(25 * time.Hour))
		require.ErrorIs(t, mgr.Validate(id), msp.ErrExpired)
		id2, err := mgr.Deserialize(alice.Serialized())
		require.NoError(t, err)
		require.ErrorIs(t, mgr.Validate(id2), msp.ErrExpired)
		cs := mgr.CheckSignatures([]msp.SignedData{alice.SignedData([]byte("m"))})
		require.ErrorIs(t, cs.Err(0), msp.ErrExpired)
		require.ErrorIs(t, cs.Evaluate(msp.SignedByMSPRole("Org1MSP", mspb.MSPRole_MEMBER)), msp.ErrPolicyNotSatisfied)

		clk.set(start.Add(-2 * time.Hour)) // before NotBefore
		require.ErrorIs(t, mgr.Validate(id), msp.ErrExpired)

		clk.set(start)
		require.NoError(t, mgr.Validate(id))
	})
	t.Run("root expires before leaf and intermediate", func(t *testing.T) {
		// The root is valid until start+5y, the intermediate until
		// start+10y and the leaf until start+20y.
		caClk := newClock(start.Add(-5 * 365 * 24 * time.Hour))
		ca := testutil.NewCA(t, "Org1MSP", testutil.WithCAClock(caClk.now))
		caClk.set(start)
		ica := ca.NewIntermediate()
		bob := ica.Issue("bob", testutil.WithValidity(start.Add(-time.Hour), start.Add(20*365*24*time.Hour)))

		clk := newClock(start)
		m := ca.MSP(clk.option())
		require.NoError(t, m.Validate(bob))
		require.NoError(t, m.Validate(bob))
		clk.set(start.Add(6 * 365 * 24 * time.Hour))
		require.ErrorIs(t, m.Validate(bob), msp.ErrExpired)
		clk.set(start.Add(time.Hour))
		require.NoError(t, m.Validate(bob))
	})
}

// TestCacheBounded checks that the caches of an MSP and of a Manager never
// exceed their bound and that evicted identities validate as before.
func TestCacheBounded(t *testing.T) {
	const bound = 4
	ca := testutil.NewCA(t, "Org1MSP")
	m := ca.MSP(msp.WithCacheSize(bound))
	mgr, err := msp.NewManager(m)
	require.NoError(t, err)
	var ids []*testutil.Identity
	for i := range 3 * bound {
		ids = append(ids, ca.Issue(fmt.Sprintf("user%d", i)))
	}
	expired := ca.Issue("old", testutil.Expired())
	for range 2 {
		for _, x := range ids {
			id, err := mgr.Deserialize(x.Serialized())
			require.NoError(t, err)
			require.NoError(t, mgr.Validate(id))
			id, err = m.Deserialize(x.Serialized())
			require.NoError(t, err)
			require.NoError(t, m.Validate(id))

			nids, nvalid := msp.CacheLen(m)
			require.LessOrEqual(t, nids, bound)
			require.LessOrEqual(t, nvalid, bound)
			require.LessOrEqual(t, msp.ManagerCacheLen(mgr), bound)
		}
		require.ErrorIs(t, m.Validate(expired), msp.ErrExpired)
	}
	nids, nvalid := msp.CacheLen(m)
	require.Equal(t, bound, nids)
	require.Equal(t, bound, nvalid)
	require.Equal(t, bound, msp.ManagerCacheLen(mgr))
}

// TestCacheConcurrent validates, deserializes and evaluates policies from
// many goroutines over small caches that keep evicting, while the clock
// moves an identity in and out of its validity period; run it with -race.
func TestCacheConcurrent(t *testing.T) {
	org1, org2 := testutil.NewCA(t, "Org1MSP"), testutil.NewCA(t, "Org2MSP")
	ica := org1.NewIntermediate()
	revoked := org1.Issue("revoked")
	org1.Revoke(revoked.Cert)
	clk := newClock(time.Now())
	m1 := org1.MSP(msp.WithCacheSize(3), clk.option())
	m2 := org2.MSP(msp.WithCacheSize(3), clk.option())
	mgr, err := msp.NewManager(m1, m2)
	require.NoError(t, err)

	type item struct {
		id   *testutil.Identity
		want error
	}
	items := []item{
		{org1.Issue("a"), nil},
		{org1.Issue("b", testutil.Ed25519Key()), nil},
		{ica.Issue("c"), nil},
		{org2.Issue("d"), nil},
		{org2.Issue("e"), nil},
		{org1.Issue("old", testutil.Expired()), msp.ErrExpired},
		{revoked, msp.ErrRevoked},
		{testutil.NewCA(t, "Org1MSP").Issue("mallory"), msp.ErrUntrusted},
	}
	// flip is valid only while the clock is not moved forward by two days.
	flip := org1.Issue("flip")
	policy, err := msp.FromString("OR('Org1MSP.member', 'Org2MSP.member')")
	require.NoError(t, err)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		base := clk.now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				clk.set(base)
			} else {
				clk.set(base.Add(48 * time.Hour))
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
	var workers sync.WaitGroup
	for g := range 8 {
		workers.Go(func() {
			for i := range 60 {
				it := items[(g+i)%len(items)]
				id, err := mgr.Deserialize(it.id.Serialized())
				if !assertNoError(t, err) {
					return
				}
				// While the clock is two days ahead every identity is
				// rejected as expired first; an invalid identity is
				// rejected whatever the time.
				err = mgr.Validate(id)
				if !verdictMatches(it.want, err) && !errorIs(err, msp.ErrExpired) {
					t.Errorf("%s: got %v, want %v", it.id.Cert.Subject.CommonName, err, it.want)
					return
				}
				cs := mgr.CheckSignatures([]msp.SignedData{it.id.SignedData([]byte{byte(i)}), flip.SignedData([]byte{byte(i)})})
				if err := cs.Evaluate(policy); err != nil {
					// flip may be expired at the same time as it.id.
					if !errorIs(err, msp.ErrPolicyNotSatisfied) {
						t.Errorf("evaluate: %v", err)
						return
					}
				}
				if err := cs.Err(0); !verdictMatches(it.want, err) && !errorIs(err, msp.ErrExpired) {
					t.Errorf("%s: signature check: %v, want %v", it.id.Cert.Subject.CommonName, err, it.want)
					return
				}
				if err := cs.Err(1); err != nil && !errorIs(err, msp.ErrExpired) {
					t.Errorf("flip: %v", err)
					return
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()

	clk.set(time.Now())
	for _, it := range items {
		checkVerdict(t, it.want, mgr.Validate(it.id))
	}
	clk.set(time.Now().Add(48 * time.Hour))
	require.ErrorIs(t, mgr.Validate(flip), msp.ErrExpired)
}

func errorIs(err, target error) bool { return err != nil && errors.Is(err, target) }

func verdictMatches(want, err error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}
