package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/output"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/remote"
	"github.com/kiln-build/kiln/internal/snapshot"
	"github.com/kiln-build/kiln/internal/solve"
	"github.com/kiln-build/kiln/internal/source"
	"github.com/kiln-build/kiln/internal/store"
)

// Options describe one build. ContextDir and StateDir are required.
type Options struct {
	// ContextDir is the build context directory.
	ContextDir string
	// Dockerfile is the Dockerfile path; "" means ContextDir/Dockerfile.
	Dockerfile string
	// Tags name the image; with Push each is pushed.
	Tags []string
	// Push pushes the image to the registry of every tag.
	Push bool
	// Outputs are the --output destinations.
	Outputs []output.Spec
	// Target is the stage to build; "" means the last.
	Target string
	// BuildArgs are the --build-arg values.
	BuildArgs map[string]string
	// Labels are the --label values, added to the image config.
	Labels map[string]string
	// Annotations are the --annotation values, set on the image manifest
	// (every platform's).
	Annotations map[string]string
	// PlatformAnnotations are set on one platform's image manifest
	// (--annotation manifest[linux/arm64]:K=V), by os/arch[/variant].
	PlatformAnnotations map[string]map[string]string
	// IndexAnnotations are set on the image index of a build of several
	// platforms (--annotation index:K=V); DescriptorAnnotations on each of
	// its manifest descriptors (manifest-descriptor:K=V).
	IndexAnnotations, DescriptorAnnotations map[string]string
	// Contexts are the named build contexts (--build-context), by name.
	Contexts map[string]BuildContext
	// NoCache ignores every cache; results are still recorded.
	NoCache bool
	// NoCacheStages are stage names (--no-cache-filter) whose steps ignore
	// every cache; a name no built stage has is warned about.
	NoCacheStages []string
	// Hosts are extra /etc/hosts entries of RUN steps (--add-host).
	Hosts []exec.Host
	// ShmSize is the size of /dev/shm of RUN steps, in bytes (--shm-size);
	// 0 is Docker's 64 MiB.
	ShmSize int64
	// Ulimits are resource limits of RUN steps (--ulimit).
	Ulimits []exec.Ulimit
	// Stdout receives an output whose dest is "-".
	Stdout io.Writer
	// MetadataFile, if set, receives the build's metadata as JSON.
	MetadataFile string
	// Network is the default network of RUN steps: "default" ("" too; a
	// network namespace of the build's own with outbound access through
	// slirp4netns), "host" or "none".
	Network string
	// Secrets are --secret values by id.
	Secrets map[string][]byte
	// Runtime is the OCI runtime for RUN ("" = runc).
	Runtime string
	// StateDir is the local state store.
	StateDir string
	// StateMax, when > 0, bounds the state dir: after the build, least
	// recently used results are pruned until it fits (skipped while another
	// build holds the state dir).
	StateMax int64
	// ForceCopy uses the copying snapshotter even where overlayfs works.
	ForceCopy bool
	// CacheFrom are the caches to import, in the order given.
	CacheFrom []cache.Import
	// CacheTo are the caches to export after the outputs are written.
	CacheTo []cache.Export
	// Remote reaches registries; nil is allowed for builds that use none.
	Remote *remote.Client
	// SourceDateEpoch, if set, makes layers and history reproducible.
	SourceDateEpoch *time.Time
	// Progress receives events; nil discards them.
	Progress progress.Sink
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// StepSummary, if set, is a GitHub job summary file (GITHUB_STEP_SUMMARY)
	// the build appends its summary to, as markdown.
	StepSummary string
	// Skipped are imports and exports skipped before the build began (by
	// the program or a backend's setup), for the summary.
	Skipped []progress.Notice
	// Platforms are the target platforms (--platform); none means the
	// host's. With more than one, all are solved at once (a step that does
	// not depend on the target platform, such as one of a FROM
	// --platform=$BUILDPLATFORM stage, runs once and is a hit for the
	// others) and the outputs carry one image index.
	Platforms []v1.Platform
	// BinfmtDir is where binfmt_misc is mounted, for the check that RUN
	// steps of a foreign architecture can be emulated; "" means
	// exec.BinfmtDir.
	BinfmtDir string
}

