package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/output"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/solve"
)

// targetPlatforms is the build's platforms: opts.Platforms normalized,
// each once, or the host's when there are none.
func targetPlatforms(opts Options) []v1.Platform {
	platforms := opts.Platforms
	if len(platforms) == 0 {
		platforms = []v1.Platform{plan.HostPlatform()}
	}
	// A platform named twice (linux/arm64 and linux/aarch64) is built once,
	// as buildx dedupes.
	seen := map[string]bool{}
	var uniq []v1.Platform
	for _, p := range platforms {
		p = plan.NormalizePlatform(p)
		if s := plan.FormatPlatform(p); !seen[s] {
			seen[s] = true
			uniq = append(uniq, p)
		}
	}
	platforms = uniq
	return platforms
}

// planPlatforms plans the Dockerfile once per target platform (the host's
// when opts.Platforms is empty), after checking that the outputs can hold
// that many platforms. Each graph is checked against the machine (runtime,
// emulation) before any step runs.
func planPlatforms(ctx context.Context, opts Options, df []byte, dfPath string, images *images, platforms []v1.Platform) ([]*plan.Graph, error) {
	if err := output.CheckPlatforms(opts.Outputs, len(platforms)); err != nil {
		return nil, usageError{err}
	}
	graphs := make([]*plan.Graph, 0, len(platforms))
	for _, p := range platforms {
		g, err := planBuild(ctx, opts, df, dfPath, images, p)
		if err != nil {
			return nil, err
		}
		graphs = append(graphs, g)
	}
	numberAcross(graphs)
	for _, n := range opts.NoCacheStages {
		if !slices.ContainsFunc(graphs[0].Stages, func(st *plan.Stage) bool { return strings.EqualFold(st.Name, n) }) {
			opts.Progress.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: fmt.Sprintf("--no-cache-filter %q: no stage of that name is built", n)})
		}
	}
	for _, a := range graphs[0].UnusedArgs {
		opts.Progress.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: fmt.Sprintf("build arg %q was given but is not used by the Dockerfile", a)})
	}
	return graphs, nil
}

// numberAcross renumbers the steps of several graphs so that a step
// number names one step of the whole build (progress.Event.Step's
// contract): the second platform's steps follow the first's, and each
// graph's Steps is the build's total ("[build 9/16]").
func numberAcross(graphs []*plan.Graph) {
	if len(graphs) < 2 {
		return
	}
	total := 0
	for _, g := range graphs {
		total += g.Steps
	}
	offset := 0
	for _, g := range graphs {
		for _, st := range g.Stages {
			for _, step := range st.Steps {
				step.Number += offset
			}
		}
		offset += g.Steps
		g.Steps = total
	}
}

// checkEmulation fails when a stage of g runs RUN steps for an
// architecture the host cannot run and binfmt_misc (in dir, "" for
// exec.BinfmtDir) has no handler with the F flag for it. kiln never
// registers one here: `kiln binfmt --install` does, when asked.
func checkEmulation(g *plan.Graph, dir string) error {
	if dir == "" {
		dir = exec.BinfmtDir
	}
	checked := map[string]bool{}
	for _, st := range g.Stages {
		arch := st.Platform.Architecture
		if arch == "" || checked[arch] || exec.Native(runtime.GOARCH, arch) || !slices.ContainsFunc(st.Steps, isRun) {
			continue
		}
		checked[arch] = true
		if err := exec.CheckEmulation(dir, arch); err != nil {
			return err
		}
	}
	return nil
}

func isRun(s *plan.Step) bool { return s.Kind == plan.KindRun }

// solved is what the solves of a build give the cache exports and the
// summary: every platform's records, layers and counts.
type solved struct {
	results []*solve.Result
	stats   solve.Stats
	misses  []progress.Miss
	slowest []progress.StepTime
}

func (s *solved) add(r *solve.Result) {
	s.results = append(s.results, r)
	s.stats.Steps += r.Stats.Steps
	s.stats.Cached += r.Stats.Cached
	s.stats.Ran += r.Stats.Ran
	s.misses = append(s.misses, r.Misses...)
	s.slowest = append(s.slowest, r.Slowest...)
	slices.SortStableFunc(s.slowest, func(a, b progress.StepTime) int { return int(b.Duration - a.Duration) })
	if len(s.slowest) > 5 {
		s.slowest = s.slowest[:5]
	}
}

