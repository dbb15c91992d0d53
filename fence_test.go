package kiln

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kiln-build/kiln"

// imports lists, for every package of the module, the packages it imports
// directly.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// TestDependencyFences keeps the package graph as STYLE.md draws it.
func TestDependencyFences(t *testing.T) {
	all := imports(t)
	internal := module + "/internal/"
	for pkg, deps := range all {
		short := strings.TrimPrefix(pkg, internal)
		for _, d := range deps {
			// Only dockerfile imports BuildKit.
			if strings.HasPrefix(d, "github.com/moby/buildkit") && short != "dockerfile" {
				t.Errorf("%s imports %s: only internal/dockerfile may import BuildKit", pkg, d)
			}
			// plan, dockerfile and cache stay free of execution and the CLI.
			switch short {
			case "plan", "dockerfile", "cache":
				for _, bad := range []string{"exec", "snapshot", "cli", "solve", "build"} {
					if d == internal+bad {
						t.Errorf("%s imports %s", pkg, d)
					}
				}
			}
			// A cache backend imports only cache, its transport (remote,
			// transport for HTTP services, or atomicfile for a directory)
			// and ggcr.
			if strings.HasPrefix(short, "cache/") && short != "cache/backends" && short != "cache/cachetest" {
				if strings.HasPrefix(d, module) && d != internal+"cache" && d != internal+"remote" && d != internal+"transport" && d != internal+"atomicfile" {
					t.Errorf("cache backend %s imports %s", pkg, d)
				}
			}
			// transport is the bottom of the HTTP stack: the standard
			// library only.
			if short == "transport" && strings.Contains(d, ".") {
				t.Errorf("%s imports %s: transport uses the standard library only", pkg, d)
			}
		}
	}
	if len(all) < 10 {
		t.Fatalf("go list found only %d packages", len(all))
	}
}