// Result is a finished build.
type Result struct {
	// Image is the image built (with inline cache when asked for); nil
	// for a build of several platforms, whose images are in Index.
	Image v1.Image
	// Index is the image index of a build of several platforms, nil for
	// one platform.
	Index v1.ImageIndex
	// Digest is the image manifest's digest (the index's, for several
	// platforms).
	Digest v1.Hash
	// ConfigDigest is the image config's digest (zero for several
	// platforms).
	ConfigDigest v1.Hash
	// Descriptor is the image manifest's (or index's) descriptor (media
	// type, digest, size).
	Descriptor v1.Descriptor
	// Stats count the steps, hits and runs.
	Stats solve.Stats
	// Summary is the end-of-build summary, as the Done event carried it;
	// after a failure it is the only field set, with Summary.Failure.
	Summary *progress.Summary
}

// ErrUsage marks errors in what the user asked for (exit code 2).
var ErrUsage = errors.New("usage error")

// UsageError marks err as an error in what the user asked for:
// errors.Is(result, ErrUsage) holds, and err's own chain is kept. cli maps
// it to exit code 2; every package that finds bad input uses it.
func UsageError(err error) error { return usageError{err} }

type usageError struct{ err error }

func (e usageError) Error() string         { return e.err.Error() }
func (e usageError) Unwrap() []error       { return []error{e.err, ErrUsage} }
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Run performs the build, in the phases of DESIGN.md §2: read the inputs,
// open the state dir, plan, solve and write the outputs, export the
// caches and report.
//
// A build that fails returns, with its error, a Result that holds only
// its Summary: the step that failed, with the line kiln ends with, and
// what ran until then. It is appended to StepSummary too.
func Run(ctx context.Context, opts Options) (out *Result, err error) {
	start := time.Now()
	if opts.Progress == nil {
		opts.Progress = progress.Discard()
	}
	var made *solve.Solver // once made: what it did until a failure
	defer func() {
		if err == nil {
			return
		}
		out = &Result{Summary: failedSummary(opts, made, err, time.Since(start))}
		if serr := appendStepSummary(opts.StepSummary, out.Summary); serr != nil {
			opts.Progress.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: serr.Error()})
		}
	}()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sink := opts.Progress
	df, dfPath, err := readInputs(&opts)
	if err != nil {
		return nil, err
	}
	st, snap, err := openState(opts.StateDir, opts.ForceCopy)
	if err != nil {
		return nil, err
	}
	// One sync for every snapshot this build committed from a volatile
	// mount, instead of one per step. It starts as soon as the steps are
	// solved, beside the push and the cache exports, which only read what
	// it makes durable; the build ends after it.
	var syncTook time.Duration // the two runs are one after the other
	syncer := newEarly(func() error {
		start := time.Now()
		defer func() { syncTook += time.Since(start) }()
		return snap.Sync()
	})
	defer func() {
		waitStart := time.Now()
		if err := syncer.finish(); err != nil {
			opts.Logger.Debug("syncing snapshots", "err", err)
		}
		opts.Logger.Debug("synced snapshots", "took", syncTook.Round(100*time.Microsecond),
			"waited", time.Since(waitStart).Round(100*time.Microsecond))
		st.Close()
		if opts.StateMax > 0 {
			boundState(ctx, opts, sink)
		}
	}()
	// What builds killed with -9 left (containers still running, secret
	// files, mounts) goes before this build starts; running builds' own
	// things are never touched (store.SweepDead).
	if n, err := st.SweepDead(ctx, sweepHooks(snap)); err != nil {
		sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: fmt.Sprintf("cleaning up after a killed build: %v", err)})
	} else if n > 0 {
		opts.Logger.Debug("swept killed builds", "sessions", n)
	}
	if snap.Mode() != "overlayfs" {
		sink.Emit(progress.Event{Kind: progress.Info, Time: time.Now(), Message: "using the copying snapshotter: overlayfs cannot be mounted here (slower, same results)"})
	}
	tree, err := openContext(opts.ContextDir, dfPath, st)
	if err != nil {
		return nil, err
	}
	defer tree.Close()
	named, closeNamed, err := openContexts(opts, st)
	if err != nil {
		return nil, err
	}
	defer closeNamed()

	// The caches are imported and every base image is resolved while the
	// Dockerfile is planned: each is a round trip or more to a registry,
	// and none needs another.
	importCtx, cancelImports := context.WithCancel(ctx)
	defer cancelImports()
	waitImports := startImports(importCtx, opts)
	images := newImages(opts.Remote)
	platforms := targetPlatforms(opts)
	images.prefetch(ctx, opts, df, dfPath, platforms)
	graphs, err := planPlatforms(ctx, opts, df, dfPath, images, platforms)
	if err != nil {
		cancelImports()
		waitImports(progress.Discard())
		return nil, err
	}
	stopPrefetch := prefetchContext(ctx, graphs[0], tree)
	defer stopPrefetch()
	imports, skipped := waitImports(sink)
	uploadCtx, cancelUploads := context.WithCancel(ctx)
	// Early uploads serve one image's push; an index's images push after.
	var uploads *uploader
	if len(graphs) == 1 {
		uploads = newUploader(uploadCtx, opts, graphs[0])
	}
	defer func() {
		cancelUploads()
		uploads.wait()
	}()
	// Each layer of the image's stage starts uploading as soon as it exists.
	layerDone := func(step *plan.Step, l v1.Layer) {
		if uploads != nil {
			uploads.layerDone(step, l)
		}
	}
	solver, err := solve.New(solve.Options{
		Imports:          imports,
		Store:            st,
		Snapshotter:      snap,
		Context:          tree,
		ContextDir:       opts.ContextDir,
		Contexts:         named,
		Image:            images.image,
		Progress:         sink,
		Logger:           opts.Logger,
		Runtime:          opts.Runtime,
		Network:          opts.Network,
		Secrets:          opts.Secrets,
		NoCache:          opts.NoCache,
		NoCacheStages:    opts.NoCacheStages,
		Hosts:            opts.Hosts,
		ShmSize:          opts.ShmSize,
		Ulimits:          opts.Ulimits,
		SourceDateEpoch:  opts.SourceDateEpoch,
		Compression:      layer.Compression(exportCompression(opts.CacheTo)),
		CompressionLevel: exportCompressionLevel(opts.CacheTo),
		LayerDone:        layerDone,
	})
	if err != nil {
		return nil, err
	}
	made = solver
	// The build's network namespace is for RUN steps only: its
	// slirp4netns, which takes some tens of milliseconds to exit, stops
	// once the steps are solved, beside the push and the cache exports.
	netClose := newEarly(solver.Close)
	// The context's checksum cache is complete once the steps are solved:
	// it is written beside the push too (Close saves only what is left).
	saveSums := newEarly(tree.Save)
	defer saveSums.wait()
	stepsSolved := func() {
		syncer.start()
		netClose.start()
		saveSums.start()
	}
	var res *solved
	if len(graphs) == 1 {
		var r *solve.Result
		r, out, err = solveAndWrite(ctx, opts, graphs[0], solver, sink, tail{uploads: uploads, solved: stepsSolved, again: netClose.wait})
		if err == nil {
			res = &solved{}
			res.add(r)
		}
	} else {
		res, out, err = solveAndWriteMulti(ctx, opts, graphs, solver, sink)
	}
	if err != nil {
		netClose.finish()
		return nil, err
	}
	exportStats, exportSkipped, err := exportCaches(ctx, opts, res, sink)
	if cerr := netClose.finish(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the build's network: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	sum := &progress.Summary{
		Steps: res.stats.Steps, Cached: res.stats.Cached, Ran: res.stats.Ran,
		Duration: time.Since(start), Digest: out.Digest.String(),
		Caches: append(importStats(opts.CacheFrom, solver.ImportStats(), skippedImports(opts)), exportStats...),
		Images: opts.Tags, Misses: res.misses, Slowest: res.slowest,
		Skipped: slices.Concat(opts.Skipped, skipped, exportSkipped),
	}
	out.Summary = sum
	if opts.MetadataFile != "" {
		if err := writeMetadata(opts.MetadataFile, opts.Tags, out, sum); err != nil {
			return nil, err
		}
	}
	if err := appendStepSummary(opts.StepSummary, sum); err != nil {
		// The image is built and written: a summary is not worth failing.
		sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: err.Error()})
	}
	sink.Emit(progress.Event{Kind: progress.Done, Time: time.Now(), Summary: sum})
	return out, nil
}