// Records are the records of every platform's solve for mode, each key
// once, in platform order.
func (s *solved) Records(mode cache.Mode) []cache.Record {
	if len(s.results) == 1 {
		return s.results[0].Records(mode)
	}
	var out []cache.Record
	seen := map[cache.Key]bool{}
	for _, r := range s.results {
		for _, rec := range r.Records(mode) {
			if !seen[rec.Key] {
				seen[rec.Key] = true
				out = append(out, rec)
			}
		}
	}
	return out
}

// Fetcher reads a layer from whichever solve saw it.
func (s *solved) Fetcher() cache.Fetcher {
	if len(s.results) == 1 {
		return s.results[0].Fetcher()
	}
	fs := make([]cache.Fetcher, len(s.results))
	for i, r := range s.results {
		fs[i] = r.Fetcher()
	}
	return multiFetcher(fs)
}

// multiFetcher tries each fetcher in turn; it offers layers
// (cache.LayerFetcher) as its parts do.
type multiFetcher []cache.Fetcher

var _ cache.LayerFetcher = multiFetcher(nil)

func (m multiFetcher) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	var err error
	for _, f := range m {
		var rc io.ReadCloser
		if rc, err = f.Fetch(ctx, desc); err == nil {
			return rc, nil
		}
		if !errors.Is(err, cache.ErrNotFound) {
			return nil, err
		}
	}
	return nil, err
}

func (m multiFetcher) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	err := fmt.Errorf("layer %s: %w", desc.Digest, cache.ErrNotFound)
	for _, f := range m {
		lf, ok := f.(cache.LayerFetcher)
		if !ok {
			continue
		}
		var l v1.Layer
		if l, err = lf.FetchLayer(ctx, desc); err == nil {
			return l, nil
		}
		if !errors.Is(err, cache.ErrNotFound) {
			return nil, err
		}
	}
	return nil, err
}

// solveAndWriteMulti solves every platform's graph at once with one
// solver (solve.SolveAll: stages of all platforms in parallel; a step the
// platforms share, such as a FROM --platform=$BUILDPLATFORM stage, runs
// once and is a local hit for the others), then writes the outputs as one
// index. A corrupt or missing cache blob starts the solve over, as
// solveAndWrite does.
func solveAndWriteMulti(ctx context.Context, opts Options, graphs []*plan.Graph, solver *solve.Solver, sink progress.Sink) (*solved, *Result, error) {
	var names []string
	for _, g := range graphs {
		names = append(names, plan.FormatPlatform(g.Platform))
	}
	sink.Emit(progress.Event{Kind: progress.Info, Time: time.Now(), Message: "building for " + strings.Join(names, ", ")})
	var rs []*solve.Result
	for attempt := 0; ; attempt++ {
		var err error
		rs, err = solver.SolveAll(ctx, graphs)
		var bad *solve.BadBlobError
		if err != nil && errors.As(err, &bad) && attempt < maxBadBlobRetries {
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(),
				Message: fmt.Sprintf("%v: treating it as a cache miss and rebuilding", bad)})
			solver.MarkBad(bad.Digest)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		break
	}
	// Every result counts the whole build.
	res := &solved{results: rs, stats: rs[0].Stats, misses: rs[0].Misses, slowest: rs[0].Slowest}
	var images []output.PlatformImage
	for i, g := range graphs {
		img, pushImg, err := imageOf(opts, g, rs[i])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", names[i], err)
		}
		images = append(images, output.PlatformImage{Platform: g.Platform, Dir: plan.PlatformDir(g.Platform), Image: img, PushImage: pushImg})
	}
	ann := output.IndexAnnotations{Index: opts.IndexAnnotations, Descriptor: opts.DescriptorAnnotations}
	if err := output.Write(ctx, output.Request{Specs: opts.Outputs, Tags: opts.Tags, Push: opts.Push,
		Stdout: opts.Stdout, Remote: opts.Remote, Platforms: images, IndexAnnotations: ann}); err != nil {
		return nil, nil, err
	}
	idx := output.Index(images, false, ann)
	desc, err := descriptorOf(idx)
	if err != nil {
		return nil, nil, err
	}
	return res, &Result{Index: idx, Digest: desc.Digest, Descriptor: desc, Stats: res.stats}, nil
}
