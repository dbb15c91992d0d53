package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// TTY is a Sink that shows a build live on a terminal. Below everything
// already written it keeps a block with one line per running step (a
// spinner, its title and elapsed time) and the last few output lines of
// each, redrawn about ten times a second with ANSI cursor-up and erase.
// When a step finishes it leaves the block and is written once, for good,
// above it, as one line in the words of the plain renderer:
//
//	#2 [build 2/5] RUN make DONE 1.4s
//	#2 MISS RUN make: build arg VERSION changed
//	#3 [build 3/5] COPY . /src CACHED (local state)
//	#4 [build 4/5] RUN make test ERROR: exit code 2
//	#4 1.020 FAIL: TestX
//
// Output lines are not kept once a step succeeds; a failed step's last lines
// are written under it. Warnings, infos and the summary are written as in
// plain.
//
// A TTY is safe for concurrent use. Close stops the refresher and writes the
// final state; the caller must call it, after the last event. Output lines
// are stripped of control characters and escape sequences before they reach
// the terminal, and lines in the live block are cut to the terminal's width,
// so that the redraw can count the lines it must erase.
type TTY struct {
	w        io.Writer
	interval time.Duration
	now      func() time.Time
	// size returns the terminal's columns and rows, or zeros if unknown
	// (then lines are not cut and the block is not limited).
	size func() (cols, rows int)

	mu      sync.Mutex
	steps   stepTable
	running []*runningStep // in the order they started
	pending []string       // permanent lines not yet written
	drawn   int            // lines of the live block now on screen
	frame   int            // spinner position
	closed  bool
	err     error // first write error

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ Sink = (*TTY)(nil)

// runningStep is a step in the live block.
type runningStep struct {
	info *stepInfo
	// seen is when the TTY heard of the step, for its elapsed time when
	// the StepStart event has no Time.
	seen time.Time
	tail []tailLine
}

// tailLine is one kept output line, already sanitised.
type tailLine struct {
	offset, text string
}

const (
	// tailLines is how many output lines are kept per running step, and
	// shown under it.
	tailLines = 6
	// refresh is how often the live block is redrawn.
	refresh = 100 * time.Millisecond
)

var spinner = []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")

// NewTTY returns a TTY that writes to w, normally os.Stderr after
// IsTerminal(os.Stderr) said yes, and starts its refresher. If w is a
// terminal *os.File its size is read at every redraw, so a resized window
// is followed.
func NewTTY(w io.Writer) *TTY {
	size := func() (int, int) { return 0, 0 }
	if f, ok := w.(*os.File); ok && IsTerminal(f) {
		fd := f.Fd()
		size = func() (int, int) { return termSize(fd) }
	}
	return newTTY(w, refresh, time.Now, size)
}

func newTTY(w io.Writer, interval time.Duration, now func() time.Time, size func() (int, int)) *TTY {
	t := &TTY{
		w:        w,
		interval: interval,
		now:      now,
		size:     size,
		steps:    stepTable{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go t.loop()
	return t
}

func (t *TTY) loop() {
	defer close(t.done)
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.mu.Lock()
			t.frame++
			t.draw()
			t.mu.Unlock()
		}
	}
}

// Emit records e. Finished steps, warnings and the summary are written at
// the next redraw, or at once after Close.
func (t *TTY) Emit(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Kind {
	case StepStart:
		t.start(e)
	case Log:
		r := t.start(e)
		off := r.info.offset(e.Time)
		for l := range splitLines(e.Line) {
			r.tail = append(r.tail, tailLine{off, sanitize(l)})
		}
		if n := len(r.tail) - tailLines; n > 0 {
			r.tail = append(r.tail[:0], r.tail[n:]...)
		}
	case StepCached, StepDone, StepFailed:
		s := t.steps.update(e)
		r := t.finish(e.Step)
		t.pending = append(t.pending, sanitize(s.title()+" "+status(e)))
		if s.miss != nil {
			t.pending = append(t.pending, sanitize(missLine(s.miss)))
		}
		if e.Kind == StepFailed && r != nil {
			for _, l := range r.tail {
				t.pending = append(t.pending, logLine(e.Step, l.offset, l.text))
			}
		}
	case Warning, Info:
		t.pending = append(t.pending, sanitize(notice(e)))
	case Done:
		for _, l := range summaryLines(e.Summary) {
			t.pending = append(t.pending, sanitize(l))
		}
	}
	if t.closed {
		t.draw()
	}
}

// start returns e's step in the live block, adding it if needed.
func (t *TTY) start(e Event) *runningStep {
	s := t.steps.update(e)
	for _, r := range t.running {
		if r.info == s {
			return r
		}
	}
	r := &runningStep{info: s, seen: t.now()}
	t.running = append(t.running, r)
	return r
}

// finish takes step n out of the live block and returns it, or nil if it
// was not there.
func (t *TTY) finish(n int) *runningStep {
	for i, r := range t.running {
		if r.info.step == n {
			t.running = append(t.running[:i], t.running[i+1:]...)
			return r
		}
	}
	return nil
}

// Close stops the refresher, writes what is pending, and replaces the live
// block with one permanent line per step still running (a build that was
// interrupted). It returns the first error writing to w, if any. Close may
// be called more than once; events emitted after it are written at once.
func (t *TTY) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.done
		t.mu.Lock()
		defer t.mu.Unlock()
		now := t.now()
		for _, r := range t.running {
			t.pending = append(t.pending, sanitize(r.info.title()+" UNFINISHED "+HumanDuration(r.elapsed(now))))
		}
		t.running = nil
		t.closed = true
		t.draw()
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (r *runningStep) elapsed(now time.Time) time.Duration {
	start := r.info.start
	if start.IsZero() {
		start = r.seen
	}
	return max(now.Sub(start), 0)
}

// draw erases the live block, writes the pending permanent lines, and
// draws the block again (unless closed). The cursor is always left at the
// start of the line below the block, so the next draw knows where it is.
// It is called with t.mu held: a slow terminal holds up Emit, which is the
// price of writing each frame in one piece.
func (t *TTY) draw() {
	var b bytes.Buffer
	if t.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", t.drawn)
	}
	for _, l := range t.pending {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	t.pending = t.pending[:0]
	t.drawn = 0
	if !t.closed {
		cols, rows := t.size()
		for _, l := range t.block(cols, rows) {
			b.WriteString(l)
			b.WriteByte('\n')
			t.drawn++
		}
	}
	if b.Len() == 0 {
		return
	}
	if _, err := t.w.Write(b.Bytes()); err != nil && t.err == nil {
		t.err = err
	}
}

// block returns the lines of the live block for a terminal of cols×rows
// (zero: unknown). It keeps below rows-1 lines, so that cursor-up can
// always reach its first line: output lines go first, then steps, which are
// counted on a last line.
func (t *TTY) block(cols, rows int) []string {
	if len(t.running) == 0 {
		return nil
	}
	now := t.now()
	spin := string(spinner[t.frame%len(spinner)])
	var heads []string
	var lines []string
	for _, r := range t.running {
		h := spin + " " + sanitize(r.info.title()) + " " + HumanDuration(r.elapsed(now))
		heads = append(heads, h)
		lines = append(lines, h)
		for _, l := range r.tail {
			lines = append(lines, "    "+l.text)
		}
	}
	if limit := rows - 2; rows > 0 && len(lines) > limit {
		lines = heads
		if len(lines) > limit {
			if limit < 1 {
				return nil
			}
			more := len(lines) - (limit - 1)
			lines = append(lines[:limit-1:limit-1], fmt.Sprintf("… %d more running", more))
		}
	}
	if cols > 0 {
		for i, l := range lines {
			lines[i] = truncate(l, cols-1)
		}
	}
	return lines
}

// sanitize makes s safe to write to a terminal: what a carriage return
// would overwrite is dropped, escape sequences and control characters are
// removed, and tabs become spaces.
func sanitize(s string) string {
	s = strings.TrimRight(s, "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; {
		case c == '\t':
			b.WriteString("    ")
		case c == 0x1b:
			i = skipEscape(rs, i)
		case c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0):
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// skipEscape returns the index of the last rune of the escape sequence that
// starts at rs[i] (an ESC): CSI sequences up to their final byte, OSC, DCS
// and similar strings up to BEL or ST, and otherwise ESC plus one rune.
func skipEscape(rs []rune, i int) int {
	if i+1 >= len(rs) {
		return i
	}
	switch rs[i+1] {
	case '[':
		for j := i + 2; j < len(rs); j++ {
			if rs[j] >= 0x40 && rs[j] <= 0x7e {
				return j
			}
		}
		return len(rs) - 1
	case ']', 'P', '_', '^', 'X':
		for j := i + 2; j < len(rs); j++ {
			if rs[j] == 0x07 {
				return j
			}
			if rs[j] == 0x1b && j+1 < len(rs) && rs[j+1] == '\\' {
				return j + 1
			}
		}
		return len(rs) - 1
	}
	// ESC, any intermediate bytes (as in ESC ( B), then one final rune.
	j := i + 1
	for j < len(rs)-1 && rs[j] >= 0x20 && rs[j] <= 0x2f {
		j++
	}
	return j
}

// truncate cuts s to at most cols terminal columns, counting East Asian
// wide characters and emoji as two columns (after Markus Kuhn's wcwidth).
// Where it is unsure it counts two: cutting a line a little short is
// harmless, while a line that wraps breaks the redraw.
func truncate(s string, cols int) string {
	w := 0
	for i, c := range s {
		cw := 1
		if wide(c) {
			cw = 2
		}
		if w+cw > cols {
			return s[:i]
		}
		w += cw
	}
	return s
}

func wide(c rune) bool {
	return c >= 0x1100 && (c <= 0x115f || // Hangul Jamo
		c >= 0x2e80 && c <= 0xa4cf && c != 0x303f || // CJK … Yi
		c >= 0xac00 && c <= 0xd7a3 || // Hangul syllables
		c >= 0xf900 && c <= 0xfaff || // CJK compatibility ideographs
		c >= 0xfe30 && c <= 0xfe6f || // CJK compatibility forms
		c >= 0xff00 && c <= 0xff60 || // fullwidth forms
		c >= 0xffe0 && c <= 0xffe6 ||
		c >= 0x1f000 && c <= 0x1faff || // emoji and pictographs
		c >= 0x20000 && c <= 0x3fffd) // CJK extensions
}
