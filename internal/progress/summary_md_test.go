package progress

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

var codeSpan = regexp.MustCompile("(`+)[^`]*(`+)")

// TestMarkdownGolden writes the job summary and the log group of every
// golden stream's summary.
func TestMarkdownGolden(t *testing.T) {
	t.Parallel()
	for _, s := range streams {
		var sum *Summary
		for _, e := range s.events {
			if e.Summary != nil {
				sum = e.Summary
			}
		}
		if sum == nil {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			var md, group bytes.Buffer
			if err := WriteMarkdown(&md, sum); err != nil {
				t.Fatal(err)
			}
			golden(t, "markdown/"+s.name+".golden", md.Bytes())
			if err := WriteLogGroup(&group, sum); err != nil {
				t.Fatal(err)
			}
			golden(t, "loggroup/"+s.name+".golden", group.Bytes())
		})
	}
}

// TestMarkdownEscapes: texts from the build can break neither a table nor
// the log: no raw "|" or "<" in a cell, no line that starts a workflow
// command inside the group.
func TestMarkdownEscapes(t *testing.T) {
	t.Parallel()
	evil := "RUN echo a|b <img src=x>\n::error::injected"
	sum := &Summary{Steps: 1, Ran: 1,
		Misses:  []Miss{{Step: 1, Text: evil, Cause: evil + ": instruction changed"}},
		Slowest: []StepTime{{Step: 1, Text: evil}},
		Skipped: []Notice{{Source: "type=gha|x", Direction: DirectionExport, Reason: "a\nb"}},
	}
	var md, group bytes.Buffer
	if err := WriteMarkdown(&md, sum); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(md.String(), "\n") {
		if !strings.HasPrefix(l, "| #1") {
			continue
		}
		if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n != 4 {
			t.Errorf("row %q has %d column bars, want 4", l, n)
		}
		// Inside a code span "<" is shown as is; outside it must be escaped.
		if strings.Contains(strings.ReplaceAll(codeSpan.ReplaceAllString(l, ""), `\<`, ""), "<") {
			t.Errorf("row %q holds raw markup", l)
		}
	}
	if err := WriteLogGroup(&group, sum); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(group.String(), "\n"), "\n")
	for _, l := range lines[1 : len(lines)-1] {
		if strings.HasPrefix(l, "::") {
			t.Errorf("log line %q starts a workflow command", l)
		}
	}
	if lines[0] != "::group::kiln build summary" || lines[len(lines)-1] != "::endgroup::" {
		t.Errorf("group framed by %q … %q", lines[0], lines[len(lines)-1])
	}
}

// TestMarkdownFailedGolden: the summary of a failed build names the step,
// kiln's last line and the step's last output lines, in code blocks no
// output line can close; what ran before it is there as for any build.
func TestMarkdownFailedGolden(t *testing.T) {
	t.Parallel()
	sum := &Summary{
		Steps: 3, Cached: 1, Ran: 1, Duration: 4200 * time.Millisecond,
		Caches: []CacheStat{{Source: "type=registry,ref=r/cache", Hits: 1, BytesRead: 2048, Direction: DirectionImport, Requests: ptr(int64(6))}},
		Misses: []Miss{
			{Step: 2, Stage: "build", Text: "COPY src/ /src/", Cause: "COPY src/ /src/: 1 file changed: src/a.go", Against: "type=registry,ref=r/cache"},
			{Step: 3, Stage: "build", Text: "RUN make test", Cause: "RUN make test: parent step 2 missed"},
		},
		Slowest: []StepTime{{Step: 2, Stage: "build", Text: "COPY src/ /src/", Duration: 20 * time.Millisecond}},
		Failure: &Failure{Step: 3, Stage: "build", Text: "RUN make test",
			Message: "kiln: Dockerfile:7: RUN make test: exit code 2",
			Tail:    []string{"--- FAIL: TestX (0.00s)", "    x_test.go:9: got ```a```, want b", "FAIL"}},
	}
	var md, group bytes.Buffer
	if err := WriteMarkdown(&md, sum); err != nil {
		t.Fatal(err)
	}
	golden(t, "markdown/failed.golden", md.Bytes())
	if err := WriteLogGroup(&group, sum); err != nil {
		t.Fatal(err)
	}
	golden(t, "loggroup/failed.golden", group.Bytes())

	// Failed before any step (a Dockerfile error): the line, no step.
	md.Reset()
	if err := WriteMarkdown(&md, &Summary{Failure: &Failure{Message: "kiln: Dockerfile:2: unknown instruction: FROB"}}); err != nil {
		t.Fatal(err)
	}
	golden(t, "markdown/failed-early.golden", md.Bytes())
}