// readInputs checks the context and the output flags, makes the context
// path absolute in opts, and reads the Dockerfile.
func readInputs(opts *Options) (df []byte, dfPath string, err error) {
	dfPath = opts.Dockerfile
	if dfPath == "" {
		dfPath = filepath.Join(opts.ContextDir, "Dockerfile")
	}
	if fi, err := os.Stat(opts.ContextDir); err != nil || !fi.IsDir() {
		return nil, "", usagef("build context %q is not a directory", opts.ContextDir)
	}
	// Everything below (bind mounts into RUN above all) needs the context
	// as an absolute path.
	abs, err := filepath.Abs(opts.ContextDir)
	if err != nil {
		return nil, "", usagef("build context %q: %v", opts.ContextDir, err)
	}
	opts.ContextDir = abs
	df, err = os.ReadFile(dfPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", usagef("Dockerfile not found: %s", dfPath)
		}
		return nil, "", fmt.Errorf("reading Dockerfile: %w", err)
	}
	// A tag that cannot be pushed or written must fail now, not after the
	// build (output parses each tag the same way).
	for _, t := range opts.Tags {
		if _, err := name.NewTag(t); err != nil {
			return nil, "", usagef("--tag %q: %v", t, err)
		}
	}
	if (opts.Push || hasRegistryOutput(opts.Outputs)) && len(opts.Tags) == 0 && !namedRegistryOutput(opts.Outputs) {
		return nil, "", usagef("--push needs at least one --tag")
	}
	return df, dfPath, nil
}

