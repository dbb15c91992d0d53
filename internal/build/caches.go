package build

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/solve"
)

// importCaches imports every --cache-from. A cache that cannot be read is
// a warning and a miss, never a failed build; one that its location's
// policy skipped (cache.ErrSkipped) is one warning line too. Either is
// listed in the summary's Skipped. --no-cache imports nothing.
//
// The imports run concurrently (each is a few round trips to its
// location); their warnings and results come in the order given.
func importCaches(ctx context.Context, opts Options, sink progress.Sink) ([]solve.Import, []progress.Notice) {
	return startImports(ctx, opts)(sink)
}

// importResult is one import's answer.
type importResult struct {
	m   *cache.Manifest
	f   cache.Fetcher
	err error
}

// startImports starts every import of opts.CacheFrom and returns the
// function that waits for them and reports them (importCaches).
func startImports(ctx context.Context, opts Options) func(progress.Sink) ([]solve.Import, []progress.Notice) {
	results := make([]importResult, len(opts.CacheFrom))
	var wg sync.WaitGroup
	if !opts.NoCache {
		for i, imp := range opts.CacheFrom {
			wg.Go(func() {
				m, f, err := imp.Importer.Import(ctx)
				results[i] = importResult{m, f, err}
			})
		}
	}
	return func(sink progress.Sink) ([]solve.Import, []progress.Notice) {
		wg.Wait()
		var out []solve.Import
		var skipped []progress.Notice
		for i, imp := range opts.CacheFrom {
			if opts.NoCache {
				skipped = append(skipped, progress.Notice{Source: imp.Name, Direction: progress.DirectionImport, Reason: "--no-cache"})
				continue
			}
			r := results[i]
			if r.err != nil {
				skipped = append(skipped, importFailed(imp, r.err, sink))
				continue
			}
			out = append(out, solve.Import{Name: imp.Name, Manifest: r.m, Fetcher: r.f})
		}
		return out, skipped
	}
}

// importFailed warns that imp could not be imported and returns the
// summary's notice for it.
func importFailed(imp cache.Import, err error, sink progress.Sink) progress.Notice {
	reason := fmt.Sprintf("could not be read: %v", err)
	msg := fmt.Sprintf("cache %s: %v; building without it", imp.Name, err)
	switch {
	case errors.Is(err, cache.ErrSkipped):
		reason = cache.SkipReason(err)
		msg = fmt.Sprintf("cache %s: import skipped: %v", imp.Name, err)
	case cache.IsMiss(err):
		reason = "nothing to import yet"
		msg = fmt.Sprintf("cache %s: nothing to import yet (%v)", imp.Name, err)
	}
	if msg != "" {
		sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: msg})
	}
	return progress.Notice{Source: imp.Name, Direction: progress.DirectionImport, Reason: reason}
}

// requests is what a backend's RequestCounter says (the requests its
// import or export made so far), nil for a backend that makes none of its
// own (local, inline).
func requests(v any) *int64 {
	if c, ok := v.(cache.RequestCounter); ok {
		n := c.Requests()
		return &n
	}
	return nil
}

// skippedImports returns, for each import that its location's policy skipped,
// why: Import is asked again (it answers without a request when skipped).
func skippedImports(opts Options) map[string]string {
	out := map[string]string{}
	for _, imp := range opts.CacheFrom {
		if s, ok := imp.Config.(skipper); ok {
			if err := s.Skipped(); err != nil {
				out[imp.Name] = err.Error()
			}
		}
	}
	return out
}

// skipper is the optional capability of a parsed spec whose location's
// policy may turn it off before any request (gha's ACTIONS_CACHE_MODE and
// the token's claims).
type skipper interface{ Skipped() error }

// importStats lists every --cache-from in the order given, with what the
// solve counted for it; one that imported nothing shows as 0 hits.
func importStats(from []cache.Import, got []progress.CacheStat, skipped map[string]string) []progress.CacheStat {
	by := map[string]progress.CacheStat{}
	for _, s := range got {
		by[s.Source] = s
	}
	out := make([]progress.CacheStat, 0, len(from))
	for _, imp := range from {
		s, ok := by[imp.Name]
		if !ok {
			s = progress.CacheStat{Source: imp.Name, Direction: progress.DirectionImport}
		}
		s.Skipped = skipped[imp.Name]
		s.Requests = requests(imp.Importer)
		out = append(out, s)
	}
	return out
}

// exportCaches writes every --cache-to. A failed export fails the build
// unless the export says ignore-error=true; then, or when the exporter
// skipped itself (*cache.SkipError), it is listed in the skipped notices.
func exportCaches(ctx context.Context, opts Options, res *solved, sink progress.Sink) ([]progress.CacheStat, []progress.Notice, error) {
	var stats []progress.CacheStat
	var skipped []progress.Notice
	for _, exp := range opts.CacheTo {
		m := cache.NewManifest(res.Records(exp.Options.Mode))
		var written atomic.Int64
		src := cache.CountingFetcher(res.Fetcher(), func(n int64) { written.Add(n) })
		err := exp.Exporter.Export(ctx, m, src)
		var partial *cache.PartialError
		if errors.As(err, &partial) && len(m.Records) > partial.Dropped {
			// Published, less what could not be read: a warning.
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(),
				Message: fmt.Sprintf("cache %s: %v", exp.Name, partial)})
			err = nil
		}
		if errors.Is(err, cache.ErrSkipped) {
			// The location's policy, not a failure: one line, whatever
			// ignore-error says, and the build goes on.
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(),
				Message: fmt.Sprintf("cache %s: export skipped: %v", exp.Name, err)})
			stats = append(stats, progress.CacheStat{Source: exp.Name, Direction: progress.DirectionExport, Skipped: err.Error(),
				Requests: requests(exp.Exporter)})
			skipped = append(skipped, progress.Notice{Source: exp.Name, Direction: progress.DirectionExport, Reason: cache.SkipReason(err)})
			continue
		}
		if err != nil {
			if !exp.Options.IgnoreError {
				return nil, nil, fmt.Errorf("exporting cache to %s: %w", exp.Name, err)
			}
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(),
				Message: fmt.Sprintf("exporting cache to %s: %v (ignored: ignore-error=true)", exp.Name, err)})
			skipped = append(skipped, progress.Notice{Source: exp.Name, Direction: progress.DirectionExport,
				Reason: fmt.Sprintf("failed, ignored (ignore-error=true): %v", err)})
			continue
		}
		stats = append(stats, progress.CacheStat{
			Source: exp.Name, BytesWritten: written.Load(), Direction: progress.DirectionExport,
			Requests: requests(exp.Exporter),
		})
	}
	return stats, skipped, nil
}

// exportCompression is the compression new layers are made with: the
// first --cache-to that names one (so the cache holds them as asked without
// recompressing), else gzip. Layers that already exist (base images, cache
// hits) keep theirs.
func exportCompression(exports []cache.Export) string {
	for _, e := range exports {
		if e.Options.Compression != "" && e.Options.Compression != "gzip" {
			return e.Options.Compression
		}
	}
	return "gzip"
}

func exportCompressionLevel(exports []cache.Export) int {
	for _, e := range exports {
		if e.Options.CompressionLevel != 0 {
			return e.Options.CompressionLevel
		}
	}
	return 0
}
