package atomicbroadcast

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

// ErrThrottled reports an envelope refused because its creator, or its
// creator's organisation, exceeded its Broadcast rate (see WithThrottle):
// SERVICE_UNAVAILABLE, to retry later.
var ErrThrottled = errors.New("atomicbroadcast: rate limit exceeded")

// Throttle limits the rate at which Broadcast accepts envelopes, per
// client identity and per organisation (MSP ID). A zero rate means no
// limit on that level; the zero Throttle throttles nothing.
//
// The identity is the envelope's creator (its signature header) once the
// channel has validated the envelope, so that a client cannot spend
// another's allowance with envelopes it cannot sign; the chain's
// configuration is what checks the signature (the default ones do). An
// envelope over either rate is answered SERVICE_UNAVAILABLE and is not
// ordered. Each rate is a token bucket that holds one second of envelopes
// (at least one): a client may send that many at once, then at the rate.
//
// Fabric 3.0's orderer throttles Broadcast too (General.Throttling, a
// rate and an inactivity timeout): it shares the rate among the clients
// authenticated by mutual TLS (by their certificates' key identifiers) and
// their CAs, and makes a client over its share wait.
// Here each identity and each organisation has its own rate, the identity
// is the signer's, and an envelope over it is refused at once: a
// server-wide bound on ordering throughput is Kafka's to enforce (quotas),
// and memory is bounded by the budgets.
type Throttle struct {
	// ClientRate is the envelopes per second one creator may have
	// ordered.
	ClientRate float64
	// OrgRate is the envelopes per second the creators of one MSP may
	// have ordered together.
	OrgRate float64
}

// throttler holds the token buckets of a Throttle.
type throttler struct {
	cfg     Throttle
	now     func() time.Time
	mu      sync.Mutex
	clients buckets
	orgs    buckets
}

func newThrottler(cfg Throttle, now func() time.Time) *throttler {
	return &throttler{cfg: cfg, now: now, clients: buckets{rate: cfg.ClientRate}, orgs: buckets{rate: cfg.OrgRate}}
}

// allow takes a token from the buckets of creator (a marshalled
// msp.SerializedIdentity) and of its MSP, and returns an error wrapping
// ErrThrottled when either is empty (then neither is charged).
func (t *throttler) allow(creator []byte) error {
	id := new(mspb.SerializedIdentity)
	if err := proto.Unmarshal(creator, id); err != nil {
		// The channel accepted it; a configuration that does not read
		// creators leaves the identity opaque.
		id.Mspid = ""
	}
	client := sha256.Sum256(creator)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	cl := t.clients.get(string(client[:]), now)
	org := t.orgs.get(id.GetMspid(), now)
	switch {
	case cl != nil && cl.tokens < 1:
		return fmt.Errorf("%w: a client of %s over %g envelopes/s", ErrThrottled, id.GetMspid(), t.cfg.ClientRate)
	case org != nil && org.tokens < 1:
		return fmt.Errorf("%w: organisation %s over %g envelopes/s", ErrThrottled, id.GetMspid(), t.cfg.OrgRate)
	}
	if cl != nil {
		cl.tokens--
	}
	if org != nil {
		org.tokens--
	}
	return nil
}

// buckets are the token buckets of one level, by key. A bucket that has
// refilled is forgotten: it is as good as a new one. The map is swept
// whenever it has doubled since the last sweep, so that it holds about the
// keys active in the last second.
type buckets struct {
	rate      float64
	m         map[string]*bucket
	sweptSize int
}

type bucket struct {
	tokens float64
	at     time.Time
}

// burst is how many tokens a full bucket holds: one second's worth, at
// least one.
func (b *buckets) burst() float64 { return max(b.rate, 1) }

// get returns key's bucket, refilled up to now, or nil without a rate.
func (b *buckets) get(key string, now time.Time) *bucket {
	if b.rate <= 0 {
		return nil
	}
	if b.m == nil {
		b.m = make(map[string]*bucket)
	}
	k, ok := b.m[key]
	if !ok {
		if len(b.m) >= max(2*b.sweptSize, 1024) {
			b.sweep(now)
		}
		k = &bucket{tokens: b.burst(), at: now}
		b.m[key] = k
		return k
	}
	b.refill(k, now)
	return k
}

func (b *buckets) refill(k *bucket, now time.Time) {
	if d := now.Sub(k.at); d > 0 {
		k.tokens = min(b.burst(), k.tokens+d.Seconds()*b.rate)
		k.at = now
	}
}

// sweep forgets the buckets that have refilled.
func (b *buckets) sweep(now time.Time) {
	for key, k := range b.m {
		if b.refill(k, now); k.tokens >= b.burst() {
			delete(b.m, key)
		}
	}
	b.sweptSize = len(b.m)
}
