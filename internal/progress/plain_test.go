package progress

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestPlainGolden(t *testing.T) {
	t.Parallel()
	for _, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			p := NewPlain(&buf)
			for _, e := range s.events {
				p.Emit(e)
			}
			golden(t, "plain/"+s.name+".golden", buf.Bytes())
		})
	}
}

// TestPlainConcurrent emits from many goroutines at once and checks that
// every line arrives whole and in its step's order.
func TestPlainConcurrent(t *testing.T) {
	t.Parallel()
	const steps, logs = 16, 50
	var buf bytes.Buffer
	p := NewPlain(&buf)
	var wg sync.WaitGroup
	for n := 1; n <= steps; n++ {
		wg.Go(func() {
			p.Emit(Event{Kind: StepStart, Time: at(0), Step: n, Total: steps, Stage: "s", Text: "RUN x"})
			for i := range logs {
				p.Emit(Event{Kind: Log, Time: at(i), Step: n, Line: fmt.Sprintf("line %d", i)})
			}
			p.Emit(Event{Kind: StepDone, Step: n})
		})
	}
	wg.Wait()

	re := regexp.MustCompile(`^#(\d+) (\[s \d+/16\] RUN x|\d\.\d{3} line (\d+)|DONE 0\.0s)$`)
	next := map[string]int{} // step → index of the next log line expected
	lines := 0
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		lines++
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("line %q is not a whole plain line", sc.Text())
		}
		if m[3] != "" {
			if want := fmt.Sprint(next[m[1]]); m[3] != want {
				t.Errorf("step %s: got log line %s, want %s", m[1], m[3], want)
			}
			next[m[1]]++
		}
	}
	if want := steps * (logs + 2); lines != want {
		t.Errorf("got %d lines, want %d", lines, want)
	}
}

func TestSummaryLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    CacheStat
		want string
	}{
		{"import", CacheStat{Source: "s", Hits: 6, BytesRead: 1_200_000, Direction: DirectionImport}, "6 hits, 1.2 MB read"},
		{"one lazy hit", CacheStat{Source: "s", Hits: 1, Direction: DirectionImport}, "1 hit"},
		{"export", CacheStat{Source: "s", BytesWritten: 3_400_000, Direction: DirectionExport}, "3.4 MB written"},
		{"export nothing new", CacheStat{Source: "s", Direction: DirectionExport}, "0 B written"},
		{"both", CacheStat{Source: "s", Hits: 2, BytesWritten: 10, Direction: DirectionBoth}, "2 hits, 10 B written"},
		{"inferred import", CacheStat{Source: "s", Hits: 3}, "3 hits"},
		{"inferred export", CacheStat{Source: "s", BytesWritten: 1000}, "1.0 kB written"},
		{"inferred both", CacheStat{Source: "s", BytesRead: 5, BytesWritten: 7}, "0 hits, 5 B read, 7 B written"},
		{"unused", CacheStat{Source: "s"}, "0 hits"},
		{"requests counted", CacheStat{Source: "s", Hits: 2, Direction: DirectionImport, Requests: ptr(int64(5))}, "2 hits, 5 requests"},
		{"no request made", CacheStat{Source: "s", Direction: DirectionExport, Requests: ptr(int64(0))}, "0 B written, 0 requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lines := summaryLines(&Summary{Caches: []CacheStat{tt.c}})
			if got, want := lines[1], "  cache s: "+tt.want; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	if got := summaryLines(nil); got != nil {
		t.Errorf("summaryLines(nil) = %q, want nil", got)
	}
	if got, want := strings.Join(summaryLines(&Summary{Steps: 1}), "\n"), "Summary: 1 step, 0 cached, 0 ran in 0.0s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
