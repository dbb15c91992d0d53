package progress

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
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
