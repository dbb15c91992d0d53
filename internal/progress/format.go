package progress

import (
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"
)

// This file holds the line formats that the plain and tty renderers share,
// so that a finished step reads the same in a CI log and on a terminal.

// stepInfo is what a renderer remembers about a step between its events:
// only the first event of a step need carry its label and text.
type stepInfo struct {
	step  int
	total int
	stage string
	text  string
	// start is the StepStart event's Time, zero if unknown.
	start time.Time
	// announced is set once the step's title line has been written.
	announced bool
	// miss is why the step missed, if its StepStart said.
	miss *Miss
}

// stepTable maps step numbers to what is known about them.
type stepTable map[int]*stepInfo

// update records what e says about its step and returns the step's info.
func (t stepTable) update(e Event) *stepInfo {
	s := t[e.Step]
	if s == nil {
		s = &stepInfo{step: e.Step}
		t[e.Step] = s
	}
	if e.Total > 0 {
		s.total = e.Total
	}
	if e.Stage != "" {
		s.stage = e.Stage
	}
	if e.Text != "" {
		s.text = e.Text
	}
	if e.Kind == StepStart && !e.Time.IsZero() {
		s.start = e.Time
	}
	if e.Miss != nil {
		s.miss = e.Miss
	}
	return s
}

// prefix is how every line about step n begins.
func prefix(n int) string { return "#" + strconv.Itoa(n) }

// title is a step's first line: "#2 [build 2/5] RUN make".
func (s *stepInfo) title() string {
	var pos string
	switch {
	case s.step > 0 && s.total > 0:
		pos = fmt.Sprintf("%d/%d", s.step, s.total)
	case s.step > 0:
		pos = strconv.Itoa(s.step)
	}
	b := prefix(s.step)
	if label := strings.TrimSpace(s.stage + " " + pos); label != "" {
		b += " [" + label + "]"
	}
	if s.text != "" {
		b += " " + s.text
	}
	return b
}

// offset is the time of a log line since its step started, in seconds with
// milliseconds ("0.213"), or "" when either time is unknown.
func (s *stepInfo) offset(at time.Time) string {
	if s.start.IsZero() || at.IsZero() {
		return ""
	}
	d := max(at.Sub(s.start), 0)
	return fmt.Sprintf("%.3f", d.Seconds())
}

// logLine is one line of a step's output: "#2 0.213 compiling…".
func logLine(step int, offset, line string) string {
	b := prefix(step)
	if offset != "" {
		b += " " + offset
	}
	if line != "" {
		b += " " + line
	}
	return b
}

// splitLines yields the lines of a Log event's Line. Line should be one line
// without its newline; a trailing newline is forgiven, and a Line that holds
// several lines is shown as several, each with its prefix.
func splitLines(s string) iter.Seq[string] {
	return strings.SplitSeq(strings.TrimSuffix(s, "\n"), "\n")
}

// status is the word a finished step ends with: "CACHED (local state)",
// "DONE 1.4s" or "ERROR: exit code 2".
func status(e Event) string {
	switch e.Kind {
	case StepCached:
		if e.Source != "" {
			return "CACHED (" + e.Source + ")"
		}
		return "CACHED"
	case StepDone:
		return "DONE " + HumanDuration(e.Duration)
	case StepFailed:
		var why []string
		code := ""
		if e.ExitCode != 0 {
			code = "exit code " + strconv.Itoa(e.ExitCode)
			why = append(why, code)
		}
		// A RUN's error is often just its exit code: say it once.
		if e.Err != "" && e.Err != code {
			why = append(why, e.Err)
		}
		if len(why) == 0 {
			return "ERROR"
		}
		return "ERROR: " + strings.Join(why, ": ")
	}
	return ""
}

// notice is a Warning or Info line: "WARNING: …", or "#3 WARNING: …" when it
// is about step 3.
func notice(e Event) string {
	word := "INFO"
	if e.Kind == Warning {
		word = "WARNING"
	}
	b := word + ": " + e.Message
	if e.Step > 0 {
		b = prefix(e.Step) + " " + b
	}
	return b
}

// summaryLines is the end-of-build account:
//
//	Summary: 9 steps, 6 cached, 3 ran in 12.3s
//	  cache type=local,src=/c: 6 hits, 1.2 MB read
//	  cache type=local,dest=/c: 3.4 MB written
//	  skipped export type=gha: ACTIONS_CACHE_MODE=read
//	  image digest sha256:…
func summaryLines(s *Summary) []string {
	if s == nil {
		return nil
	}
	lines := []string{fmt.Sprintf("Summary: %s, %d cached, %d ran in %s",
		plural(s.Steps, "step"), s.Cached, s.Ran, HumanDuration(s.Duration))}
	for _, c := range s.Caches {
		lines = append(lines, "  cache "+c.Source+": "+cacheLine(c))
	}
	for _, n := range s.Skipped {
		lines = append(lines, "  skipped "+n.Direction+" "+n.Source+": "+n.Reason)
	}
	if s.Digest != "" {
		lines = append(lines, "  image digest "+s.Digest)
	}
	return lines
}

// cacheLine says what one cache did: "6 hits, 1.2 MB read", "3.4 MB
// written", or both, and "14 requests" when they were counted.
func cacheLine(c CacheStat) string {
	if c.Skipped != "" {
		return "skipped: " + c.Skipped
	}
	in, out := directions(c)
	var parts []string
	if in {
		parts = append(parts, plural(c.Hits, "hit"))
		if c.BytesRead > 0 {
			parts = append(parts, HumanBytes(c.BytesRead)+" read")
		}
	}
	if out {
		parts = append(parts, HumanBytes(c.BytesWritten)+" written")
	}
	if c.Requests != nil {
		parts = append(parts, plural(int(*c.Requests), "request"))
	}
	return strings.Join(parts, ", ")
}

// directions says whether a cache was imported from, exported to, or both.
func directions(c CacheStat) (in, out bool) {
	switch c.Direction {
	case DirectionImport:
		return true, false
	case DirectionExport:
		return false, true
	case DirectionBoth:
		return true, true
	}
	in = c.Hits > 0 || c.BytesRead > 0
	out = c.BytesWritten > 0
	return in || !out, out // a cache that did nothing still shows "0 hits"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
