package cli

import (
	"strings"
	"testing"
	"time"
)

func TestReadHTTPBounds(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	b, err := readHTTPBounds(env(map[string]string{"KILN_HTTP_HEADER_TIMEOUT": "2s", "KILN_HTTP_IDLE_TIMEOUT": "1m30s"}))
	if err != nil || b.header != 2*time.Second || b.idle != 90*time.Second {
		t.Errorf("readHTTPBounds = %+v, %v; want 2s and 1m30s", b, err)
	}
	if b, err := readHTTPBounds(env(nil)); err != nil || b != (httpBounds{}) {
		t.Errorf("unset: %+v, %v; want zero (transport's defaults)", b, err)
	}
}

// TestHTTPBoundsUsage: a bad bound is a usage error (exit 2) on one line
// naming the variable, for build and login alike.
func TestHTTPBoundsUsage(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"KILN_HTTP_HEADER_TIMEOUT", "KILN_HTTP_IDLE_TIMEOUT"} {
		for _, bad := range []string{"30", "-1s", "0s", "soon"} {
			getenv := func(k string) string {
				if k == v {
					return bad
				}
				return ""
			}
			for _, args := range [][]string{{"build", dir}, {"login", "reg.example", "-u", "me", "--password-stdin"}} {
				code, _, stderr := run(t, getenv, args...)
				want := v + `="` + bad + `"`
				if code != 2 || !strings.Contains(stderr, want) || strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 {
					t.Errorf("%s=%s kiln %s: exit %d, stderr %q; want exit 2 and one line naming %s", v, bad, args[0], code, stderr, want)
				}
			}
		}
	}
}
