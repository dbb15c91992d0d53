package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// localOut builds ctxDir with a local output and returns the output dir.
func localOut(t *testing.T, state, ctxDir string, env []string, args ...string) (string, result) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	all := append([]string{"build", "--progress", "plain", "-o", "type=local,dest=" + out}, args...)
	r := mustKiln(t, state, env, append(all, ctxDir)...)
	return out, r
}

func readOut(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHeredocScriptIsKeyed: editing a #! heredoc script reruns the step.
func TestHeredocScriptIsKeyed(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	df := "FROM " + base + "\nRUN <<EOF\n#!/bin/sh\necho %s > /out\nEOF\n"
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.Replace(df, "%s", "one", 1)})
	out, _ := localOut(t, state, ctxDir, nil)
	if got := readOut(t, out, "out"); got != "one\n" {
		t.Fatalf("/out = %q", got)
	}
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.Replace(df, "%s", "two", 1)})
	out, r := localOut(t, state, ctxDir, nil)
	if got := readOut(t, out, "out"); got != "two\n" {
		t.Errorf("after editing the heredoc script /out = %q, want two (stale cache hit)\n%s", got, r.stderr)
	}
}

// TestBindMountFromRelativeContext: a context bind mount shows the
// context (never the runtime bundle), with .dockerignore applied, and an
// ignored file's change does not matter while a bound file's does.
func TestBindMountFromRelativeContext(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile":    "FROM " + base + "\nRUN --mount=type=bind,target=/src ls /src | sort > /list && cat /src/data.txt > /data\n",
		"data.txt":      "v1\n",
		"ignored.txt":   "secret-ish\n",
		".dockerignore": "ignored.txt\n",
	})
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(kilnBin, "build", "--progress", "plain", "-o", "type=local,dest="+out, ".")
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "KILN_STATE="+state)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kiln build . : %v\n%s", err, b)
	}
	list := readOut(t, out, "list")
	if strings.Contains(list, "config.json") || strings.Contains(list, "ignored.txt") || !strings.Contains(list, "data.txt") {
		t.Errorf("bind mount of the context lists %q; want data.txt and Dockerfile, no bundle files, no ignored files", list)
	}
	writeFiles(t, ctxDir, map[string]string{"data.txt": "v2\n"})
	out2, _ := localOut(t, state, ctxDir, nil)
	if got := readOut(t, out2, "data"); got != "v2\n" {
		t.Errorf("after changing a bound file /data = %q, want v2", got)
	}
}

// TestSourceDateEpochAfterPlainBuild: a SOURCE_DATE_EPOCH build on a state
// dir that already holds results built without it still gives the
// reproducible image.
func TestSourceDateEpochAfterPlainBuild(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	clean := mustKiln(t, filepath.Join(t.TempDir(), "s1"), env, "build", "--progress", "plain", ctxDir)
	state := filepath.Join(t.TempDir(), "s2")
	mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	again := mustKiln(t, state, env, "build", "--progress", "plain", ctxDir)
	if clean.stdout != again.stdout {
		t.Errorf("epoch build on a used state dir gave %s, a clean one %s", again.stdout, clean.stdout)
	}
}

// TestExportWithVanishedImportedBlob: an intermediate layer that vanished
// from the imported cache (another build's GC, registry GC) leaves its
// records out of the export with a warning; the build succeeds.
func TestExportWithVanishedImportedBlob(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "b")
	cacheBuild(t, ctxDir, nil, "--cache-to", "type=local,dest="+a+",mode=max")
	m := assertValidCacheDir(t, a)
	for _, r := range m.Records {
		if strings.HasPrefix(r.CreatedBy, `RUN echo "deps`) {
			l := r.Layers[len(r.Layers)-1]
			if err := os.Remove(filepath.Join(a, "blobs", "sha256", l.Digest.Hex)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, s := cacheBuild(t, ctxDir, nil, "--cache-from", "type=local,src="+a, "--cache-to", "type=local,dest="+b+",mode=max")
	if !strings.Contains(r.stderr, "exported without") {
		t.Errorf("no warning about the records left out\n%s", r.stderr)
	}
	if s.Summary.Cached != 5 {
		t.Errorf("cached %d, want 5 (the vanished layer was never needed)", s.Summary.Cached)
	}
	got := assertValidCacheDir(t, b)
	if len(got.Records) == 0 || len(got.Records) >= len(m.Records) {
		t.Errorf("export kept %d of %d records, want some but fewer", len(got.Records), len(m.Records))
	}
}
