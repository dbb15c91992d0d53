package registry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
	"github.com/kiln-build/kiln/internal/remote"
)

// requestLog is a registry handler that records "METHOD path" of every
// request before serving it.
type requestLog struct {
	next http.Handler
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

// heads returns how many HEAD requests asked about the blob d.
func (l *requestLog) heads(d v1.Hash) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if strings.HasPrefix(r, "HEAD ") && strings.HasSuffix(r, "/blobs/"+d.String()) {
			n++
		}
	}
	return n
}

// TestExportHeads: an export asks about each blob it may write once (it
// used to ask twice: the exporter's check and then ggcr's own before the
// upload), and a later export by the same process does not ask about
// blobs it wrote. The cache reads back whole from another client.
func TestExportHeads(t *testing.T) {
	h := &requestLog{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client, err := remote.New(remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(srv.URL, "http://") + "/count/app:cache"
	get := func() (*remote.Client, error) { return client, nil }
	exp := NewExporter(ExportConfig{Ref: ref}, get)
	src := cachetest.NewBlobs()
	ctx := context.Background()

	first := cachetest.RandomManifest(src, 1, 2)
	// The same seed makes the same first layers: one layer is new.
	second := cachetest.RandomManifest(src, 1, 3)
	for _, tc := range []struct {
		name string
		m    *cache.Manifest
		// want is the HEADs per blob: the config, then each layer.
		want []int
	}{
		{"into an empty repository", first, []int{1, 1, 1}},
		{"again with one more layer", second, []int{1, 1, 1, 1}},
	} {
		if err := exp.Export(ctx, tc.m, src); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, im, err := cache.EncodeImageManifest(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, d := range append([]v1.Descriptor{im.Config}, im.Layers...) {
			got = append(got, h.heads(d.Digest))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: HEADs per blob (config, layers...) = %v, want %v (in all, since the start)", tc.name, got, tc.want)
		}
	}

	other, err := remote.New(remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, f, err := NewImporter(ImportConfig{Ref: ref}, func() (*remote.Client, error) { return other, nil }).Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Records) != len(second.Records) {
		t.Fatalf("imported %d records, want %d", len(m.Records), len(second.Records))
	}
	for _, l := range m.Layers() {
		rc, err := f.Fetch(ctx, l.Descriptor())
		if err != nil {
			t.Fatalf("fetching layer %s: %v", l.Digest, err)
		}
		_, err = io.Copy(io.Discard, rc) // the fetcher checks the digest
		rc.Close()
		if err != nil {
			t.Errorf("reading layer %s: %v", l.Digest, err)
		}
	}
}
