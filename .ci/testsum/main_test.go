package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// closing is the form of the one closing line.
var closing = regexp.MustCompile(`(?m)^\d+ passed, \d+ failed, \d+ skipped$`)

// checkClosing requires want as the last line of out, and no other line
// of that form.
func checkClosing(t *testing.T, out, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("closing line %q, want %q; output:\n%s", last, want, out)
	}
	if n := len(closing.FindAllString(out, -1)); n != 1 {
		t.Errorf("%d lines look like the closing line, want 1; output:\n%s", n, out)
	}
}

// stream encodes events as go test -json prints them.
func stream(t *testing.T, evs ...event) string {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		line, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func out(pkg, test, text string) event {
	return event{Action: "output", Package: pkg, Test: test, Output: text}
}

// testRun is the events of one test that ends with action and says said.
func testRun(pkg, test, action, said string) []event {
	evs := []event{{Action: "run", Package: pkg, Test: test}, out(pkg, test, "=== RUN   "+test+"\n")}
	if said != "" {
		evs = append(evs, out(pkg, test, "    x_test.go:9: "+said+"\n"))
	}
	return append(evs,
		out(pkg, test, "--- "+strings.ToUpper(action)+": "+test+" (0.00s)\n"),
		event{Action: action, Package: pkg, Test: test})
}

func pkgRun(pkg, action string, tests ...[]event) []event {
	evs := []event{{Action: "start", Package: pkg}}
	for _, t := range tests {
		evs = append(evs, t...)
	}
	return append(evs, event{Action: action, Package: pkg, Elapsed: 0.25})
}

func TestSummary(t *testing.T) {
	const p = "example.com/m/p"
	tests := []struct {
		name     string
		events   []event
		e2e      bool
		status   int // go test's exit status
		wantCode int
		want     []string // substrings of the output
		notWant  []string
		closing  string
	}{
		{
			name:    "pass",
			events:  pkgRun(p, "pass", testRun(p, "TestA", "pass", "quiet"), testRun(p, "TestB", "pass", "")),
			want:    []string{"ok    " + p + "  0.25s (2 passed)"},
			notWant: []string{"=== RUN", "quiet"},
			closing: "2 passed, 0 failed, 0 skipped",
		},
		{
			name:     "a failed test shows its output",
			events:   pkgRun(p, "fail", testRun(p, "TestA", "pass", "quiet"), testRun(p, "TestB", "fail", "got 1, want 2")),
			status:   1,
			wantCode: 1,
			want: []string{"=== RUN   TestB\n    x_test.go:9: got 1, want 2\n--- FAIL: TestB (0.00s)\n",
				"FAIL  " + p + "  0.25s (1 passed, 1 failed)", "failed:\n  " + p + " TestB\n"},
			notWant: []string{"quiet"},
			closing: "1 passed, 1 failed, 0 skipped",
		},
		{
			name:    "a skip is allowed without KILN_E2E",
			events:  pkgRun(p, "pass", testRun(p, "TestA", "skip", "needs root")),
			want:    []string{"ok    " + p + "  0.25s (0 passed, 1 skipped)", "skipped:\n  " + p + " TestA: x_test.go:9: needs root\n"},
			notWant: []string{"KILN_E2E is set"},
			closing: "0 passed, 0 failed, 1 skipped",
		},
		{
			name:     "a skip fails the run under KILN_E2E, naming the test",
			events:   pkgRun(p, "pass", testRun(p, "TestA", "pass", ""), testRun(p, "TestA/sub", "skip", "needs root")),
			e2e:      true,
			wantCode: 1,
			want:     []string{"  " + p + " TestA/sub: x_test.go:9: needs root\n", "KILN_E2E is set"},
			closing:  "1 passed, 0 failed, 1 skipped",
		},
		{
			name: "a build failure shows the compiler's output",
			events: append([]event{
				{Action: "build-output", ImportPath: p + " [" + p + ".test]", Output: "# " + p + "\n"},
				{Action: "build-output", ImportPath: p + " [" + p + ".test]", Output: "./p_test.go:5:2: undefined: y\n"},
				{Action: "build-fail", ImportPath: p + " [" + p + ".test]"},
				{Action: "start", Package: p},
				out(p, "", "FAIL\t"+p+" [build failed]\n"),
				{Action: "fail", Package: p, FailedBuild: p + " [" + p + ".test]"},
			}, pkgRun("example.com/m/q", "pass", testRun("example.com/m/q", "TestQ", "pass", ""))...),
			status:   1,
			wantCode: 1,
			want: []string{"./p_test.go:5:2: undefined: y\n", "FAIL  " + p + "  [build failed: " + p + " [" + p + ".test]]",
				"failed:\n  " + p + " [build failed]\n"},
			closing: "1 passed, 1 failed, 0 skipped",
		},
		{
			name: "a test the binary died under failed",
			events: []event{
				{Action: "start", Package: p}, {Action: "run", Package: p, Test: "TestA"},
				out(p, "TestA", "=== RUN   TestA\n"), out(p, "TestA", "panic: boom-3\n"),
				out(p, "", "FAIL\t"+p+"\t0.1s\n"), {Action: "fail", Package: p, Elapsed: 0.1},
			},
			status:   1,
			wantCode: 1,
			want:     []string{"panic: boom-3", "failed:\n  " + p + " TestA\n"},
			closing:  "0 passed, 1 failed, 0 skipped",
		},
		{
			name: "a package that fails without a failed test counts once",
			events: []event{
				{Action: "start", Package: p}, {Action: "run", Package: p, Test: "TestA"}, {Action: "pass", Package: p, Test: "TestA"},
				out(p, "", "TestMain: cleanup failed\n"), {Action: "fail", Package: p, Elapsed: 0.3},
			},
			status:   1,
			wantCode: 1,
			want:     []string{"TestMain: cleanup failed\n", "FAIL  " + p + "  0.30s (1 passed)", "failed:\n  " + p + " (failed outside any test)\n"},
			closing:  "1 passed, 1 failed, 0 skipped",
		},
		{
			name:    "no test files",
			events:  []event{{Action: "start", Package: p}, out(p, "", "?   \t"+p+"\t[no test files]\n"), {Action: "skip", Package: p}},
			want:    []string{"?     " + p + "  [no test files]"},
			notWant: []string{"skipped:"},
			closing: "0 passed, 0 failed, 0 skipped",
		},
		{
			name:     "go test failing alone fails the run",
			status:   2,
			wantCode: 1,
			want:     []string{"go test (exit status 2)"},
			closing:  "0 passed, 1 failed, 0 skipped",
		},
		{
			name:     "a package without a result failed",
			events:   []event{{Action: "start", Package: p}, {Action: "run", Package: p, Test: "TestA"}, {Action: "pass", Package: p, Test: "TestA"}},
			status:   1,
			wantCode: 1,
			want:     []string{"FAIL  " + p},
			closing:  "1 passed, 1 failed, 0 skipped",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			s := newSummary(&b, tc.e2e)
			if err := s.read(strings.NewReader(stream(t, tc.events...))); err != nil {
				t.Fatal(err)
			}
			code := s.finish(tc.status)
			got := b.String()
			if code != tc.wantCode {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tc.wantCode, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("output has %q:\n%s", w, got)
				}
			}
			checkClosing(t, got, tc.closing)
		})
	}
}

