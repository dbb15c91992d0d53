package progress

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// This file writes the Summary for GitHub Actions: the markdown of the job
// summary (the file GITHUB_STEP_SUMMARY names) and the same figures as a
// collapsible group of the job log, since a job summary cannot be read
// through GitHub's API.

// LogGroupTitle is the title of the log group WriteLogGroup writes.
const LogGroupTitle = "kiln build summary"

// WriteMarkdown appends s to w as the markdown of a GitHub job summary:
// the image's references and digest, for a failed build the step that
// failed with kiln's last line and its last output, the steps cached out
// of the total,
// per cache source its hits, bytes and requests, every skipped import or
// export and why, the slowest steps, and the table of misses with their
// causes. Every text that comes from the build (instructions, paths, cache
// names) is escaped, so that it can neither break the tables nor inject
// markup.
func WriteMarkdown(w io.Writer, s *Summary) error {
	if s == nil {
		return nil
	}
	var b strings.Builder
	b.WriteString("## kiln build summary\n\n")
	b.WriteString("| | |\n|---|---|\n")
	if len(s.Images) > 0 {
		var refs []string
		for _, r := range s.Images {
			refs = append(refs, code(r))
		}
		fmt.Fprintf(&b, "| Image | %s |\n", strings.Join(refs, "<br>"))
	}
	if s.Digest != "" {
		fmt.Fprintf(&b, "| Digest | %s |\n", code(s.Digest))
	}
	if f := s.Failure; f != nil {
		where := ""
		if f.Step > 0 {
			where = fmt.Sprintf(" at step #%d", f.Step)
		}
		fmt.Fprintf(&b, "| Result | **failed**%s |\n", where)
	}
	fmt.Fprintf(&b, "| Steps cached | %s |\n", cachedShare(s))
	fmt.Fprintf(&b, "| Duration | %s |\n", HumanDuration(s.Duration))

	writeFailure(&b, s.Failure)
	if rows := cacheRows(s); len(rows) > 0 {
		b.WriteString("\n### Cache\n\n| Source | Direction | Hits | Read | Written | Requests |\n|---|---|---:|---:|---:|---:|\n")
		uncounted := false
		for _, r := range rows {
			uncounted = uncounted || r[len(r)-1] == noRequests
			fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
		}
		if uncounted {
			b.WriteString("\n" + noRequestsNote + "\n")
		}
	}
	if len(s.Skipped) > 0 {
		b.WriteString("\n### Skipped\n\n")
		for _, n := range s.Skipped {
			fmt.Fprintf(&b, "- %s %s: %s\n", n.Direction, code(n.Source), cell(n.Reason))
		}
	}
	if len(s.Slowest) > 0 {
		b.WriteString("\n### Slowest steps\n\n| Step | Instruction | Time |\n|---|---|---:|\n")
		for _, st := range s.Slowest {
			fmt.Fprintf(&b, "| #%d | %s | %s |\n", st.Step, code(stageText(st.Stage, st.Text)), HumanDuration(st.Duration))
		}
	}
	if len(s.Misses) > 0 {
		b.WriteString("\n### Cache misses\n\n| Step | Cause | Compared with |\n|---|---|---|\n")
		for _, m := range s.Misses {
			against := "–"
			if m.Against != "" {
				against = code(m.Against)
			}
			fmt.Fprintf(&b, "| #%d | %s | %s |\n", m.Step, cell(m.Cause), against)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFailure writes the section of a failed build: the step, kiln's
// last line and the step's last output lines, as code blocks (what a
// program printed is shown, never rendered).
func writeFailure(b *strings.Builder, f *Failure) {
	if f == nil {
		return
	}
	b.WriteString("\n### Failed\n\n")
	if f.Step > 0 {
		fmt.Fprintf(b, "Step #%d %s:\n\n", f.Step, code(stageText(f.Stage, f.Text)))
	}
	writeBlock(b, []string{f.Message})
	if len(f.Tail) > 0 {
		b.WriteString("\nIts last output lines:\n\n")
		writeBlock(b, f.Tail)
	}
}

// writeBlock writes lines as a fenced code block whose fence is longer
// than any run of backticks in them, so no line can close it.
func writeBlock(b *strings.Builder, lines []string) {
	longest := 0
	for _, l := range lines {
		n := 0
		for _, r := range l {
			if r == '`' {
				n++
				longest = max(longest, n)
			} else {
				n = 0
			}
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	b.WriteString(fence + "text\n")
	for _, l := range lines {
		b.WriteString(flat(l) + "\n")
	}
	b.WriteString(fence + "\n")
}

// WriteLogGroup writes the figures of WriteMarkdown to w as a collapsible
// group of a GitHub Actions log ("::group::kiln build summary" …
// "::endgroup::"). No line inside it can start a workflow command: each is
// indented, and line breaks in build texts are replaced.
func WriteLogGroup(w io.Writer, s *Summary) error {
	if s == nil {
		return nil
	}
	lines := []string{"::group::" + LogGroupTitle}
	for _, l := range summaryLines(s) {
		lines = append(lines, " "+flat(l))
	}
	for _, r := range s.Images {
		lines = append(lines, "   image "+flat(r))
	}
	for _, st := range s.Slowest {
		lines = append(lines, fmt.Sprintf("   slowest #%d %s %s", st.Step, flat(stageText(st.Stage, st.Text)), HumanDuration(st.Duration)))
	}
	for _, m := range s.Misses {
		lines = append(lines, fmt.Sprintf("   miss #%d %s", m.Step, flat(m.Cause)))
	}
	if f := s.Failure; f != nil {
		lines = append(lines, fmt.Sprintf("   failed #%d %s", f.Step, flat(f.Message)))
	}
	lines = append(lines, "::endgroup::")
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

// cachedShare is "6 of 9 (67%)".
func cachedShare(s *Summary) string {
	if s.Steps == 0 {
		return "0 of 0"
	}
	return fmt.Sprintf("%d of %d (%d%%)", s.Cached, s.Steps, (s.Cached*100+s.Steps/2)/s.Steps)
}

// noRequests is the Requests cell of a cache that makes no HTTP requests
// of its own (CacheStat.Requests nil), told apart from a count of 0 by
// noRequestsNote under the table.
const (
	noRequests     = "–¹"
	noRequestsNote = "¹ makes no HTTP requests of its own: the local state dir, a `type=local` directory, or `type=inline` (the image's own config, pushed with it)"
)

// cacheRows are the rows of the cache table: the local state dir (the
// hits no imported cache gave), then every cache source.
func cacheRows(s *Summary) [][]string {
	var rows [][]string
	local := s.Cached
	for _, c := range s.Caches {
		local -= c.Hits
	}
	if local > 0 {
		rows = append(rows, []string{"local state", DirectionImport, strconv.Itoa(local), "–", "–", noRequests})
	}
	for _, c := range s.Caches {
		in, out := directions(c)
		dir := DirectionImport
		switch {
		case in && out:
			dir = DirectionBoth
		case out:
			dir = DirectionExport
		}
		hits, read, written, reqs := "–", "–", "–", noRequests
		if in {
			hits, read = strconv.Itoa(c.Hits), HumanBytes(c.BytesRead)
		}
		if out {
			written = HumanBytes(c.BytesWritten)
		}
		if c.Requests != nil {
			reqs = strconv.FormatInt(*c.Requests, 10)
		}
		rows = append(rows, []string{code(c.Source), dir, hits, read, written, reqs})
	}
	return rows
}

func stageText(stage, text string) string {
	if stage == "" {
		return text
	}
	return "[" + stage + "] " + text
}

// flat replaces line breaks and other control characters with spaces.
func flat(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// cell escapes s for a markdown table cell or list item: no line breaks,
// no column breaks, no HTML, no emphasis or links.
func cell(s string) string {
	var b strings.Builder
	for _, r := range flat(s) {
		switch r {
		case '|', '\\', '`', '*', '_', '[', ']', '<', '>', '#', '~', '!':
			b.WriteByte('\\')
		case '&':
			b.WriteString("&amp;")
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// code is s as inline code in a table cell: backticks long enough for the
// ones s holds, and "|" escaped (GitHub splits cells before code spans).
func code(s string) string {
	s = strings.ReplaceAll(flat(s), "|", "\\|")
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}
