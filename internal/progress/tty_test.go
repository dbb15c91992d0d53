package progress

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// screen plays out on an emulated terminal the little ANSI the TTY writes
// (cursor up, erase to end of screen, carriage return, newline) and returns
// the lines left on it. It fails the test on any other escape sequence.
func screen(t *testing.T, out string) []string {
	t.Helper()
	var lines [][]rune
	row, col := 0, 0
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case 0x1b:
			j := i + 2
			for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
				j++
			}
			if i+1 >= len(rs) || rs[i+1] != '[' || j >= len(rs) {
				t.Fatalf("unexpected escape at %d in %q", i, out)
			}
			n, _ := strconv.Atoi(string(rs[i+2 : j]))
			switch rs[j] {
			case 'A':
				row = max(row-n, 0)
			case 'J':
				if row < len(lines) {
					lines[row] = lines[row][:min(col, len(lines[row]))]
					lines = lines[:row+1]
				}
			default:
				t.Fatalf("unexpected escape %q in %q", string(rs[i:j+1]), out)
			}
			i = j
		case '\r':
			col = 0
		case '\n':
			row, col = row+1, 0
		default:
			for len(lines) <= row {
				lines = append(lines, nil)
			}
			if col < len(lines[row]) {
				lines[row][col] = c
			} else {
				lines[row] = append(lines[row], c)
			}
			col++
		}
	}
	var got []string
	for _, l := range lines {
		got = append(got, string(l))
	}
	// The cursor ends on an empty line below the output.
	if len(got) > 0 && got[len(got)-1] == "" {
		got = got[:len(got)-1]
	}
	return got
}

// clock is a settable time source, safe for the refresher goroutine.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// syncBuffer is a bytes.Buffer that the refresher and the test may use at
// once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// manualTTY returns a TTY whose refresher never fires on its own in a
// test; tick draws a frame instead.
func manualTTY(w *syncBuffer, c *clock, cols, rows int) *TTY {
	return newTTY(w, time.Hour, c.Now, func() (int, int) { return cols, rows })
}

func tick(t *TTY) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.frame++
	t.draw()
}