// TestGoTest runs the real go test on a module made for it: a package that
// passes with a skipped subtest, one with a failing test, one that does
// not build, one whose test binary dies, and one without tests.
func TestGoTest(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go \S+$`).Find(gomod)
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\n" + string(goLine) + "\n",
		"good/good_test.go": `package good

import "testing"

func TestOK(t *testing.T) {}

func TestSub(t *testing.T) {
	t.Run("a", func(t *testing.T) {})
	t.Run("b", func(t *testing.T) { t.Skip("needs-a-part-41") })
}
`,
		"bad/bad_test.go": `package bad

import "testing"

func TestOK(t *testing.T) { t.Log("quiet-17") }

func TestBad(t *testing.T) { t.Errorf("got boom-7, want calm") }
`,
		"broken/broken_test.go": `package broken

import "testing"

func TestX(t *testing.T) { undefinedThing93() }
`,
		"died/died_test.go": `package died

import (
	"os"
	"testing"
)

func TestDie(t *testing.T) { os.Exit(3) }
`,
		"notests/notests.go": "package notests\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var stdout, stderr bytes.Buffer
	code := run(dir, []string{"-count=1", "./..."}, false, &stdout, &stderr)
	got := stdout.String()
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, w := range []string{
		"got boom-7, want calm", "--- FAIL: TestBad",
		"undefinedThing93", "FAIL  example.com/m/broken  [build failed",
		"FAIL  example.com/m/died", "example.com/m/died TestDie",
		"ok    example.com/m/good", "example.com/m/good TestSub/b: good_test.go:9: needs-a-part-41",
		"?     example.com/m/notests  [no test files]",
		"FAIL  example.com/m/bad  ",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if strings.Contains(got, "quiet-17") {
		t.Errorf("output shows a passing test's log")
	}
	checkClosing(t, got, "4 passed, 3 failed, 1 skipped")
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", got, stderr.String())
	}

	for _, tc := range []struct {
		e2e  bool
		want int
	}{{false, 0}, {true, 1}} {
		var stdout bytes.Buffer
		if code := run(dir, []string{"-count=1", "./good"}, tc.e2e, &stdout, &stderr); code != tc.want {
			t.Errorf("./good with e2e %v: exit status %d, want %d\n%s", tc.e2e, code, tc.want, stdout.String())
		}
		checkClosing(t, stdout.String(), "3 passed, 0 failed, 1 skipped")
	}
}
