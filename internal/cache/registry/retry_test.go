package registry

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache/cachetest"
	"github.com/kiln-build/kiln/internal/remote"
)

// busyPatches answers the first n blob upload PATCHes 503, after reading
// their bodies, as a registry behind a busy load balancer does.
type busyPatches struct {
	next http.Handler
	mu   sync.Mutex
	n    int
}

func (b *busyPatches) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/blobs/uploads/") {
		b.mu.Lock()
		busy := b.n > 0
		b.n--
		b.mu.Unlock()
		if busy {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	b.next.ServeHTTP(w, r)
}

// TestPutRetriedUpload: a blob upload answered 503 is sent again whole. A
// seekable source (the cache manifest's bytes) starts over; a stream that
// cannot fails with a clear error, never a short body.
func TestPutRetriedUpload(t *testing.T) {
	noSleep := func(context.Context, time.Duration) error { return nil }
	client, err := remote.New(remote.Options{Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	get := func() (*remote.Client, error) { return client, nil }
	data := bytes.Repeat([]byte("kiln"), 1000)
	src := cachetest.NewBlobs()
	l := src.Add(data)
	desc := v1.Descriptor{MediaType: types.OCILayer, Digest: l.Digest, Size: l.Size}

	tests := []struct {
		name    string
		r       func() io.Reader
		wantErr string
		// hasFirst asks Has first, as an export does: the upload then
		// starts without another HEAD.
		hasFirst bool
	}{
		{"seekable", func() io.Reader { return bytes.NewReader(data) }, "", false},
		{"stream", func() io.Reader { return io.MultiReader(bytes.NewReader(data)) }, "cannot send it again", false},
		{"seekable after Has", func() io.Reader { return bytes.NewReader(data) }, "", true},
		{"stream after Has", func() io.Reader { return io.MultiReader(bytes.NewReader(data)) }, "cannot send it again", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &busyPatches{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))), n: 1}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			r := newRepo(strings.TrimPrefix(srv.URL, "http://")+"/retry/put:cache", get)
			if tt.hasFirst {
				if ok, err := r.Has(context.Background(), desc); err != nil || ok {
					t.Fatalf("Has before Put = %v, %v; want false", ok, err)
				}
			}
			err := r.Put(context.Background(), desc, tt.r())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Put after one 503: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Put of a stream after one 503 = %v, want an error containing %q", err, tt.wantErr)
			case tt.wantErr != "":
				return
			}
			ok, err := r.Has(context.Background(), desc)
			if err != nil || !ok {
				t.Fatalf("Has after Put = %v, %v; want true", ok, err)
			}
			rc, err := r.Fetch(context.Background(), desc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("stored blob: %d bytes, err %v; want the %d bytes put", len(got), err, len(data))
			}
		})
	}
}