// TestTTYStreams renders every golden stream, drawing a frame after each
// event, and checks what is left on the screen after Close: each step's
// final line, the failed steps' output, the warnings and the summary, and
// nothing of the live block.
func TestTTYStreams(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"build": {
			"#1 [build 1/5] FROM busybox:latest@sha256:0123456789abcdef DONE 0.3s",
			"#2 [build 2/5] RUN make DONE 1.4s",
			"#3 [build 3/5] COPY . /src CACHED (local state)",
			"#4 [build 4/5] RUN make test ERROR: exit code 2",
			"#4 1.020 FAIL: TestX",
			"WARNING: cache type=gha could not be read: 503 Service Unavailable",
			"Summary: 9 steps, 6 cached, 3 ran in 12.3s",
			"  cache type=local,src=/c: 6 hits, 1.2 MB read",
			"  cache type=local,dest=/c: 3.4 MB written",
		},
		"parallel": {
			"INFO: using the copying snapshotter: overlayfs unavailable",
			"#2 [deps 2/6] COPY go.mod /src/ CACHED (type=registry,ref=r/cache)",
			"#2 WARNING: layer sha256:abc is missing from the cache: running the step",
			"#1 [deps 1/6] RUN apk add gcc DONE 2.0s",
			"#3 [assets 3/6] RUN npm ci DONE 2m5s",
			"#4 [final 4/6] COPY --from=deps /out / DONE 0.0s",
			"#5 [final 5/6] COPY missing.txt / ERROR: checksumming missing.txt: no such file in the build context",
			"Summary: 6 steps, 1 cached, 3 ran in 2m5s",
			"  cache local state: 0 hits",
			"  cache type=registry,ref=r/cache: 1 hit, 1.0 MB read, 5.0 GB written, 23 requests",
			"  cache type=inline: 0 B written",
			"  image digest sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
		},
		"misses": {
			"#1 [build 1/4] COPY go.mod /src/ CACHED (type=gha,scope=main)",
			"#2 [build 2/4] RUN make DONE 2.0s",
			"#2 MISS RUN make: build arg VERSION changed",
			"#3 [build 3/4] COPY src/ /app/ DONE 0.0s",
			"#3 MISS COPY src/ /app/: parent step 2 missed",
			"#4 [build 4/4] RUN make | tee <log> DONE 1.0s",
			"#4 MISS RUN make | tee <log>: parent step 3 missed",
			"Summary: 4 steps, 1 cached, 3 ran in 3.1s",
			"  cache type=gha,scope=main: 1 hit, 2.5 MB read, 7 requests",
			"  cache type=local,dest=/c|d: 4.0 MB written",
			"  skipped export type=gha,scope=main: ACTIONS_CACHE_MODE=read: this job only reads the cache",
			"  image digest sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
		},
		"sparse": {
			"#1 [1] RUN true DONE 0.0s",
			"#2 [s 2] RUN false ERROR: exit code 1: running in runc",
			"#3 [3] CACHED",
			"#4 [4] ERROR",
			"Summary: 1 step, 0 cached, 1 ran in 1h1m0s",
			"#6 [6] UNFINISHED 0.0s",
		},
	}
	for _, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			var buf syncBuffer
			c := &clock{now: t0}
			tty := manualTTY(&buf, c, 0, 0)
			for _, e := range s.events {
				if !e.Time.IsZero() {
					c.Set(e.Time)
				}
				tty.Emit(e)
				tick(tty)
			}
			if err := tty.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			out := buf.String()
			if !strings.Contains(out, "\x1b[") && s.name != "sparse" {
				t.Errorf("output has no redraw; the live block was never drawn")
			}
			if diff := cmp.Diff(want[s.name], screen(t, out)); diff != "" {
				t.Errorf("final screen (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTTYLiveBlock checks one frame of the live block as the terminal
// shows it, with what is already final above it.
func TestTTYLiveBlock(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	c := &clock{now: t0}
	tty := manualTTY(&buf, c, 40, 24)
	defer tty.Close()
	tty.Emit(Event{Kind: StepCached, Time: at(0), Step: 1, Total: 3, Stage: "b", Text: "COPY . /src", Source: "local state"})
	tty.Emit(Event{Kind: StepStart, Time: at(0), Step: 2, Total: 3, Stage: "b", Text: "RUN make with a very long command line"})
	for i := range 8 {
		tty.Emit(Event{Kind: Log, Time: at(100 * i), Step: 2, Line: "line " + strconv.Itoa(i)})
	}
	tty.Emit(Event{Kind: Log, Time: at(900), Step: 2, Line: "\x1b[31mred\x1b[0m\tdownloading 10%\rdownloading 100%\r\n"})
	// A step whose start has no Time counts from when the TTY heard of it.
	tty.Emit(Event{Kind: StepStart, Step: 3, Total: 3, Stage: "c", Text: "RUN test"})
	c.Set(at(2500))
	tick(tty)
	want := []string{
		"#1 [b 1/3] COPY . /src CACHED (local state)", // permanent: not cut
		"⠙ #2 [b 2/3] RUN make with a very long ",     // cut to 39 columns
		"    line 3",
		"    line 4",
		"    line 5",
		"    line 6",
		"    line 7",
		"    downloading 100%",
		"⠙ #3 [c 3/3] RUN test 2.5s",
	}
	if diff := cmp.Diff(want, screen(t, buf.String())); diff != "" {
		t.Errorf("screen (-want +got):\n%s", diff)
	}
}

func TestTTYBlockLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps int
		logs  int
		rows  int
		want  []string
	}{
		{"fits", 2, 1, 10, []string{"S #1 [1] x", "    l", "S #2 [2] x", "    l"}},
		{"unknown size", 2, 1, 0, []string{"S #1 [1] x", "    l", "S #2 [2] x", "    l"}},
		{"logs dropped", 2, 1, 5, []string{"S #1 [1] x", "S #2 [2] x"}},
		{"steps counted", 4, 0, 5, []string{"S #1 [1] x", "S #2 [2] x", "… 2 more running"}},
		{"one more", 3, 0, 4, []string{"S #1 [1] x", "… 2 more running"}},
		{"no room", 3, 0, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tty := &TTY{now: func() time.Time { return t0 }, steps: stepTable{}}
			for n := 1; n <= tt.steps; n++ {
				r := tty.start(Event{Kind: StepStart, Step: n, Text: "x"})
				r.info.stage, r.seen = "", t0
				for range tt.logs {
					r.tail = append(r.tail, tailLine{text: "l"})
				}
			}
			var got []string
			for _, l := range tty.block(0, tt.rows) {
				l = strings.TrimSuffix(l, " 0.0s")
				got = append(got, strings.Replace(l, string(spinner[0]), "S", 1))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("block (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTTYRefresher lets the real ticker draw and checks that it does, and
// that Close leaves only the final state.
func TestTTYRefresher(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	c := &clock{now: t0}
	tty := newTTY(&buf, time.Millisecond, c.Now, func() (int, int) { return 0, 0 })
	tty.Emit(Event{Kind: StepStart, Time: t0, Step: 1, Total: 1, Text: "RUN sleep 1"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "#1 [1/1] RUN sleep 1 0.0s") {
		if time.Now().After(deadline) {
			t.Fatalf("the refresher drew nothing in 10s; output %q", buf.String())
		}
		time.Sleep(time.Millisecond)
	}
	c.Set(at(1000))
	tty.Emit(Event{Kind: StepDone, Time: at(1000), Step: 1, Duration: time.Second})
	if err := tty.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if diff := cmp.Diff([]string{"#1 [1/1] RUN sleep 1 DONE 1.0s"}, screen(t, buf.String())); diff != "" {
		t.Errorf("final screen (-want +got):\n%s", diff)
	}
}

func TestTTYClose(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	c := &clock{now: t0}
	tty := manualTTY(&buf, c, 0, 0)
	tty.Emit(Event{Kind: StepStart, Time: t0, Step: 1, Text: "RUN sleep 100"})
	tick(tty)
	c.Set(at(3200))
	if err := tty.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tty.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// After Close, events are written at once, with no live block.
	tty.Emit(Event{Kind: Warning, Message: "late"})
	want := []string{"#1 [1] RUN sleep 100 UNFINISHED 3.2s", "WARNING: late"}
	if diff := cmp.Diff(want, screen(t, buf.String())); diff != "" {
		t.Errorf("final screen (-want +got):\n%s", diff)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestTTYWriteError(t *testing.T) {
	t.Parallel()
	want := errors.New("broken pipe")
	tty := newTTY(errWriter{want}, time.Hour, time.Now, func() (int, int) { return 0, 0 })
	tty.Emit(Event{Kind: Info, Message: "x"})
	if err := tty.Close(); !errors.Is(err, want) {
		t.Errorf("Close = %v, want %v", err, want)
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"crlf\r", "crlf"},
		{"10%\r50%\r100%", "100%"},
		{"a\tb", "a    b"},
		{"\x1b[1;31mred\x1b[0m", "red"},
		{"\x1b]0;title\x07after", "after"},
		{"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"\x1b(Bcharset", "charset"},
		{"bell\x07 bs\x08 del\x7f c1\u009b", "bell bs del c1"},
		{"unterminated \x1b[12", "unterminated "},
		{"trailing esc \x1b", "trailing esc "},
		{"héllo ✓ 世界", "héllo ✓ 世界"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		cols int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"héllo", 2, "hé"},
		{"世界x", 3, "世"},
		{"世界x", 4, "世界"},
		{"⠙ braille is narrow", 3, "⠙ b"},
		{"🙂🙂", 3, "🙂"},
		{"한국", 2, "한"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.cols); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.cols, got, tt.want)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	tests := []struct {
		name string
		f    *os.File
		want bool
	}{
		{"nil", nil, false},
		{"regular file", f, false},
		{"pipe", w, false},
	}
	// A pseudo-terminal's master side is a terminal, where the kernel
	// offers one.
	if ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err == nil {
		defer ptmx.Close()
		tests = append(tests, struct {
			name string
			f    *os.File
			want bool
		}{"pty", ptmx, true})
	}
	for _, tt := range tests {
		if got := IsTerminal(tt.f); got != tt.want {
			t.Errorf("%s: IsTerminal = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestTTYConcurrent emits from many goroutines while the refresher draws;
// under -race it checks the locking, and the final screen holds every step.
func TestTTYConcurrent(t *testing.T) {
	t.Parallel()
	const steps = 8
	var buf syncBuffer
	tty := newTTY(&buf, time.Millisecond, time.Now, func() (int, int) { return 80, 10 })
	var wg sync.WaitGroup
	for n := 1; n <= steps; n++ {
		wg.Go(func() {
			tty.Emit(Event{Kind: StepStart, Time: time.Now(), Step: n, Total: steps, Text: "RUN x"})
			for i := range 100 {
				tty.Emit(Event{Kind: Log, Time: time.Now(), Step: n, Line: strconv.Itoa(i)})
				if i%20 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			tty.Emit(Event{Kind: StepDone, Step: n, Duration: time.Second})
		})
	}
	wg.Wait()
	tty.Emit(Event{Kind: Done, Summary: &Summary{Steps: steps, Ran: steps}})
	if err := tty.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := screen(t, buf.String())
	if len(got) != steps+1 {
		t.Fatalf("final screen has %d lines, want %d:\n%s", len(got), steps+1, strings.Join(got, "\n"))
	}
	for n := 1; n <= steps; n++ {
		want := "#" + strconv.Itoa(n) + " [" + strconv.Itoa(n) + "/8] RUN x DONE 1.0s"
		found := false
		for _, l := range got {
			found = found || l == want
		}
		if !found {
			t.Errorf("final screen lacks %q", want)
		}
	}
	if want := "Summary: 8 steps, 0 cached, 8 ran in 0.0s"; got[steps] != want {
		t.Errorf("last line %q, want %q", got[steps], want)
	}
}
