package solve

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
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
// in its registry.
func (r *Result) Fetcher() cache.Fetcher { return resultFetcher{r} }

type resultFetcher struct{ r *Result }

var _ cache.LayerFetcher = resultFetcher{}

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
