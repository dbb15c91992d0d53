package solve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/snapshot"
	"github.com/kiln-build/kiln/internal/source"
	"github.com/kiln-build/kiln/internal/store"
)

// Options configure a Solver. Store, Snapshotter and Context are required.
type Options struct {
	// Store is the state dir: blobs and step records.
	Store *store.Store
	// Snapshotter keeps unpacked layers and makes rootfs for steps.
	Snapshotter *snapshot.Snapshotter
	// Context is the build context, .dockerignore applied.
	Context *source.Tree
	// ContextDir is the context's directory, for RUN --mount=type=bind.
	ContextDir string
	// Contexts are the named directory contexts (--build-context
	// NAME=DIR) that plan.Copy.FromContext and plan.Mount.FromContext name.
	Contexts map[string]NamedContext
	// Image returns the image behind a plan.Image (FROM, COPY --from, RUN
	// --mount from=). Its layers may be lazy.
	Image func(ctx context.Context, img *plan.Image) (v1.Image, error)
	// Progress receives step events; nil discards them.
	Progress progress.Sink
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Runtime is the OCI runtime binary for RUN ("" = runc).
	Runtime string
	// Network is the default RUN network: "default" ("" too: the build's
	// own network namespace, made at the first RUN that needs it and
	// shared by all), "host" or "none".
	Network string
	// NetNS configures the build's network namespace.
	NetNS exec.NetNSOptions
	// Secrets holds the values of --secret, by id. They are bound into RUN
	// steps that ask for them and never enter keys, layers or logs.
	Secrets map[string][]byte
	// NoCache ignores every cached result (results are still recorded).
	NoCache bool
	// NoCacheStages are the stages (by AS name, any case) whose steps
	// ignore every cached result, as buildx --no-cache-filter; steps of
	// other stages still hit, also on top of a re-run stage whose result
	// is unchanged.
	NoCacheStages []string
	// Hosts are extra /etc/hosts entries of every RUN (--add-host).
	Hosts []exec.Host
	// ShmSize is the size of /dev/shm of every RUN in bytes (--shm-size);
	// 0 is exec.DefaultShmSize.
	ShmSize int64
	// Ulimits are resource limits of every RUN (--ulimit).
	Ulimits []exec.Ulimit
	// SourceDateEpoch, when set, clamps layer timestamps and stamps every
	// history entry, so two builds give byte-identical images.
	SourceDateEpoch *time.Time
	// Compression is how new layers are stored ("" = gzip).
	Compression layer.Compression
	// CompressionLevel is the compressor's level (0 = its default).
	CompressionLevel int
	// Imports are the imported caches, consulted in order after the local
	// store. NoCache ignores them.
	Imports []Import
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LayerDone, when set, is told of every layer a step executed here made,
	// as soon as it is stored (not of cache hits), so that its upload can
	// start while later steps run. It is called from the goroutine that
	// compressed the layer, maybe from several at once, and must return
	// promptly.
	LayerDone func(step *plan.Step, l v1.Layer)
}

// Solver solves graphs. It is safe for one Solve at a time.
type Solver struct {
	opts    Options
	sink    progress.Sink
	log     *slog.Logger
	imports *imports
	// imported maps a layer digest to its *importedLayer.
	imported sync.Map
	total    int
	// multi is set while graphs of several platforms are solved: progress
	// names a step's stage with its platform (stageLabel).
	multi  bool
	mu     sync.Mutex
	stats  Stats
	misses []progress.Miss
	times  []progress.StepTime
	// filters are the seccomp programs crun compiled for this build's RUN
	// steps, which later crun steps reuse.
	filters  exec.Filters
	prepared sync.Once // prepareRuns
	netns    lazyNetNS
	// ran holds the keys of the steps this solver executed, which
	// --no-cache still reuses.
	ran sync.Map
	// jobs is the current SolveAll's background work; compressing bounds
	// the layers compressed at once.
	jobs        *jobs
	compressing chan struct{}
	// compress is layer.Compress; tests hook it.
	compress func(ctx context.Context, dst io.Writer, src io.Reader, c layer.Compression, level int) (layer.Blob, error)
}

// Stats counts what one Solve did.
type Stats struct {
	// Steps counts the filesystem steps (RUN, COPY, ADD) solved.
	Steps int
	// Cached counts those that were cache hits; Ran those executed.
	Cached, Ran int
}

