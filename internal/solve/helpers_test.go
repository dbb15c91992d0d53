package solve

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/snapshot"
	"github.com/kiln-build/kiln/internal/source"
	"github.com/kiln-build/kiln/internal/store"
)

// testEpoch is the SourceDateEpoch of the reproducible builds: earlier than
// any file a test writes, so every timestamp is clamped to it.
var testEpoch = time.Unix(1_700_000_000, 0).UTC()

// installBusybox is the RUN that makes the busybox applets, as
// examples/demo/Dockerfile does.
const installBusybox = `RUN ["/bin/busybox", "--install", "-s", "/bin"]`

// writeContext makes a build context holding the host's busybox as
// "busybox" plus files (name → content), and returns its directory.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	imagetest.Require(t, "busybox")
	dir := t.TempDir()
	bb, err := os.ReadFile(imagetest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	return dir
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// env is one state dir: a store and its snapshotter, as build.Run opens
// them.
type env struct {
	t    *testing.T
	st   *store.Store
	snap *snapshot.Snapshotter
}

// newEnv opens a fresh state dir that is closed when the test ends.
func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	snap, err := snapshot.New(snapshot.Options{Root: st.SnapshotRoot()})
	if err != nil {
		t.Fatalf("snapshot.New: %v", err)
	}
	return &env{t: t, st: st, snap: snap}
}

// build is one solver over one context, with the events it emitted.
type build struct {
	s      *Solver
	events *progress.Recorder
	graph  *plan.Graph
}

// newBuild plans df and makes a solver for it on e with the context dir
// ctxDir, opened as build.Run opens it (owners ignored, checksum cache in
// the state dir). opts supplies everything but Store, Snapshotter,
// Context, ContextDir and Progress.
func (e *env) newBuild(ctxDir, df string, opts Options) *build {
	e.t.Helper()
	return e.newBuildPlan(ctxDir, planDockerfile(e.t, df, nil), opts)
}

func (e *env) newBuildPlan(ctxDir string, g *plan.Graph, opts Options) *build {
	e.t.Helper()
	tree, err := source.Open(ctxDir, source.Options{CacheFile: e.st.ContextCacheFile(ctxDir), IgnoreOwners: true})
	if err != nil {
		e.t.Fatalf("source.Open: %v", err)
	}
	e.t.Cleanup(func() { tree.Close() })
	rec := &progress.Recorder{}
	opts.Store, opts.Snapshotter, opts.Context, opts.ContextDir, opts.Progress = e.st, e.snap, tree, ctxDir, rec
	s, err := New(opts)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() {
		if err := s.Close(); err != nil {
			e.t.Errorf("closing the solver: %v", err)
		}
	})
	return &build{s: s, events: rec, graph: g}
}

// solve runs b's solve and fails the test on an error.
func (b *build) solve(t *testing.T) *Result {
	t.Helper()
	res, err := b.s.Solve(context.Background(), b.graph)
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	return res
}

// solveOnce plans df and solves it once on e.
func (e *env) solveOnce(ctxDir, df string, opts Options) (*Result, *build) {
	e.t.Helper()
	b := e.newBuild(ctxDir, df, opts)
	return b.solve(e.t), b
}

// planDockerfile plans df; resolve, when set, resolves FROM images.
func planDockerfile(t *testing.T, df string, resolve func(context.Context, string) (*plan.Image, error)) *plan.Graph {
	t.Helper()
	var r func(context.Context, string, v1.Platform) (*plan.Image, error)
	if resolve != nil {
		r = func(ctx context.Context, ref string, _ v1.Platform) (*plan.Image, error) { return resolve(ctx, ref) }
	}
	g, err := dockerfile.Plan(context.Background(), []byte(df), dockerfile.Options{ResolveImage: r})
	if err != nil {
		t.Fatalf("dockerfile.Plan: %v", err)
	}
	return g
}

// stepsBy returns the texts of the steps that got an event of kind, in
// step order.
func (b *build) stepsBy(kind progress.Kind) []string {
	type ev struct {
		n    int
		text string
	}
	var evs []ev
	for _, e := range b.events.Events() {
		if e.Kind == kind {
			evs = append(evs, ev{e.Step, e.Text})
		}
	}
	slices.SortFunc(evs, func(a, b ev) int { return a.n - b.n })
	out := []string{}
	for _, e := range evs {
		out = append(out, e.text)
	}
	return out
}

// sources returns, per cached step text, where the hit came from.
func (b *build) sources() map[string]string {
	out := map[string]string{}
	for _, e := range b.events.Events() {
		if e.Kind == progress.StepCached {
			out[e.Text] = e.Source
		}
	}
	return out
}

// fsSteps returns the texts of the graph's filesystem steps, in order.
func fsSteps(g *plan.Graph) []string {
	out := []string{}
	for _, st := range g.Stages {
		for _, s := range st.Steps {
			if s.Kind != plan.KindConfig {
				out = append(out, s.Text)
			}
		}
	}
	return out
}

// layerDigests returns the digests of ls.
func layerDigests(t *testing.T, ls []v1.Layer) []v1.Hash {
	t.Helper()
	out := make([]v1.Hash, len(ls))
	for i, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatalf("layer %d: Digest: %v", i, err)
		}
		out[i] = d
	}
	return out
}

// importOf makes an Import of entries whose blobs f serves.
func importOf(name string, entries []cache.Record, f cache.Fetcher) Import {
	return Import{Name: name, Manifest: cache.NewManifest(entries), Fetcher: f}
}

// corruptFetcher serves f's blobs, except that bad's bytes come back with
// one byte flipped (same size, wrong digest), and gone's are not found.
func corruptFetcher(f cache.Fetcher, bad, gone v1.Hash) cache.Fetcher {
	return cache.FetcherFunc(func(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
		if desc.Digest == gone {
			return nil, cache.ErrNotFound
		}
		rc, err := f.Fetch(ctx, desc)
		if err != nil || desc.Digest != bad {
			return rc, err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			return nil, err
		}
		b[len(b)/2] ^= 0xff
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}
