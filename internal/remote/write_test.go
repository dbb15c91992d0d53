package remote

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestWriteLayerAfterMiss: a WriteLayer right after BlobExists found the
// blob missing uploads it without a second HEAD, and the blob arrives
// whole under its digest. Without that answer (or after it was used once)
// WriteLayer asks first; a mountable layer is always asked about and
// still mounted, not uploaded.
func TestWriteLayerAfterMiss(t *testing.T) {
	// This in-process registry shares blobs between repositories and
	// mounts nothing: HEADs in write/to are answered 404, so that a
	// mountable layer meets a miss there and the mount request shows.
	host := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/write/to/blobs/") {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	newLayer := func() (v1.Layer, v1.Hash) {
		l, err := random.Layer(3000, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return l, d
	}
	requests := func(rec *countingTransport, method string, d v1.Hash) []string {
		return rec.matching(func(r string) bool {
			return strings.HasPrefix(r, method+" ") && strings.Contains(r, d.Hex)
		})
	}

	t.Run("after a miss", func(t *testing.T) {
		rec := &countingTransport{inner: http.DefaultTransport.(*http.Transport).Clone()}
		c := newClient(t, Options{Transport: rec})
		repo := host + "/write/miss"
		l, d := newLayer()
		if ok, err := c.BlobExists(ctx, repo, d); err != nil || ok {
			t.Fatalf("BlobExists of a new blob = %v, %v", ok, err)
		}
		if err := c.WriteLayer(ctx, repo, l); err != nil {
			t.Fatal(err)
		}
		if heads := requests(rec, "HEAD", d); len(heads) != 1 {
			t.Errorf("HEADs of the blob: %v, want only BlobExists's", heads)
		}
		if commits := requests(rec, "PUT", v1.Hash{Hex: d.Hex}); len(commits) != 1 || !strings.HasSuffix(commits[0], " 201") {
			t.Errorf("upload commits naming the digest: %v, want one, 201", commits)
		}
		checkBlob(t, newClient(t, Options{}), repo, l)
		// Written, the blob is now held: nothing more is asked.
		if ok, err := c.BlobExists(ctx, repo, d); err != nil || !ok {
			t.Fatalf("BlobExists after WriteLayer = %v, %v", ok, err)
		}
		if heads := requests(rec, "HEAD", d); len(heads) != 1 {
			t.Errorf("HEADs of the blob after it was written: %v, want still one", heads)
		}
	})

	t.Run("no earlier answer", func(t *testing.T) {
		rec := &countingTransport{inner: http.DefaultTransport.(*http.Transport).Clone()}
		c := newClient(t, Options{Transport: rec})
		repo := host + "/write/fresh"
		l, d := newLayer()
		if err := c.WriteLayer(ctx, repo, l); err != nil {
			t.Fatal(err)
		}
		if heads := requests(rec, "HEAD", d); len(heads) != 1 {
			t.Errorf("HEADs of the blob: %v, want ggcr's one", heads)
		}
		checkBlob(t, c, repo, l)
	})

	t.Run("mountable", func(t *testing.T) {
		rec := &countingTransport{inner: http.DefaultTransport.(*http.Transport).Clone()}
		c := newClient(t, Options{Transport: rec})
		l, d := newLayer()
		if err := c.WriteLayer(ctx, host+"/write/from", l); err != nil {
			t.Fatal(err)
		}
		src, err := c.Layer(ctx, host+"/write/from", d)
		if err != nil {
			t.Fatal(err)
		}
		repo := host + "/write/to"
		if ok, err := c.BlobExists(ctx, repo, d); err != nil || ok {
			t.Fatalf("BlobExists in write/to = %v, %v; want a miss", ok, err)
		}
		if err := c.WriteLayer(ctx, repo, src); err != nil {
			t.Fatal(err)
		}
		// BlobExists's HEAD, ggcr's, and ggcr's offer of the mount.
		if heads := rec.matching(func(r string) bool {
			return strings.HasPrefix(r, "HEAD /v2/write/to/blobs/"+d.String())
		}); len(heads) != 2 {
			t.Errorf("HEADs in write/to: %v, want two", heads)
		}
		mounts := rec.matching(func(r string) bool {
			return strings.HasPrefix(r, "POST /v2/write/to/") && strings.Contains(r, "mount=sha256%3A"+d.Hex) && strings.Contains(r, "from=write%2Ffrom")
		})
		if len(mounts) != 1 {
			t.Errorf("mount requests: %v, want one (all: %v)", mounts, rec.matching(func(string) bool { return true }))
		}
	})
}

// checkBlob reads l's digest from repo through c and compares its bytes.
func checkBlob(t *testing.T, c *Client, repo string, l v1.Layer) {
	t.Helper()
	d, _ := l.Digest()
	rc, err := c.Blob(context.Background(), repo, d)
	if err != nil {
		t.Fatalf("reading the written blob: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("reading the written blob: %v", err)
	}
	lr, _ := l.Compressed()
	want, _ := io.ReadAll(lr)
	lr.Close()
	if !bytes.Equal(got, want) {
		t.Errorf("written blob: %d bytes, want the layer's %d", len(got), len(want))
	}
}