// Result is the solved target stage.
type Result struct {
	// Key is the cache key of the target's filesystem.
	Key cache.Key
	// Layers are the target's filesystem layers, bottom first.
	Layers []v1.Layer
	// History has one entry per instruction, base image history first.
	History []v1.History
	// Config is the target's runtime config.
	Config v1.Config
	// Stats counts hits and executions.
	Stats Stats
	// Misses explain every step that was not a hit, in step order.
	Misses []progress.Miss
	// Slowest are the executed steps that took longest, longest first
	// (at most five).
	Slowest []progress.StepTime

	target *state
	all    []cache.Record
	layers map[v1.Hash]v1.Layer
	solver *Solver
}

// New returns a Solver.
func New(opts Options) (*Solver, error) {
	if opts.Store == nil || opts.Snapshotter == nil || opts.Context == nil {
		return nil, errors.New("solve: Store, Snapshotter and Context are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Compression == "" {
		opts.Compression = layer.Gzip
	}
	s := &Solver{opts: opts, sink: opts.Progress, log: opts.Logger, imports: newImports(opts.Imports),
		netns:       lazyNetNS{opts: opts.NetNS, tempDir: opts.Store.TempDir},
		compressing: make(chan struct{}, compressParallelism), compress: layer.Compress}
	if s.sink == nil {
		s.sink = progress.Discard()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.filters.TempDir = opts.Store.BundleDir
	return s, nil
}

// stageRun is one stage being solved: its result is published by closing
// done.
type stageRun struct {
	stage *plan.Stage
	done  chan struct{}
	state *state
	err   error
}

// Solve solves every stage of g, independent stages in parallel, and
// returns the target's result.
func (s *Solver) Solve(ctx context.Context, g *plan.Graph) (*Result, error) {
	rs, err := s.SolveAll(ctx, []*plan.Graph{g})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// waitStage waits for dep's result; it fails when dep failed or ctx ends.
func waitStage(ctx context.Context, runs map[*plan.Stage]*stageRun, dep *plan.Stage) (*state, error) {
	r, ok := runs[dep]
	if !ok {
		return nil, fmt.Errorf("stage %s is not part of the build graph", dep.Label())
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		// The root cause itself, so that whichever stage reports first,
		// the build sees the same error (a bad cache blob stays one).
		return nil, r.err
	}
	return r.state, nil
}

func (s *Solver) solveStage(ctx context.Context, st *plan.Stage, runs map[*plan.Stage]*stageRun) (*state, error) {
	cur, err := s.baseState(ctx, st, runs)
	if err != nil {
		return nil, err
	}
	for _, step := range st.Steps {
		switch step.Kind {
		case plan.KindConfig:
			cur = cur.withConfig(step, s.historyTime(cur))
		case plan.KindRun, plan.KindCopy, plan.KindMkdir:
			next, err := s.solveStep(ctx, step, cur, runs)
			if err != nil {
				return nil, err
			}
			cur = next
		default:
			return nil, fmt.Errorf("%s:%d: unknown step kind %d", step.Pos.File, step.Pos.Line, step.Kind)
		}
	}
	return cur, nil
}

// historyTime is the creation time of an entry that makes no layer: the
// latest time so far, so that config-only steps never make a rebuilt image
// differ.
func (s *Solver) historyTime(cur *state) time.Time {
	if s.opts.SourceDateEpoch != nil {
		return *s.opts.SourceDateEpoch
	}
	return cur.history.lastTime()
}

// epoch is SourceDateEpoch as it enters keys.
func (s *Solver) epoch() *int64 {
	if s.opts.SourceDateEpoch == nil {
		return nil
	}
	e := s.opts.SourceDateEpoch.Unix()
	return &e
}

// stageLabel is the name progress and failures give st: its label, after
// its platform when the solve is of several platforms (both platforms'
// steps have the same stage and text), as BuildKit's "[linux/arm64
// stage-0 2/4]".
func (s *Solver) stageLabel(st *plan.Stage) string {
	if !s.multi {
		return st.Label()
	}
	return plan.FormatPlatform(stagePlatform(st)) + " " + st.Label()
}

func (s *Solver) emit(e progress.Event) {
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	s.sink.Emit(e)
}

// SoFar is what the current or last Solve did until now: its counts, its
// misses in step order and its slowest executed steps. After a failed
// Solve it is the account of what ran before the failure.
func (s *Solver) SoFar() (Stats, []progress.Miss, []progress.StepTime) {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	return st, s.sortedMisses(), s.slowestSteps()
}

func (s *Solver) count(cached bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Steps++
	if cached {
		s.stats.Cached++
	} else {
		s.stats.Ran++
	}
}

// uncount takes back the count of an executed step that failed after all.
func (s *Solver) uncount() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Steps--
	s.stats.Ran--
}
