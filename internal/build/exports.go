package build

import (
	"context"
	"sync"

	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/solve"
)

// exportRun is the cache exports of one solve result, run beside the
// writing of the outputs (the image push): neither needs the other, and
// each is a chain of round trips or disk writes. Its events are held
// until the outputs are written: exports whose outputs failed are
// cancelled and say nothing, as when they ran after the outputs.
type exportRun struct {
	cancel  context.CancelFunc
	done    chan struct{}
	events  heldSink
	stats   []progress.CacheStat
	skipped []progress.Notice
	err     error
}

// startExports starts exporting res to opts.CacheTo; nil when there is
// nothing to export.
func startExports(ctx context.Context, opts Options, res *solve.Result) *exportRun {
	if len(opts.CacheTo) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &exportRun{cancel: cancel, done: make(chan struct{})}
	s := &solved{}
	s.add(res)
	go func() {
		defer close(e.done)
		e.stats, e.skipped, e.err = exportCaches(ctx, opts, s, &e.events)
	}()
	return e
}

// abandon cancels the exports and waits for them; their events and
// results are dropped.
func (e *exportRun) abandon() {
	if e == nil {
		return
	}
	e.cancel()
	<-e.done
}

// result waits for the exports, emits their events to sink and returns
// what exportCaches returned.
func (e *exportRun) result(sink progress.Sink) ([]progress.CacheStat, []progress.Notice, error) {
	if e == nil {
		return nil, nil, nil
	}
	<-e.done
	e.cancel()
	e.events.flush(sink)
	return e.stats, e.skipped, e.err
}

// heldSink keeps the events emitted to it for flush.
type heldSink struct {
	mu     sync.Mutex
	events []progress.Event
}

func (h *heldSink) Emit(ev progress.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

func (h *heldSink) flush(sink progress.Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range h.events {
		sink.Emit(ev)
	}
	h.events = nil
}
