package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/backends"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/remote"
	"github.com/kiln-build/kiln/internal/solve"
)

// importCaches imports every --cache-from. A cache that cannot be read is
// a warning and a miss, never a failed build (DESIGN.md §6). --no-cache
// imports nothing.
func importCaches(ctx context.Context, opts Options, sink progress.Sink) []solve.Import {
	if opts.NoCache {
		return nil
	}
	var out []solve.Import
	for _, imp := range opts.CacheFrom {
		m, f, err := imp.Importer.Import(ctx)
		if err != nil {
			msg := fmt.Sprintf("cache %s: %v; building without it", imp.Name, err)
			if cache.IsMiss(err) {
				msg = fmt.Sprintf("cache %s: nothing to import yet (%v)", imp.Name, err)
			}
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(), Message: msg})
			continue
		}
		out = append(out, solve.Import{Name: imp.Name, Manifest: m, Fetcher: f})
	}
	return out
}

// importStats lists every --cache-from in the order given, with what the
// solve counted for it; one that imported nothing shows as 0 hits.
func importStats(from []backends.Import, got []progress.CacheStat) []progress.CacheStat {
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
		out = append(out, s)
	}
	return out
}

// exportCaches writes every --cache-to. A failed export fails the build
// unless the export says ignore-error=true.
func exportCaches(ctx context.Context, opts Options, res *solve.Result, sink progress.Sink) ([]progress.CacheStat, error) {
	var stats []progress.CacheStat
	for _, exp := range opts.CacheTo {
		if exp.Inline {
			// Written into the image config before the outputs.
			stats = append(stats, progress.CacheStat{Source: exp.Name, Direction: progress.DirectionExport})
			continue
		}
		m := cache.NewManifest(res.Records(exp.Options.Mode))
		src := &countingFetcher{f: res.Fetcher()}
		err := exp.Exporter.Export(ctx, m, src)
		var partial *cache.PartialError
		if errors.As(err, &partial) && len(m.Records) > partial.Dropped {
			// Published, less what could not be read: a warning.
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(),
				Message: fmt.Sprintf("cache %s: %v", exp.Name, partial)})
			err = nil
		}
		if err != nil {
			if !exp.Options.IgnoreError {
				return nil, fmt.Errorf("exporting cache to %s: %w", exp.Name, err)
			}
			sink.Emit(progress.Event{Kind: progress.Warning, Time: time.Now(),
				Message: fmt.Sprintf("exporting cache to %s: %v (ignored: ignore-error=true)", exp.Name, err)})
			continue
		}
		stats = append(stats, progress.CacheStat{
			Source: exp.Name, BytesWritten: src.n.Load(), Direction: progress.DirectionExport,
		})
	}
	return stats, nil
}

// countingFetcher counts the bytes an exporter reads, which are the bytes
// it writes. It forwards cache.LayerFetcher, so that wrapping never hides
// the capability that lets a registry mount instead of upload.
type countingFetcher struct {
	f cache.Fetcher
	n atomic.Int64
}

var _ cache.LayerFetcher = (*countingFetcher)(nil)

func (c *countingFetcher) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	lf, ok := c.f.(cache.LayerFetcher)
	if !ok {
		return nil, fmt.Errorf("layer %s: %w", desc.Digest, cache.ErrNotFound)
	}
	l, err := lf.FetchLayer(ctx, desc)
	if err != nil {
		return nil, err
	}
	return remote.CountReads(l, func(n int64) { c.n.Add(n) }), nil
}

func (c *countingFetcher) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	rc, err := c.f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{rc: rc, n: &c.n}, nil
}

type countingReadCloser struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReadCloser) Close() error { return c.rc.Close() }

// exportCompression is the compression new layers are made with: the
// first --cache-to that names one (so the cache holds them as asked without
// recompressing), else gzip. Layers that already exist (base images, cache
// hits) keep theirs.
func exportCompression(exports []backends.Export) string {
	for _, e := range exports {
		if e.Options.Compression != "" && e.Options.Compression != "gzip" {
			return e.Options.Compression
		}
	}
	return "gzip"
}

func exportCompressionLevel(exports []backends.Export) int {
	for _, e := range exports {
		if e.Options.CompressionLevel != 0 {
			return e.Options.CompressionLevel
		}
	}
	return 0
}
