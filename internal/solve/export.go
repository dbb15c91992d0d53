package solve

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/store"
)

// Entries returns the step results an export in mode holds: for ModeMin
// the steps whose results make up the target's filesystem (its lineage,
// through base stages); for ModeMax every filesystem step of every stage
// solved.
func (r *Result) Entries(mode cache.Mode) []cache.Entry {
	if mode == cache.ModeMax {
		return r.all
	}
	var rev []cache.Entry
	for st := r.target; st != nil; st = st.prev {
		rev = append(rev, st.entries...)
	}
	out := make([]cache.Entry, 0, len(rev))
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return out
}

// Fetcher reads any layer the solve saw (store, base image, imported
// cache) by digest, for exporters.
func (r *Result) Fetcher() cache.Fetcher {
	return cache.FetcherFunc(func(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
		l, ok := r.layers[desc.Digest]
		if !ok {
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, cache.ErrNotFound)
		}
		return l.Compressed()
	})
}

func cacheLayers(ls []store.Layer) []cache.Layer {
	out := make([]cache.Layer, len(ls))
	for i, l := range ls {
		out[i] = cache.Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: l.DiffID}
	}
	return out
}