// openState opens the state dir and its snapshotter: the one place a
// build or a prune does.
func openState(dir string, forceCopy bool) (*store.Store, *snapshot.Snapshotter, error) {
	st, err := store.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("opening state dir %s: %w", dir, err)
	}
	snap, err := snapshot.New(snapshot.Options{Root: st.SnapshotRoot(), ForceCopy: forceCopy, Session: st.Session()})
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("opening snapshots: %w", err)
	}
	return st, snap, nil
}

// planBuild turns the Dockerfile into the build graph, resolving FROM
// images, and checks what the graph needs of the machine.
func planBuild(ctx context.Context, opts Options, df []byte, dfPath string, images *images, platform v1.Platform) (*plan.Graph, error) {
	g, err := dockerfile.Plan(ctx, df, dockerfile.Options{
		File:         displayName(dfPath, opts.ContextDir),
		BuildArgs:    opts.BuildArgs,
		Target:       opts.Target,
		Platform:     platform,
		Network:      opts.Network,
		ResolveImage: images.resolve,
		Contexts:     plannedContexts(opts),
	})
	if err != nil {
		var de *dockerfile.Error
		if errors.As(err, &de) {
			return nil, usageError{err}
		}
		return nil, err
	}
	if hasRun(g) {
		if err := exec.Available(opts.Runtime); err != nil {
			return nil, usagef("the Dockerfile has RUN steps but %v (install runc or crun, or pass --runtime)", err)
		}
	}
	if err := checkEmulation(g, opts.BinfmtDir); err != nil {
		return nil, usageError{err}
	}
	return g, nil
}

// boundState prunes the state dir down to opts.StateMax when it is over.
// A build running meanwhile keeps it from pruning (store.ErrInUse): the
// next build will.
func boundState(ctx context.Context, opts Options, sink progress.Sink) {
	if ctx.Err() != nil {
		return
	}
	used, err := store.PrunableUsage(opts.StateDir)
	if err != nil || used <= opts.StateMax {
		return
	}
	rep, err := Prune(ctx, opts.StateDir, store.PruneOptions{KeepBytes: opts.StateMax})
	if err != nil {
		if !errors.Is(err, store.ErrInUse) {
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: fmt.Sprintf("bounding the state dir: %v", err)})
		}
		return
	}
	sink.Emit(progress.Event{Kind: progress.Info, Time: time.Now(), Message: fmt.Sprintf(
		"state dir was %s, over KILN_STATE_MAX: pruned %d results, freed %s",
		progress.HumanBytes(used), rep.Records, progress.HumanBytes(rep.Freed))})
}

// Prune frees the state dir dir as opts says, snapshots included (kiln
// prune, and KILN_STATE_MAX after a build). opts.Snapshots is set here.
func Prune(ctx context.Context, dir string, opts store.PruneOptions) (store.PruneReport, error) {
	snap, err := snapshot.New(snapshot.Options{Root: store.SnapshotRootOf(dir)})
	if err != nil {
		return store.PruneReport{}, fmt.Errorf("opening snapshots: %w", err)
	}
	opts.Snapshots = snapshotSet{snap}
	opts.Hooks = sweepHooks(snap)
	return store.Prune(ctx, dir, opts)
}

// sweepHooks stop a killed build's containers and remove its mounts.
func sweepHooks(snap *snapshot.Snapshotter) store.SweepHooks {
	return store.SweepHooks{
		Reap:    func(_ context.Context, dir string) error { return exec.Reap(dir) },
		Release: snap.SweepSession,
	}
}

type snapshotSet struct{ s *snapshot.Snapshotter }

