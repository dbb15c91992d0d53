package cache

import (
	"context"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/remote"
	"github.com/kiln-build/kiln/internal/stream"
)

// CountingFetcher wraps f so that add is called with the number of bytes
// every blob read through it yields: what an exporter reads, which is what
// it writes. It keeps f's LayerFetcher capability (the layers it returns
// count their reads too), so that wrapping never hides what lets a
// registry mount instead of upload, and its FileFetcher one (a file counts
// as its size); Unwrap returns f.
func CountingFetcher(f Fetcher, add func(int64)) Fetcher {
	c := counting{f: f, add: add}
	if _, ok := f.(LayerFetcher); ok {
		return countingLayers{c}
	}
	return c
}

type counting struct {
	f   Fetcher
	add func(int64)
}

func (c counting) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	rc, err := c.f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return stream.Count(rc, c.add), nil
}

// FetchFile forwards f's FileFetcher capability (ErrNotFile without it)
// and counts the whole file: an exporter links or copies all of it.
func (c counting) FetchFile(ctx context.Context, desc v1.Descriptor) (*os.File, bool, error) {
	ff, ok := c.f.(FileFetcher)
	if !ok {
		return nil, false, ErrNotFile
	}
	file, verified, err := ff.FetchFile(ctx, desc)
	if err != nil {
		return nil, false, err
	}
	if fi, err := file.Stat(); err == nil {
		c.add(fi.Size())
	}
	return file, verified, nil
}

// Unwrap returns the wrapped Fetcher.
func (c counting) Unwrap() Fetcher { return c.f }

type countingLayers struct{ counting }

var (
	_ LayerFetcher = countingLayers{}
	_ FileFetcher  = counting{}
)

func (c countingLayers) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	l, err := c.f.(LayerFetcher).FetchLayer(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	return remote.CountReads(l, c.add), nil
}
