package solve

import (
	"archive/tar"
	"fmt"
	"io"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/progress"
)

// TestTrailingWorkdir: a WORKDIR after the stage's last COPY makes its
// directory in a layer of its own, the directories it makes owned by the
// USER at that point, and a second solve finds both steps cached.
func TestTrailingWorkdir(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n"})
	df := "FROM scratch\nCOPY a.txt /\nWORKDIR /made/here\nUSER 1000:1001\nWORKDIR own\n"
	e := newEnv(t)
	res, b := e.solveOnce(ctxDir, df, Options{})
	want := []string{"COPY a.txt /", "WORKDIR /made/here", "WORKDIR own"}
	if got := b.stepsBy(progress.StepDone); !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
	if len(res.Layers) != 3 {
		t.Fatalf("%d layers, want 3", len(res.Layers))
	}
	wantLayers := [][]string{
		{"made/ 0:0 755", "made/here/ 0:0 755"},
		{"made/here/own/ 1000:1001 755"},
	}
	for i, want := range wantLayers {
		got := layerEntries(t, res.Layers[i+1])
		// The parent of a new directory is in its layer too (its mtime
		// changed); what the step made is what it owns.
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("layer %d: %q, want %q in it", i+1, got, w)
			}
		}
	}
	if res.Config.WorkingDir != "/made/here/own" {
		t.Errorf("WorkingDir = %q", res.Config.WorkingDir)
	}
	_, b2 := e.solveOnce(ctxDir, df, Options{})
	if got := b2.stepsBy(progress.StepCached); !slices.Equal(got, want) {
		t.Errorf("second solve cached %q, want %q", got, want)
	}
}

// TestWorkdirBeforeCopy: the COPY after WORKDIRs makes their directories
// first, in its own layer, each owned by the USER at its WORKDIR (as
// BuildKit's WORKDIR layers hold them); the WORKDIRs run nothing.
func TestWorkdirBeforeCopy(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n"})
	df := "FROM scratch\nWORKDIR /w\nUSER 1000:1001\nWORKDIR sub\nCOPY a.txt .\n"
	e := newEnv(t)
	res, b := e.solveOnce(ctxDir, df, Options{})
	if got, want := b.stepsBy(progress.StepDone), []string{"COPY a.txt ."}; !slices.Equal(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
	if len(res.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(res.Layers))
	}
	got := layerEntries(t, res.Layers[0])
	want := []string{"w/ 0:0 755", "w/sub/ 1000:1001 755", "w/sub/a.txt 0:0 644"}
	if !slices.Equal(got, want) {
		t.Errorf("layer %q, want %q", got, want)
	}
}

// layerEntries lists a layer's entries as "NAME UID:GID MODE".
func layerEntries(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d:%d %o", h.Name, h.Uid, h.Gid, h.Mode&0o7777))
	}
}
