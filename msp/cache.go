package msp

import (
	"crypto/x509"
	"sync"
	"time"
)

// cacheSize bounds each cache of an MSP and of a Manager.
const cacheSize = 4096

// boundedCache is a map of at most max entries, safe for concurrent use.
// When it is full, inserting evicts an arbitrary entry (Go's randomised
// map iteration picks it), so a stream of new keys cannot flush the cache
// all at once and no entry is pinned. Lookups take only a read lock.
type boundedCache[V any] struct {
	mu  sync.RWMutex
	max int
	m   map[string]V
}

func newBoundedCache[V any](max int) *boundedCache[V] {
	return &boundedCache[V]{max: max, m: make(map[string]V)}
}

// get looks key up; converting the []byte key does not allocate.
func (c *boundedCache[V]) get(key []byte) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[string(key)]
	c.mu.RUnlock()
	return v, ok
}

func (c *boundedCache[V]) put(key []byte, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[string(key)]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[string(key)] = v
}

func (c *boundedCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// validation is a successful validation of a certificate by an MSP: the
// chain it was validated with and the period in which every certificate
// of that chain is valid. Only the validity period depends on the time;
// the chain, the revocation check and the NodeOU classification depend on
// the certificate and the MSP alone, and an MSP never changes.
type validation struct {
	chain     []*x509.Certificate
	notBefore time.Time // latest NotBefore of the chain
	notAfter  time.Time // earliest NotAfter of the chain
}

func newValidation(chain []*x509.Certificate) *validation {
	v := &validation{chain: chain, notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, c := range chain[1:] {
		if c.NotBefore.After(v.notBefore) {
			v.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(v.notAfter) {
			v.notAfter = c.NotAfter
		}
	}
	return v
}

// validAt reports whether every certificate of the chain is valid at t,
// with the bounds x509 verification uses (both inclusive).
func (v *validation) validAt(t time.Time) bool {
	return !t.Before(v.notBefore) && !t.After(v.notAfter)
}
