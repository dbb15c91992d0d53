package solve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/store"
)

// Records returns the step results an export in mode holds: for ModeMin
// the steps whose results make up the target's filesystem (its lineage,
// through base stages); for ModeMax every filesystem step of every stage
// solved.
func (r *Result) Records(mode cache.Mode) []cache.Record {
	if mode == cache.ModeMax {
		return r.all
	}
	var rev []cache.Record
	for st := r.target; st != nil; st = st.prev {
		rev = append(rev, st.finalRecords()...)
	}
	out := make([]cache.Record, 0, len(rev))
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return out
}

// Fetcher reads any layer the solve saw (store, base image, imported
// cache) by digest, for exporters. It also offers the layers themselves
// (cache.LayerFetcher), so a registry exporter can mount what is already
// in its registry, and the state dir's blob files (cache.FileFetcher), so
// a local exporter can link them.
func (r *Result) Fetcher() cache.Fetcher { return resultFetcher{r} }

type resultFetcher struct{ r *Result }

var (
	_ cache.LayerFetcher = resultFetcher{}
	_ cache.FileFetcher  = resultFetcher{}
)

// FetchFile opens the layer's blob in the state dir. It is verified (no
// need to hash it again) only when this build's store wrote and checked it
// and it has not changed since (store.OpenBlobFile); one an earlier build
// stored is hashed by the exporter as it copies it. An imported layer is
// fetched into the store first, as Fetch would. A layer the solve saw
// whose blob is not in the store yet (a base image layer, an imported one
// never needed) is cache.ErrNotFile: Fetch reads it.
func (f resultFetcher) FetchFile(ctx context.Context, desc v1.Descriptor) (*os.File, bool, error) {
	if _, ok := f.r.layers[desc.Digest]; !ok && f.r.solver.mountable(desc.Digest) == nil {
		return nil, false, fmt.Errorf("layer %s: %w", desc.Digest, cache.ErrNotFound)
	}
	if v, ok := f.r.solver.imported.Load(desc.Digest); ok {
		// An imported layer: fetched into the store now if it never was,
		// and its stored bytes checked against the record's media type,
		// as Fetch would.
		if err := v.(*importedLayer).ensure(ctx); err != nil {
			return nil, false, err
		}
	}
	file, verified, err := f.r.solver.opts.Store.OpenBlobFile(desc.Digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, cache.ErrNotFile
	}
	return file, verified, err
}

func (f resultFetcher) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	l, err := f.FetchLayer(ctx, desc)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

func (f resultFetcher) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	if m := f.r.solver.mountable(desc.Digest); m != nil {
		return m, nil
	}
	l, ok := f.r.layers[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("layer %s: %w", desc.Digest, cache.ErrNotFound)
	}
	return l, nil
}

// PushLayers is Layers, except that a layer from an imported registry
// cache whose bytes were never needed is the registry's own layer, so a
// push to that registry mounts it instead of moving its bytes.
func (r *Result) PushLayers() []v1.Layer {
	out := make([]v1.Layer, len(r.Layers))
	for i, l := range r.Layers {
		out[i] = l
		if d, err := l.Digest(); err == nil {
			if m := r.solver.mountable(d); m != nil {
				out[i] = m
			}
		}
	}
	return out
}
