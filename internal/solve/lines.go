package solve

import (
	"bytes"
	"io"
	"sync"

	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
)

// tailLines is how many output lines a failed step shows.
const tailLines = 10

// maxLine bounds one log line; longer output is split.
const maxLine = 8 << 10

// lineWriter turns a step's output into Log events, one per line, and keeps
// the last lines for the error of a failed step.
type lineWriter struct {
	s    *Solver
	step *plan.Step
	mu   sync.Mutex
	bufs map[string]*bytes.Buffer
	last []string
}

func newLineWriter(s *Solver, step *plan.Step) *lineWriter {
	return &lineWriter{s: s, step: step, bufs: map[string]*bytes.Buffer{}}
}

type streamWriter struct {
	w      *lineWriter
	stream string
}

func (w *lineWriter) stream(name string) io.Writer {
	w.bufs[name] = &bytes.Buffer{}
	return streamWriter{w, name}
}

func (sw streamWriter) Write(p []byte) (int, error) {
	w := sw.w
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := w.bufs[sw.stream]
	buf.Write(p)
	for {
		i := bytes.IndexByte(buf.Bytes(), '\n')
		if i < 0 {
			if buf.Len() > maxLine {
				w.line(sw.stream, string(buf.Next(maxLine)))
				continue
			}
			break
		}
		line := string(buf.Next(i + 1))
		w.line(sw.stream, line[:len(line)-1])
	}
	return len(p), nil
}

// line emits one line; called with mu held.
func (w *lineWriter) line(stream, text string) {
	w.last = append(w.last, text)
	if len(w.last) > tailLines {
		w.last = w.last[len(w.last)-tailLines:]
	}
	w.s.emit(progress.Event{
		Kind: progress.Log, Step: w.step.Number, Stage: w.s.stageLabel(w.step.Stage),
		Text: w.step.Text, Stream: stream, Line: text,
	})
}

// flush emits what is left after the last newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, buf := range w.bufs {
		if buf.Len() > 0 {
			w.line(name, buf.String())
			buf.Reset()
		}
	}
}

func (w *lineWriter) tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.last...)
}