func (ss snapshotSet) Usage(ctx context.Context) ([]store.SnapshotInfo, error) {
	infos, err := ss.s.Usage(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]store.SnapshotInfo, len(infos))
	for i, in := range infos {
		out[i] = store.SnapshotInfo{ChainID: in.ChainID, Size: in.Size, LastUsed: in.LastUsed}
	}
	return out, nil
}

func (ss snapshotSet) Remove(ctx context.Context, chainID v1.Hash) error {
	return ss.s.Remove(ctx, chainID)
}

func (ss snapshotSet) Sweep(ctx context.Context) error { return ss.s.Sweep(ctx) }

// hasRun reports whether any step of g runs a command.
func hasRun(g *plan.Graph) bool {
	for _, st := range g.Stages {
		for _, step := range st.Steps {
			if step.Kind == plan.KindRun {
				return true
			}
		}
	}
	return false
}

// maxBadBlobRetries bounds how often a build starts over after finding a
// corrupt or missing cache blob (each retry excludes the blobs found bad).
const maxBadBlobRetries = 5

// solveAndWrite solves the graph, assembles the image and writes the
// outputs. An imported layer that turns out to be corrupt or missing when
// its bytes are first needed is a miss: the blob is marked bad and the
// solve starts over, rebuilding what depended on it; steps already done
// are local hits the second time.
func solveAndWrite(ctx context.Context, opts Options, g *plan.Graph, solver *solve.Solver, sink progress.Sink, t tail) (*solve.Result, *Result, error) {
	for attempt := 0; ; attempt++ {
		res, out, err := solveOnce(ctx, opts, g, solver, t)
		var bad *solve.BadBlobError
		if err != nil && errors.As(err, &bad) && attempt < maxBadBlobRetries {
			if t.again != nil {
				t.again()
			}
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(),
				Message: fmt.Sprintf("%v: treating it as a cache miss and rebuilding", bad)})
			solver.MarkBad(bad.Digest)
			continue
		}
		return res, out, err
	}
}

// tail is what the single-image path does beside writing its outputs.
type tail struct {
	uploads *uploader // the early uploads (nil: none)
	// solved is called each time the steps are solved, before the
	// outputs are written (nil: nothing).
	solved func()
	// again is called before the steps are solved once more (nil:
	// nothing): what solved started in the background must not overlap
	// the new solve.
	again func()
}

func solveOnce(ctx context.Context, opts Options, g *plan.Graph, solver *solve.Solver, t tail) (*solve.Result, *Result, error) {
	res, img, pushImg, err := solveImage(ctx, opts, g, solver)
	if err != nil {
		return nil, nil, err
	}
	if t.solved != nil {
		t.solved()
	}
	uploads := t.uploads
	digest, err := img.Digest()
	if err != nil {
		return nil, nil, err
	}
	cfgDigest, err := img.ConfigName()
	if err != nil {
		return nil, nil, err
	}
	desc, err := descriptorOf(img)
	if err != nil {
		return nil, nil, err
	}
	// The layers uploaded beside the build, and the config sent beside
	// the last of them, are there before the push looks for them.
	uploads.configDone(pushImg)
	uploads.wait()
	if err := output.Write(ctx, output.Request{Specs: opts.Outputs, Tags: opts.Tags, Push: opts.Push,
		Stdout: opts.Stdout, Image: img, PushImage: pushImg, Remote: opts.Remote}); err != nil {
		return nil, nil, err
	}
	return res, &Result{Image: img, Digest: digest, ConfigDigest: cfgDigest, Descriptor: desc, Stats: res.Stats}, nil
}

// solveImage solves g and assembles its image, and the same image as
// pushed (whose layers from a registry cache are the registry's own).
func solveImage(ctx context.Context, opts Options, g *plan.Graph, solver *solve.Solver) (*solve.Result, v1.Image, v1.Image, error) {
	res, err := solver.Solve(ctx, g)
	if err != nil {
		return nil, nil, nil, err
	}
	img, pushImg, err := imageOf(opts, g, res)
	if err != nil {
		return nil, nil, nil, err
	}
	return res, img, pushImg, nil
}

