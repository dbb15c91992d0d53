package progress

import "sync"

// Sink receives a build's events. Emit may be called from several
// goroutines at once (stages run in parallel) and must not block for long:
// a renderer that writes to a slow terminal slows the build. Emit reports
// no error: progress is best effort, and a renderer that cannot write drops
// what it could not write.
//
// Events of one step arrive in the order they happened; events of
// different steps may interleave.
type Sink interface {
	// Emit reports one event. It may keep the event (see Event), and it
	// must return promptly, from any goroutine.
	Emit(Event)
}

type discard struct{}

// Emit drops the event.
func (discard) Emit(Event) {}

// Discard returns a Sink that drops every event. It is what a package uses
// when its caller gave no Sink.
func Discard() Sink { return discard{} }

type tee []Sink

// Emit passes e to each sink, in the order Tee was given them.
func (t tee) Emit(e Event) {
	for _, s := range t {
		s.Emit(e)
	}
}

// Tee returns a Sink that emits every event to each of sinks in turn. nil
// sinks are skipped; with none left it is Discard.
func Tee(sinks ...Sink) Sink {
	var t tee
	for _, s := range sinks {
		if s != nil {
			t = append(t, s)
		}
	}
	switch len(t) {
	case 0:
		return Discard()
	case 1:
		return t[0]
	}
	return t
}

// Recorder is a Sink that keeps every event, for tests. Its zero value is
// ready to use, and it is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

var _ Sink = (*Recorder)(nil)

// Emit records e.
func (r *Recorder) Emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of the events recorded so far, in the order Emit
// was called.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}
