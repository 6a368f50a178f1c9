package consensus

import (
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// health tracks whether a chain can consume, from two sources: franz-go's
// broker hooks (every round trip, and failed connections), and the
// partition errors PollFetches returns. A fetch round trip that succeeds
// proves the brokers answer, even when no record arrives; a partition error
// is cleared only by a record.
type health struct {
	mu              sync.Mutex
	connFailedSince time.Time // first failed round trip since the last good fetch
	partFailedSince time.Time // first partition error since the last record
	goodFetch       time.Time // when the last successful fetch was written
}

var (
	_ kgo.HookBrokerE2E     = (*health)(nil)
	_ kgo.HookBrokerConnect = (*health)(nil)
)

// OnBrokerE2E records the outcome of a round trip: any failure counts; a
// success counts only for a fetch written after the failures began, since
// a response to a request sent earlier says nothing about the brokers now.
func (h *health) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case e2e.Err() != nil:
		if h.connFailedSince.IsZero() {
			h.connFailedSince = now
		}
	case key == int16(kmsg.Fetch):
		written := now.Add(-e2e.DurationE2E())
		if written.After(h.connFailedSince) {
			h.connFailedSince = time.Time{}
		}
		if written.After(h.goodFetch) {
			h.goodFetch = written
		}
	}
}

// OnBrokerConnect records failed connections.
func (h *health) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.connFailedSince.IsZero() {
		h.connFailedSince = time.Now()
	}
}

// reset forgets past failures: consumption starts anew.
func (h *health) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connFailedSince, h.partFailedSince = time.Time{}, time.Time{}
}

func (h *health) partitionFailed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.partFailedSince.IsZero() {
		h.partFailedSince = time.Now()
	}
}

func (h *health) recordConsumed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.partFailedSince = time.Time{}
}

// fetchedSince reports whether a fetch written after t succeeded.
func (h *health) fetchedSince(t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.goodFetch.After(t)
}

// failingSince returns since when consumption has been failing, or the
// zero time when it works, and whether a partition error is among the
// causes.
func (h *health) failingSince() (since time.Time, partition bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	since = h.connFailedSince
	if p := h.partFailedSince; !p.IsZero() && (since.IsZero() || p.Before(since)) {
		since = p
	}
	return since, !h.partFailedSince.IsZero()
}
