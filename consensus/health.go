package consensus

import (
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// brokerHealth tracks, from franz-go's broker hooks on the shared client,
// whether the brokers answer: every failed round trip or connection counts,
// and a fetch written after the failures began and answered clears them.
type brokerHealth struct {
	mu          sync.Mutex
	failedSince time.Time // first failure since the last good fetch
}

var (
	_ kgo.HookBrokerE2E     = (*brokerHealth)(nil)
	_ kgo.HookBrokerConnect = (*brokerHealth)(nil)
)

// OnBrokerE2E records the outcome of a round trip: any failure counts; a
// success counts only for a fetch written after the failures began, since
// a response to a request sent earlier says nothing about the brokers now.
func (h *brokerHealth) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case e2e.Err() != nil:
		if h.failedSince.IsZero() {
			h.failedSince = now
		}
	case key == int16(kmsg.Fetch):
		if now.Add(-e2e.DurationE2E()).After(h.failedSince) {
			h.failedSince = time.Time{}
		}
	}
}

// OnBrokerConnect records failed connections.
func (h *brokerHealth) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failedSince.IsZero() {
		h.failedSince = time.Now()
	}
}

// failing returns since when the brokers have been failing, or the zero
// time.
func (h *brokerHealth) failing() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failedSince
}

// health is one chain's view of whether it can consume: the brokers'
// health, counted only from when the chain last started consuming, and the
// errors of its own partition, which only a record clears. It is owned by
// the chain's loop.
type health struct {
	brokers         *brokerHealth
	consumingSince  time.Time
	partFailedSince time.Time
}

// reset starts counting anew: the chain (re)starts consuming.
func (h *health) reset() {
	h.consumingSince, h.partFailedSince = time.Now(), time.Time{}
}

func (h *health) partitionFailed() {
	if h.partFailedSince.IsZero() {
		h.partFailedSince = time.Now()
	}
}

func (h *health) recordConsumed() { h.partFailedSince = time.Time{} }

// failingSince returns since when consumption has been failing, or the
// zero time when it works.
func (h *health) failingSince() time.Time {
	since := h.brokers.failing()
	if !since.IsZero() && since.Before(h.consumingSince) {
		since = h.consumingSince
	}
	if p := h.partFailedSince; !p.IsZero() && (since.IsZero() || p.Before(since)) {
		since = p
	}
	return since
}
