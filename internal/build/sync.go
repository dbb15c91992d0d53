package build

import (
	"errors"
	"sync"
)

// early is work a build can start before its end, once what it needs is
// done, and must have finished when the build ends: the snapshot sync
// and the close of the build's network, both beside the push and the
// cache exports. f runs once from start, in the background, and once more
// from finish, which waits for the first run: a second call of f must do
// only what was added since the first (Snapshotter.Sync syncs nothing
// when no snapshot is left unsynced; Solver.Close closes nothing when no
// namespace was made again).
type early struct {
	f       func() error
	mu      sync.Mutex
	started bool
	done    chan struct{}
	err     error // the first run's, once done is closed
}

func newEarly(f func() error) *early { return &early{f: f, done: make(chan struct{})} }

// start runs f in the background; later calls do nothing.
func (e *early) start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return
	}
	e.started = true
	go func() {
		defer close(e.done)
		e.err = e.f()
	}()
}

// wait returns when the run start began has ended (at once if start was
// never called).
func (e *early) wait() {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if started {
		<-e.done
	}
}

// finish starts f if start was never called, waits for it, and runs f
// again; it returns both runs' errors.
func (e *early) finish() error {
	e.start()
	<-e.done
	return errors.Join(e.err, e.f())
}
