package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// event is one line of `go test -json`: cmd/test2json's TestEvent, plus
// ImportPath, which the build-output and build-fail events of go test
// (Go 1.24 and later) carry.
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
	ImportPath  string
}

// pkgState is what the summary keeps of a package until its result.
type pkgState struct {
	// output holds the output so far of each test without a result, and
	// the package's own under "".
	output map[string]*strings.Builder
	// running holds the tests that started and have no result yet.
	running                 map[string]bool
	passed, failed, skipped int
}

// skipped is one skipped test and what it said.
type skipped struct{ name, reason string }

// summary turns go test's events into the human output testsum prints.
// Its methods are called from one goroutine.
type summary struct {
	w   io.Writer
	e2e bool

	pkgs map[string]*pkgState
	// builds holds the compiler output per import path; shown holds the
	// import paths whose failed build has been printed.
	builds      map[string]*strings.Builder
	buildFailed map[string]bool
	shown       map[string]bool

	passed, failed, nskipped int
	failures                 []string
	skips                    []skipped
}

func newSummary(w io.Writer, e2e bool) *summary {
	return &summary{
		w: w, e2e: e2e,
		pkgs:        map[string]*pkgState{},
		builds:      map[string]*strings.Builder{},
		buildFailed: map[string]bool{},
		shown:       map[string]bool{},
	}
}

// read handles every event of r. A line that is not an event is printed as
// it is: go test's exit status tells whether it meant a failure.
func (s *summary) read(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var e event
			if json.Unmarshal(line, &e) == nil && e.Action != "" {
				s.event(e)
			} else {
				s.w.Write(line)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *summary) pkg(name string) *pkgState {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgState{output: map[string]*strings.Builder{}, running: map[string]bool{}}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) event(e event) {
	switch e.Action {
	case "build-output":
		b := s.builds[e.ImportPath]
		if b == nil {
			b = &strings.Builder{}
			s.builds[e.ImportPath] = b
		}
		b.WriteString(e.Output)
	case "build-fail":
		s.buildFailed[e.ImportPath] = true
	case "start":
		s.pkg(e.Package)
	case "run":
		s.pkg(e.Package).running[e.Test] = true
	case "output":
		p := s.pkg(e.Package)
		b := p.output[e.Test]
		if b == nil {
			b = &strings.Builder{}
			p.output[e.Test] = b
		}
		b.WriteString(e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.endPackage(e)
		} else {
			s.endTest(e.Package, e.Test, e.Action)
		}
	}
}

// endTest records a test's result and prints the output of a failed one.
func (s *summary) endTest(pkg, test, action string) {
	p := s.pkg(pkg)
	delete(p.running, test)
	var out string
	if b := p.output[test]; b != nil {
		out = b.String()
		delete(p.output, test)
	}
	switch action {
	case "pass":
		p.passed++
		s.passed++
	case "fail":
		p.failed++
		s.failed++
		s.failures = append(s.failures, pkg+" "+test)
		io.WriteString(s.w, out)
	case "skip":
		p.skipped++
		s.nskipped++
		s.skips = append(s.skips, skipped{pkg + " " + test, skipReason(out)})
	}
}

// skipReason is what a skipped test said, without go test's framing lines.
func skipReason(out string) string {
	var said []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		said = append(said, l)
	}
	return strings.Join(said, " ")
}

// endPackage records a package's result and prints its line. A test still
// running is one the test binary died under: it failed. A package that
// failed with no failed test (it did not build, TestMain failed, it
// panicked between tests) counts as one failure. The package's own output
// (and the compiler's) is printed when no test failed or a test died.
func (s *summary) endPackage(e event) {
	p := s.pkg(e.Package)
	died := len(p.running) > 0
	for _, test := range slices.Sorted(maps.Keys(p.running)) {
		s.endTest(e.Package, test, "fail")
	}
	status := "ok  "
	detail := fmt.Sprintf("%.2fs (%s)", e.Elapsed, counts(p.passed, p.failed, p.skipped))
	switch e.Action {
	case "skip":
		status, detail = "?   ", "[no test files]"
	case "fail":
		status = "FAIL"
		if e.FailedBuild != "" {
			s.showBuild(e.FailedBuild)
			detail = "[build failed: " + e.FailedBuild + "]"
		}
		if b := p.output[""]; b != nil && (p.failed == 0 || died) {
			io.WriteString(s.w, b.String())
		}
		if p.failed == 0 {
			p.failed++
			s.failed++
			why := " (failed outside any test)"
			if e.FailedBuild != "" {
				why = " [build failed]"
			}
			s.failures = append(s.failures, e.Package+why)
		}
	}
	fmt.Fprintf(s.w, "%s  %s  %s\n", status, e.Package, detail)
	delete(s.pkgs, e.Package)
}

// showBuild prints the compiler output of importPath once.
func (s *summary) showBuild(importPath string) {
	if s.shown[importPath] {
		return
	}
	s.shown[importPath] = true
	if b := s.builds[importPath]; b != nil {
		io.WriteString(s.w, b.String())
	}
}

// counts is a package line's tally; it never reads like the closing line.
func counts(passed, failed, skipped int) string {
	out := fmt.Sprintf("%d passed", passed)
	if failed > 0 {
		out += fmt.Sprintf(", %d failed", failed)
	}
	if skipped > 0 {
		out += fmt.Sprintf(", %d skipped", skipped)
	}
	return out
}

// finish closes the run given go test's exit status: packages without a
// result failed, and so did go test if it exited non-zero with nothing
// else failed. It prints the skipped and failed tests, then the closing
// line, and returns testsum's exit status.
func (s *summary) finish(status int) int {
	for _, name := range slices.Sorted(maps.Keys(s.pkgs)) {
		s.endPackage(event{Action: "fail", Package: name})
	}
	for _, ip := range slices.Sorted(maps.Keys(s.buildFailed)) {
		if !s.shown[ip] {
			s.showBuild(ip)
			s.failed++
			s.failures = append(s.failures, ip+" [build failed]")
		}
	}
	if status != 0 && s.failed == 0 {
		s.failed++
		s.failures = append(s.failures, fmt.Sprintf("go test (exit status %d)", status))
	}
	if len(s.skips) > 0 {
		fmt.Fprintln(s.w, "\nskipped:")
		for _, sk := range s.skips {
			fmt.Fprintf(s.w, "  %s: %s\n", sk.name, sk.reason)
		}
	}
	if len(s.failures) > 0 {
		fmt.Fprintln(s.w, "\nfailed:")
		for _, f := range s.failures {
			fmt.Fprintf(s.w, "  %s\n", f)
		}
	}
	bad := s.failed > 0
	if s.e2e && s.nskipped > 0 {
		fmt.Fprintf(s.w, "\nKILN_E2E is set, so every part a test needs is installed and no test may skip: %d did.\n", s.nskipped)
		bad = true
	}
	fmt.Fprintf(s.w, "%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.nskipped)
	if bad {
		return 1
	}
	return 0
}
