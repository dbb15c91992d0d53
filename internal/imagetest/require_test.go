package imagetest

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// fakeTB records what Require does to a test: Skipf and Fatalf end the
// goroutine, as the testing package's do.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestRequire(t *testing.T) {
	table := map[string]part{
		"here": {what: "the here binary", install: "apt-get install here-pkg", check: func() error { return nil }},
		"gone": {what: "the gone binary", install: "apt-get install gone-pkg", check: func() error { return errors.New("not on PATH") }},
		"lost": {what: "the lost binary", install: "apt-get install lost-pkg", check: func() error { return errors.New("not on PATH") }},
	}
	tests := []struct {
		name              string
		e2e               bool
		parts             []string
		wantSkip, wantErr []string // substrings of the skip or failure message
	}{
		{name: "present", parts: []string{"here"}},
		{name: "present under e2e", e2e: true, parts: []string{"here"}},
		{name: "none", e2e: true},
		{name: "missing skips", parts: []string{"here", "gone"},
			wantSkip: []string{`missing part "gone"`, "the gone binary", "not on PATH", "apt-get install gone-pkg", "set KILN_E2E=1"}},
		{name: "missing fails under e2e", e2e: true, parts: []string{"gone", "here"},
			wantErr: []string{`missing part "gone"`, "apt-get install gone-pkg", "KILN_E2E is set"}},
		{name: "every missing part is named", e2e: true, parts: []string{"gone", "lost"},
			wantErr: []string{`missing part "gone"`, `missing part "lost"`, "apt-get install lost-pkg"}},
		{name: "unknown part fails without e2e", parts: []string{"here", "nope"}, wantErr: []string{`unknown part "nope"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				require(f, tc.e2e, table, tc.parts)
			}()
			<-done
			for _, c := range []struct {
				what, got string
				want      []string
			}{{"skip", f.skipped, tc.wantSkip}, {"failure", f.failed, tc.wantErr}} {
				if len(c.want) == 0 && c.got != "" {
					t.Errorf("unexpected %s: %s", c.what, c.got)
				}
				if len(c.want) > 0 && c.got == "" {
					t.Errorf("no %s, want one saying %q", c.what, c.want)
				}
				for _, w := range c.want {
					if c.got != "" && !strings.Contains(c.got, w) {
						t.Errorf("%s message %q lacks %q", c.what, c.got, w)
					}
				}
			}
		})
	}
}

// TestDepsInstallEveryPart: every Debian package of the part table is in
// the list `.ci/deps test` installs, so that CI (KILN_E2E set) never fails
// for a part nobody installs.
func TestDepsInstallEveryPart(t *testing.T) {
	script, err := os.ReadFile("../../.ci/deps")
	if err != nil {
		t.Fatal(err)
	}
	installed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)(?:^\s*|\|\|\s*)pkgs\+?=\(([^)]*)\)`).FindAllStringSubmatch(string(script), -1) {
		for _, p := range strings.Fields(m[1]) {
			installed[p] = true
		}
	}
	if len(installed) == 0 {
		t.Fatalf("found no pkgs=(…) list in .ci/deps:\n%s", script)
	}
	for _, name := range slices.Sorted(maps.Keys(parts)) {
		if deb := parts[name].deb; deb != "" && !installed[deb] {
			t.Errorf("part %s comes from Debian package %s, which .ci/deps does not install", name, deb)
		}
	}
}

// TestEveryPartPresent: under KILN_E2E the host has every part of the
// table, so no test that requires one can skip.
func TestEveryPartPresent(t *testing.T) {
	Require(t, slices.Sorted(maps.Keys(parts))...)
}

func TestBinaryPart(t *testing.T) {
	if err := binary("kiln-no-such-binary", "kiln-pkg").check(); err == nil {
		t.Error("a binary that is not on PATH is present")
	}
	if err := binary("go", "golang").check(); err != nil {
		t.Errorf("go is missing from PATH while it runs this test: %v", err)
	}
}
