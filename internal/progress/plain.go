package progress

import (
	"io"
	"strings"
	"sync"
)

// NewPlain returns a Sink that writes one line per event to w, for CI logs
// and anything else that is not a terminal:
//
//	#2 [build 2/5] RUN make
//	#2 MISS RUN make: build arg VERSION changed
//	#2 0.213 compiling…
//	#2 DONE 1.4s
//	#3 [build 3/5] COPY . /src
//	#3 CACHED (local state)
//	WARNING: …
//	Summary: 9 steps, 6 cached, 3 ran in 12.3s
//
// Every line about a step begins with "#N", so steps of parallel stages
// stay apart when their lines interleave. A log line shows the seconds since
// its step started. A step's title line is written at its first event, so a
// step that fails before it starts still says which instruction it was.
// Events of unknown kind are skipped. The format is stable: tests hold it in
// golden files, and scripts may grep it.
//
// The Sink is safe for concurrent use; each event is one Write to w, so
// lines from different goroutines never mix. Write errors are dropped.
func NewPlain(w io.Writer) Sink {
	return &plain{w: w, steps: stepTable{}}
}

type plain struct {
	mu    sync.Mutex
	w     io.Writer
	steps stepTable
}

// Emit writes the lines e adds to the log, with one Write.
func (p *plain) Emit(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var lines []string
	switch e.Kind {
	case StepStart, StepCached, StepDone, StepFailed, Log:
		s := p.steps.update(e)
		if !s.announced && (e.Kind != Log || s.text != "") {
			lines = append(lines, s.title())
			s.announced = true
		}
		if e.Kind == StepStart && e.Miss != nil {
			lines = append(lines, missLine(e.Miss))
		}
		if e.Kind == Log {
			off := s.offset(e.Time)
			for l := range splitLines(e.Line) {
				lines = append(lines, logLine(e.Step, off, l))
			}
		} else if st := status(e); st != "" {
			lines = append(lines, prefix(e.Step)+" "+st)
		}
	case Warning, Info:
		lines = append(lines, notice(e))
	case Done:
		lines = append(lines, summaryLines(e.Summary)...)
	}
	if len(lines) == 0 {
		return
	}
	_, _ = io.WriteString(p.w, strings.Join(lines, "\n")+"\n")
}
