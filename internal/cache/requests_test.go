package cache

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/transport"
)

// httpBackend is an importer, exporter and fetcher that make one request
// per call through a transport.Transport.
type httpBackend struct {
	url    string
	client *http.Client
}

func (b httpBackend) get(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func (b httpBackend) Import(ctx context.Context) (*Manifest, Fetcher, error) {
	return &Manifest{}, layerMounter{b}, b.get(ctx)
}

func (b httpBackend) Export(ctx context.Context, _ *Manifest, src Fetcher) error {
	if err := b.get(ctx); err != nil {
		return err
	}
	rc, err := src.Fetch(ctx, v1.Descriptor{})
	if err != nil {
		return err
	}
	return rc.Close()
}

func (b httpBackend) Fetch(ctx context.Context, _ v1.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), b.get(ctx)
}

type layerMounter struct{ httpBackend }

func (layerMounter) FetchLayer(context.Context, v1.Descriptor) (v1.Layer, error) { return nil, nil }
func (layerMounter) Mountable(l v1.Layer) (v1.Layer, error)                      { return l, nil }

// TestCountedImportExport: an import counts its own request and those of
// its fetcher, also when an export reads through it; the export counts
// only its own; the fetcher keeps its capabilities.
func TestCountedImportExport(t *testing.T) {
	t.Parallel()
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen.Add(1) }))
	defer srv.Close()
	b := httpBackend{url: srv.URL, client: &http.Client{Transport: transport.New(transport.Options{})}}
	imp, exp := CountedImporter(b), CountedExporter(b)
	ctx := context.Background()
	_, f, err := imp.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(LayerFetcher); !ok {
		t.Error("the counted fetcher lost FetchLayer")
	}
	if _, ok := f.(Mounter); !ok {
		t.Error("the counted fetcher lost Mountable")
	}
	rc, err := f.Fetch(ctx, v1.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := exp.Export(ctx, &Manifest{}, f); err != nil {
		t.Fatal(err)
	}
	if got := imp.(RequestCounter).Requests(); got != 3 {
		t.Errorf("import: %d requests, want 3 (import, fetch, the export's fetch through it)", got)
	}
	if got := exp.(RequestCounter).Requests(); got != 1 {
		t.Errorf("export: %d requests, want 1", got)
	}
	if got := seen.Load(); got != 4 {
		t.Errorf("server saw %d requests, want 4", got)
	}
}
