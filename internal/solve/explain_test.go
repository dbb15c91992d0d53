package solve

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
)

// explainStages builds a stage from the context, then copies its output.
const explainStages = `FROM scratch AS tools
COPY busybox /bin/busybox
` + installBusybox + `

FROM tools AS builder
COPY app/ /src/
RUN tr a-z A-Z < /src/app.txt > /out.txt

FROM tools
COPY --from=builder /out.txt /srv/out.txt
RUN cat /srv/out.txt /srv/out.txt > /srv/twice.txt
`

// misses returns, per step text, the miss explanation of its StepStart.
func (b *build) misses() map[string]progress.Miss {
	out := map[string]progress.Miss{}
	for _, e := range b.events.Events() {
		if e.Kind == progress.StepStart && e.Miss != nil {
			out[e.Text] = *e.Miss
		}
	}
	return out
}

// TestExplainAcrossMachines: a fresh state dir that imports another
// machine's cache, as a manifest that went through its JSON form, names
// the files that changed against the imported records, for a context COPY
// and for a COPY --from a stage whose output changed; the steps after them
// miss because they did.
func TestExplainAcrossMachines(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"app/app.txt": "hello\n", "app/other.txt": "same\n"})
	cold, _ := newEnv(t).solveOnce(ctxDir, explainStages, Options{})
	b, err := json.Marshal(cache.NewManifest(cold.Records(cache.ModeMax)))
	if err != nil {
		t.Fatal(err)
	}
	var m cache.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	const name = "type=test,src=other-machine"
	writeFile(t, filepath.Join(ctxDir, "app/app.txt"), "hello again\n")
	_, warm := newEnv(t).solveOnce(ctxDir, explainStages, Options{Imports: []Import{{Name: name, Manifest: &m, Fetcher: cold.Fetcher()}}})

	got := warm.misses()
	want := map[string]progress.Miss{
		"COPY app/ /src/": {Reason: progress.ReasonInputs, Cause: "COPY app/ /src/: 1 file changed: app/app.txt",
			Inputs: []string{"content"}, Files: []string{"app/app.txt"}, FilesChanged: 1, Against: name},
		"RUN tr a-z A-Z < /src/app.txt > /out.txt": {Reason: progress.ReasonParent,
			Cause: "RUN tr a-z A-Z < /src/app.txt > /out.txt: parent step 3 missed", ParentStep: 3},
		copyFromBuilder: {Reason: progress.ReasonInputs, Cause: copyFromBuilder + ": 1 file changed: out.txt",
			Inputs: []string{"content"}, Files: []string{"out.txt"}, FilesChanged: 1, Against: name},
		runAfterCopy: {Reason: progress.ReasonParent, Cause: runAfterCopy + ": parent step 5 missed", ParentStep: 5},
	}
	for text := range got {
		m := got[text]
		m.Step, m.Stage, m.Text = 0, "", ""
		got[text] = m
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("misses (-want +got):\n%s", diff)
	}
}

// TestExplainConfig: a RUN whose ENV, WORKDIR or USER changed names the
// change and never a value.
func TestExplainConfig(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "a\n"})
	df := func(mode, dir, user, file string) string {
		// USER before WORKDIR: the directory is the user's, as BuildKit
		// makes it, so the RUN may write there.
		return "FROM scratch\nCOPY busybox /bin/busybox\n" + installBusybox + "\nENV MODE=" + mode +
			"\nCOPY [\"" + file + "\", \"/f\"]\nUSER " + user + "\nWORKDIR " + dir + "\nRUN cat /f > out\n"
	}
	e := newEnv(t)
	e.solveOnce(ctxDir, df("value-one", "/w", "0", "a.txt"), Options{})
	writeFile(t, filepath.Join(ctxDir, "b.txt"), "b\n")
	for _, tc := range []struct {
		name, df, step, want string
	}{
		{"env", df("value-two", "/w", "0", "a.txt"), "RUN cat /f > out", "RUN cat /f > out: env MODE changed"},
		{"workdir and user", df("value-two", "/w2", "1", "a.txt"), "RUN cat /f > out", "RUN cat /f > out: USER changed, WORKDIR changed"},
		{"instruction", df("value-two", "/w2", "1", "b.txt"), `COPY ["b.txt", "/f"]`, `COPY: instruction changed`},
	} {
		_, b := e.solveOnce(ctxDir, tc.df, Options{})
		got := b.misses()
		m, ok := got[tc.step]
		if !ok {
			t.Errorf("%s: %q did not miss (misses: %v)", tc.name, tc.step, got)
			continue
		}
		if m.Cause != tc.want {
			t.Errorf("%s: cause %q, want %q", tc.name, m.Cause, tc.want)
		}
		for _, m := range got {
			for _, v := range []string{"value-one", "value-two", "\n"} {
				if strings.Contains(m.Cause, v) || strings.Contains(strings.Join(m.Files, " "), v) {
					t.Errorf("%s: cause %q (files %q) holds %q", tc.name, m.Cause, m.Files, v)
				}
			}
		}
	}
}

