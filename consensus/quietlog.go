package consensus

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// quietPeriod is how often a repeated event is logged at most.
const quietPeriod = 30 * time.Second

// quietLog logs each kind of event once, then at most once per period with
// the number of occurrences it did not log since: a node that fails the
// same way thousands of times a second says why once, then summarises.
type quietLog struct {
	log    *slog.Logger
	period time.Duration
	now    func() time.Time

	mu     sync.Mutex
	events map[string]*quietEvent
}

type quietEvent struct {
	logged     time.Time
	suppressed int
}

func newQuietLog(l *slog.Logger) *quietLog {
	return &quietLog{log: l, period: quietPeriod, now: time.Now, events: make(map[string]*quietEvent)}
}

// Log logs msg at level unless an event of the same kind was logged less
// than a period ago; then it only counts it. The next line logged for the
// kind carries the count as "repeated".
func (q *quietLog) Log(level slog.Level, kind, msg string, args ...any) {
	if !q.log.Enabled(context.Background(), level) {
		return
	}
	now := q.now()
	q.mu.Lock()
	e := q.events[kind]
	if e == nil {
		e = new(quietEvent)
		q.events[kind] = e
	}
	if !e.logged.IsZero() && now.Sub(e.logged) < q.period {
		e.suppressed++
		q.mu.Unlock()
		return
	}
	n := e.suppressed
	e.logged, e.suppressed = now, 0
	q.mu.Unlock()
	if n > 0 {
		args = append(args, "repeated", n)
	}
	q.log.Log(context.Background(), level, msg, args...)
}

// Reset forgets kind, so that its next occurrence is logged at once: for
// events that belong to one episode (errors while the log cannot be used)
// once the episode is over.
func (q *quietLog) Reset(kind string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.events, kind)
}