// imageOf assembles the image of g's solved target res, and the same
// image as pushed.
func imageOf(opts Options, g *plan.Graph, res *solve.Result) (v1.Image, v1.Image, error) {
	cfg := res.Config
	if len(opts.Labels) > 0 {
		cfg.Labels = maps.Clone(cfg.Labels)
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		maps.Copy(cfg.Labels, opts.Labels)
	}
	spec := image.Spec{Config: cfg, Layers: res.Layers, History: res.History,
		Author: g.Target.Author, HealthStartInterval: g.Target.HealthStartInterval,
		OS: g.Target.Platform.OS, Architecture: g.Target.Platform.Architecture, Variant: g.Target.Platform.Variant}
	if opts.SourceDateEpoch != nil {
		spec.Created = *opts.SourceDateEpoch
	}
	img, err := assemble(spec, opts, res)
	if err != nil {
		return nil, nil, err
	}
	// The image to push is the same image, whose layers from a registry
	// cache are the registry's own (mountable) values.
	spec.Layers = res.PushLayers()
	pushImg, err := assemble(spec, opts, res)
	if err != nil {
		return nil, nil, err
	}
	return img, pushImg, nil
}

// assemble builds the image and lets every --cache-to that keeps its cache
// in the image (cache.ImageExporter: type=inline) write its records in.
func assemble(spec image.Spec, opts Options, res *solve.Result) (v1.Image, error) {
	img, err := image.Assemble(spec)
	if err != nil {
		return nil, err
	}
	for _, exp := range opts.CacheTo {
		if ie, ok := exp.Exporter.(cache.ImageExporter); ok {
			if img, err = ie.AttachTo(img, res.Records(exp.Options.Mode)); err != nil {
				return nil, fmt.Errorf("writing cache %s into the image: %w", exp.Name, err)
			}
		}
	}
	platform := plan.FormatPlatform(plan.NormalizePlatform(v1.Platform{OS: spec.OS, Architecture: spec.Architecture, Variant: spec.Variant}))
	ann := opts.Annotations
	if extra := opts.PlatformAnnotations[platform]; len(extra) > 0 {
		ann = maps.Clone(ann)
		if ann == nil {
			ann = map[string]string{}
		}
		maps.Copy(ann, extra)
	}
	return annotate(img, ann), nil
}

// openContext opens the context with its .dockerignore (Dockerfile-specific
// "<Dockerfile>.dockerignore" first, as BuildKit does) and the state dir's
// checksum cache for it. Owners are not hashed: COPY from the context
// writes 0:0 unless --chown says otherwise, so a checkout owned by another
// uid (CI vs laptop) must give the same keys.
func openContext(dir, dfPath string, st *store.Store) (*source.Tree, error) {
	ignore, err := source.ReadIgnore(dfPath + ".dockerignore")
	if err == nil && ignore == nil {
		ignore, err = source.ReadIgnore(filepath.Join(dir, ".dockerignore"))
	}
	if err != nil {
		return nil, usagef("reading .dockerignore: %v", err)
	}
	if rel, err := filepath.Rel(st.Root(), dir); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return nil, usagef("the build context %s is inside the state dir %s", dir, st.Root())
	}
	// A state dir inside the context (KILN_STATE=$PWD/.kiln in CI) is never
	// part of it: it holds running steps' secrets and changes every build.
	return source.Open(dir, source.Options{
		Ignore: ignore, CacheFile: st.ContextCacheFile(dir), IgnoreOwners: true,
		Exclude: []string{st.Root()},
	})
}

func displayName(dfPath, ctxDir string) string {
	if rel, err := filepath.Rel(ctxDir, dfPath); err == nil && !filepath.IsAbs(rel) && rel[0] != '.' {
		return rel
	}
	return dfPath
}

// Metadata is what --metadata-file receives.
type Metadata struct {
	// Digest is the image manifest's digest (buildx's key).
	Digest string `json:"containerimage.digest"`
	// ConfigDigest is the image config's digest (buildx's key).
	ConfigDigest string `json:"containerimage.config.digest,omitempty"`
	// Descriptor is the image manifest's descriptor (buildx's key).
	Descriptor *v1.Descriptor `json:"containerimage.descriptor,omitempty"`
	// Name is the tags, comma-separated (buildx's key).
	Name string `json:"image.name,omitempty"`
	// Summary is kiln's end-of-build summary.
	Summary *progress.Summary `json:"kiln.summary,omitempty"`
}

func writeMetadata(path string, tags []string, r *Result, sum *progress.Summary) error {
	md := Metadata{Digest: r.Digest.String(), Descriptor: &r.Descriptor, Summary: sum}
	if r.Index == nil {
		md.ConfigDigest = r.ConfigDigest.String()
	}
	if len(tags) > 0 {
		md.Name = strings.Join(tags, ",")
	}
	b, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}
