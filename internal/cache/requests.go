package cache

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/transport"
)

// CountedImporter returns imp counting, as a RequestCounter, every HTTP
// request sent through package transport on its behalf: by Import, and by
// the Fetcher it returns, whenever that is used (the solve's lazy layer
// reads and an export's copies of imported blobs count here). The
// Fetcher keeps the LayerFetcher and Mounter capabilities of imp's.
func CountedImporter(imp Importer) Importer {
	return &countedImporter{next: imp}
}

// CountedExporter returns exp counting, as a RequestCounter, every HTTP
// request sent through package transport while it exports, except those
// made through an import's fetcher, which count for the import.
func CountedExporter(exp Exporter) Exporter {
	return &countedExporter{next: exp}
}

type countedImporter struct {
	next Importer
	n    transport.Counter
}

var (
	_ RequestCounter = (*countedImporter)(nil)
	_ RequestCounter = (*countedExporter)(nil)
)

func (c *countedImporter) Import(ctx context.Context) (*Manifest, Fetcher, error) {
	m, f, err := c.next.Import(transport.WithCounter(ctx, &c.n))
	if err != nil {
		return nil, nil, err
	}
	return m, countedFetcher(f, &c.n), nil
}

func (c *countedImporter) Requests() int64 { return c.n.Requests() }

// Unwrap returns the wrapped Importer.
func (c *countedImporter) Unwrap() Importer { return c.next }

type countedExporter struct {
	next Exporter
	n    transport.Counter
}

func (c *countedExporter) Export(ctx context.Context, m *Manifest, src Fetcher) error {
	return c.next.Export(transport.WithCounter(ctx, &c.n), m, src)
}

func (c *countedExporter) Requests() int64 { return c.n.Requests() }

// Unwrap returns the wrapped Exporter.
func (c *countedExporter) Unwrap() Exporter { return c.next }

// countedFetcher wraps f so that its requests count in n, keeping f's
// LayerFetcher and Mounter capabilities (STYLE habit 7). A lazy layer
// keeps the context it was fetched with, so its reads count in n too.
func countedFetcher(f Fetcher, n *transport.Counter) Fetcher {
	c := fetchCounter{f: f, n: n}
	_, layers := f.(LayerFetcher)
	_, mounts := f.(Mounter)
	switch {
	case layers && mounts:
		return countedLayerMounter{countedLayers{c}}
	case layers:
		return countedLayers{c}
	case mounts:
		return countedMounter{c}
	}
	return c
}

type fetchCounter struct {
	f Fetcher
	n *transport.Counter
}

func (c fetchCounter) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	return c.f.Fetch(transport.WithCounter(ctx, c.n), desc)
}

// Unwrap returns the wrapped Fetcher.
func (c fetchCounter) Unwrap() Fetcher { return c.f }

type countedLayers struct{ fetchCounter }

func (c countedLayers) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	return c.f.(LayerFetcher).FetchLayer(transport.WithCounter(ctx, c.n), desc)
}

type countedMounter struct{ fetchCounter }

func (c countedMounter) Mountable(l v1.Layer) (v1.Layer, error) { return c.f.(Mounter).Mountable(l) }

type countedLayerMounter struct{ countedLayers }

func (c countedLayerMounter) Mountable(l v1.Layer) (v1.Layer, error) {
	return c.f.(Mounter).Mountable(l)
}

var (
	_ LayerFetcher = countedLayers{}
	_ Mounter      = countedMounter{}
	_ LayerFetcher = countedLayerMounter{}
	_ Mounter      = countedLayerMounter{}
)
