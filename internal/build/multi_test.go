package build

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/backends"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/remote"
)

// multiOpts is a two-platform build of ctxDir that pushes to tag and
// exports a registry cache to ref, in a new state dir.
func multiOpts(t *testing.T, ctxDir, tag, ref string, from bool) Options {
	t.Helper()
	client, err := remote.New(remote.Options{RetryMaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	table := backends.Table(cache.Deps{Remote: func() (*remote.Client, error) { return client, nil }})
	var exports []cache.Export
	if ref != "" {
		if exports, err = table.ParseExports([]string{"type=registry,mode=max,ref=" + ref}); err != nil {
			t.Fatal(err)
		}
	}
	var imports []cache.Import
	if from {
		if imports, err = table.ParseImports([]string{"type=registry,ref=" + ref}); err != nil {
			t.Fatal(err)
		}
	}
	var platforms []v1.Platform
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		pl, err := plan.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		platforms = append(platforms, pl)
	}
	return Options{ContextDir: ctxDir, StateDir: t.TempDir(), Tags: []string{tag}, Push: true, Remote: client,
		CacheTo: exports, CacheFrom: imports, Platforms: platforms,
		StepSummary: filepath.Join(t.TempDir(), "summary.md")}
}

// TestMultiPlatformPushAndCache: a two-platform build (no RUN, so no
// emulation) pushes its index and exports a registry cache to the same
// repository; a new state dir rebuilds from the cache with every step a
// hit and the same index. Run under -race, it checks the shared solver,
// the prefetch and the remote client's held state across platforms.
func TestMultiPlatformPushAndCache(t *testing.T) {
	reg := imagetest.Registry(t)
	ctxDir := t.TempDir()
	files := map[string]string{"Dockerfile": "FROM --platform=$BUILDPLATFORM scratch AS tools\nWORKDIR /t\nCOPY a.txt ./a\n" +
		"FROM scratch\nCOPY --from=tools /t/a /a\nCOPY b.txt /b\nWORKDIR /w\n", "a.txt": "a\n", "b.txt": "b\n"}
	for n, d := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag, ref := reg+"/app/multi:1", reg+"/app/multi:cache"
	ctx := context.Background()
	cold, err := Run(ctx, multiOpts(t, ctxDir, tag, ref, false))
	if err != nil {
		t.Fatal(err)
	}
	if cold.Index == nil || cold.Stats.Ran == 0 {
		t.Fatalf("cold build: index %v, stats %+v", cold.Index, cold.Stats)
	}
	warm, err := Run(ctx, multiOpts(t, ctxDir, tag, ref, true))
	if err != nil {
		t.Fatal(err)
	}
	if warm.Stats.Ran != 0 || warm.Stats.Cached != cold.Stats.Steps {
		t.Errorf("warm build stats %+v, want all %d steps cached", warm.Stats, cold.Stats.Steps)
	}
	if warm.Digest != cold.Digest {
		t.Errorf("warm index %s, cold %s", warm.Digest, cold.Digest)
	}
	// A failing step on one platform: the failure names it.
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(files["Dockerfile"]+"COPY missing /m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, multiOpts(t, ctxDir, tag, ref, true))
	if err == nil {
		t.Fatal("the build did not fail")
	}
	if res == nil || res.Summary == nil || res.Summary.Failure == nil || res.Summary.Failure.Step == 0 {
		t.Fatalf("failed build's result %+v", res)
	}
}

// TestMultiPlatformFailureNamesPlatform: a step that fails on one platform
// of two (a COPY of a file only the amd64 one has) fails the build with a
// line, a job summary and progress events that name linux/arm64: both
// platforms' steps have the same stage and text.
func TestMultiPlatformFailureNamesPlatform(t *testing.T) {
	ctxDir := t.TempDir()
	files := map[string]string{"Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY amd64.txt /a\nCOPY ${TARGETARCH}.txt /x\n", "amd64.txt": "a\n"}
	for n, d := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := multiOpts(t, ctxDir, "", "", false)
	opts.Push, opts.Tags, opts.CacheTo, opts.Remote = false, nil, nil, nil
	sink := &syncEvents{}
	opts.Progress = sink
	res, err := Run(context.Background(), opts)
	if err == nil {
		t.Fatal("the build did not fail")
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	if !strings.Contains(first, "linux/arm64") || strings.Contains(first, "linux/amd64") {
		t.Errorf("error line %q does not name linux/arm64 (alone)", first)
	}
	f := res.Summary.Failure
	if f == nil || f.Step == 0 || !strings.Contains(f.Stage, "linux/arm64") {
		t.Fatalf("summary failure %+v, want its stage to name linux/arm64", f)
	}
	md, rerr := os.ReadFile(opts.StepSummary)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !strings.Contains(string(md), "`[linux/arm64 stage-0] COPY ${TARGETARCH}.txt /x`") {
		t.Errorf("job summary does not name the platform of the failed step:\n%s", md)
	}
	stages := map[int]string{}
	for _, e := range sink.list() {
		if e.Step > 0 && e.Stage != "" {
			stages[e.Step] = e.Stage
		}
	}
	// Steps 1-3 (ARG, COPY, COPY) are amd64's, 4-6 arm64's.
	for n, st := range stages {
		want := "linux/amd64 stage-0"
		if n > 3 {
			want = "linux/arm64 stage-0"
		}
		if st != want {
			t.Errorf("events of step %d name stage %q, want %q", n, st, want)
		}
	}
	if len(stages) == 0 {
		t.Error("no step events")
	}
}

type syncEvents struct {
	mu     sync.Mutex
	events []progress.Event
}

func (s *syncEvents) Emit(e progress.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *syncEvents) list() []progress.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]progress.Event(nil), s.events...)
}

// TestMultiPlatformColdMisses: in a cold two-platform build, a step of one
// platform is not explained by the record the other platform's same step
// made moments before in the same build (another parent, another base):
// it has no earlier record. arm64's first COPY is of a large file, so that
// amd64's second step is recorded before arm64's runs.
func TestMultiPlatformColdMisses(t *testing.T) {
	ctxDir := t.TempDir()
	big := make([]byte, 24<<20)
	rand.New(rand.NewSource(1)).Read(big)
	files := map[string]string{"Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}.bin /x\nCOPY b.txt /b\n",
		"amd64.bin": "small\n", "arm64.bin": string(big), "b.txt": "b\n"}
	for n, d := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := multiOpts(t, ctxDir, "", "", false)
	opts.Push, opts.Tags, opts.Remote = false, nil, nil
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Summary.Misses {
		if m.Reason != progress.ReasonNew && m.Reason != progress.ReasonParent {
			t.Errorf("cold build: step %d (%s) missed with %q: %s, want no earlier record or its parent", m.Step, m.Stage, m.Reason, m.Cause)
		}
	}
	if len(res.Summary.Misses) != 4 {
		t.Errorf("%d misses, want 4: %+v", len(res.Summary.Misses), res.Summary.Misses)
	}
}
