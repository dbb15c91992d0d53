package gha

import (
	"context"
	"sync"
	"time"
)

// limiter lets at most n entries be created in any window (a sliding
// window over the start times of the last n), so a burst as large as n
// goes at once and nothing beyond it ever crowds one window.
type limiter struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	clock  Clock
	starts []time.Time // oldest first, at most n
}

func newLimiter(n int, window time.Duration, clock Clock) *limiter {
	return &limiter{n: n, window: window, clock: clock}
}

// wait blocks until one more entry fits in the window, then counts it.
func (l *limiter) wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		now := l.clock.Now()
		for len(l.starts) > 0 && now.Sub(l.starts[0]) >= l.window {
			l.starts = l.starts[1:]
		}
		if len(l.starts) < l.n {
			l.starts = append(l.starts, now)
			l.mu.Unlock()
			return nil
		}
		d := l.window - now.Sub(l.starts[0])
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.clock.After(d):
		}
	}
}