// TestFilesChange: the one-line cause names two paths and counts the rest;
// a path with a line break is quoted, so the cause stays one line.
func TestFilesChange(t *testing.T) {
	t.Parallel()
	sums := func(digest string, paths ...string) []cache.FileSum {
		var out []cache.FileSum
		for _, p := range paths {
			out = append(out, cache.FileSum{Path: p, Digest: digest})
		}
		return out
	}
	tests := []struct {
		name      string
		old, cur  []cache.FileSum
		want      string
		wantFiles []string
	}{
		{"one", sums("0", "a"), sums("1", "a"), "1 file changed: a", []string{"a"}},
		{"three", sums("0", "a", "b", "c"), sums("1", "a", "b", "c"), "3 files changed: a, b, +1", []string{"a", "b", "c"}},
		{"newline", sums("0", "x\n::error::y"), sums("1", "x\n::error::y"), `1 file changed: "x\n::error::y"`, []string{`"x\n::error::y"`}},
		{"no list", nil, sums("1", "a"), "source files changed", nil},
	}
	for _, tt := range tests {
		var m progress.Miss
		if got := filesChange(&m, tt.old, tt.cur); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		if diff := cmp.Diff(tt.wantFiles, m.Files); diff != "" {
			t.Errorf("%s: Files (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestExplainBaseAcrossMachines: a fresh state dir importing a cache made
// on another base image digest finds the record by its position and names
// both digests.
func TestExplainBaseAcrossMachines(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "a\n"})
	imgA := imagetest.Busybox(t)
	imgB, err := mutate.AppendLayers(imgA, imagetest.RandomLayer(t, 7, 100))
	if err != nil {
		t.Fatal(err)
	}
	byDigest := map[v1.Hash]v1.Image{}
	resolveTo := func(img v1.Image) func(context.Context, string) (*plan.Image, error) {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		byDigest[d] = img
		return func(_ context.Context, ref string) (*plan.Image, error) {
			return &plan.Image{Ref: ref, Digest: d, Config: cf}, nil
		}
	}
	const df = "FROM example.invalid/base:1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n"
	gA, gB := planDockerfile(t, df, resolveTo(imgA)), planDockerfile(t, df, resolveTo(imgB))
	image := func(_ context.Context, pi *plan.Image) (v1.Image, error) { return byDigest[pi.Digest], nil }

	cold := newEnv(t).newBuildPlan(ctxDir, gA, Options{Image: image}).solve(t)
	const name = "type=test,src=base-a"
	b := newEnv(t).newBuildPlan(ctxDir, gB, Options{Image: image,
		Imports: []Import{importOf(name, cold.Records(cache.ModeMax), cold.Fetcher())}})
	b.solve(t)
	dA, _ := imgA.Digest()
	dB, _ := imgB.Digest()
	m, ok := b.misses()["COPY a.txt /a.txt"]
	if !ok {
		t.Fatalf("COPY did not miss: %v", b.misses())
	}
	want := fmt.Sprintf("FROM: base image changed (%s → %s)", shortDigest(dA.String()), shortDigest(dB.String()))
	if m.Reason != progress.ReasonBase || m.Cause != want || m.Was != dA.String() || m.Now != dB.String() || m.Against != name {
		t.Errorf("got %+v, want reason base, cause %q, was %s, now %s, against %q", m, want, dA, dB, name)
	}
}

// TestExplainBasePerPlatform: in a cache holding both platforms' records
// of a step, an arm64 step whose base image changed is explained against
// the arm64 record, not the amd64 one at the same position: a step's
// identity includes its platform.
func TestExplainBasePerPlatform(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "a\n"})
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	byDigest := map[v1.Hash]v1.Image{}
	base := func(seed int64) (v1.Image, v1.Hash) {
		img, err := mutate.AppendLayers(imagetest.Busybox(t), imagetest.RandomLayer(t, seed, 100))
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		byDigest[d] = img
		return img, d
	}
	planFor := func(p v1.Platform, img v1.Image, d v1.Hash) *plan.Graph {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		g, err := dockerfile.Plan(context.Background(), []byte("FROM example.invalid/base:1\nCOPY a.txt /a.txt\n"), dockerfile.Options{
			Platform: p,
			ResolveImage: func(_ context.Context, ref string, _ v1.Platform) (*plan.Image, error) {
				return &plan.Image{Ref: ref, Digest: d, Config: cf, Platform: p}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	image := func(_ context.Context, pi *plan.Image) (v1.Image, error) { return byDigest[pi.Digest], nil }
	armOld, armOldD := base(1)
	amdOld, amdOldD := base(2)
	armNew, armNewD := base(3)
	e := newEnv(t)
	coldArm := e.newBuildPlan(ctxDir, planFor(arm64, armOld, armOldD), Options{Image: image}).solve(t)
	coldAmd := e.newBuildPlan(ctxDir, planFor(amd64, amdOld, amdOldD), Options{Image: image}).solve(t)
	const name = "type=test,src=two-platforms"
	// amd64's record first: among equals the first would be taken.
	recs := append(coldAmd.Records(cache.ModeMax), coldArm.Records(cache.ModeMax)...)
	b := newEnv(t).newBuildPlan(ctxDir, planFor(arm64, armNew, armNewD), Options{Image: image,
		Imports: []Import{importOf(name, recs, coldArm.Fetcher())}})
	b.solve(t)
	m, ok := b.misses()["COPY a.txt /a.txt"]
	if !ok {
		t.Fatalf("COPY did not miss: %v", b.misses())
	}
	if m.Reason != progress.ReasonBase || m.Was != armOldD.String() || m.Now != armNewD.String() {
		t.Errorf("got %+v, want reason base, was %s (arm64's old base, not amd64's %s), now %s", m, armOldD, amdOldD, armNewD)
	}
}
