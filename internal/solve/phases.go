package solve

import "time"

// phases times the parts of a step's execution for the debug log: each
// mark ends the phase named, which began at the previous mark.
type phases struct {
	last  time.Time
	names []string
	durs  []time.Duration
}

func newPhases() *phases { return &phases{last: time.Now()} }

func (p *phases) mark(name string) {
	now := time.Now()
	p.names = append(p.names, name)
	p.durs = append(p.durs, now.Sub(p.last))
	p.last = now
}

// attrs are the marks as slog key-value pairs, in order (durations to
// 0.1 ms).
func (p *phases) attrs() []any {
	out := make([]any, 0, 2*len(p.names))
	for i, n := range p.names {
		out = append(out, n, p.durs[i].Round(100*time.Microsecond).String())
	}
	return out
}
