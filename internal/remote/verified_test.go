package remote

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/stream"
)

// flipBlob corrupts one byte of the first bad GETs of the blob digest.
type flipBlob struct {
	mu     sync.Mutex
	digest string
	bad    int // how many GETs to corrupt
	gets   int
}

func (f *flipBlob) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+f.digest) {
			next.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		f.gets++
		corrupt := f.gets <= f.bad
		f.mu.Unlock()
		if !corrupt {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if len(body) > 0 {
			body[len(body)/2] ^= 0x01
		}
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
}

func (f *flipBlob) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets
}

// TestImageConfigFetchedAgain: a base image config whose download has a
// flipped byte is fetched again and the right config is returned; one that
// is always wrong fails after MaxFetchAttempts downloads with
// ErrDigestMismatch. go-containerregistry alone keeps the bad bytes.
func TestImageConfigFetchedAgain(t *testing.T) {
	t.Parallel()
	img := randomImage(t)
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		bad      int
		wantErr  bool
		wantGets int
	}{
		{"one bad download", 1, false, 2},
		{"three bad downloads", 3, false, 4},
		{"always bad", 100, true, MaxFetchAttempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &flipBlob{digest: cfgName.String(), bad: tt.bad}
			reg := newRegistry(t, f.wrap)
			c := newClient(t, Options{})
			ref := reg + "/base:1"
			if err := c.Push(context.Background(), img, []string{ref}); err != nil {
				t.Fatalf("Push: %v", err)
			}
			got, _, err := c.Image(context.Background(), ref)
			if tt.wantErr {
				if !errors.Is(err, ErrDigestMismatch) {
					t.Fatalf("Image error = %v, want ErrDigestMismatch", err)
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "config") {
					t.Errorf("error %q: want one line naming the config", msg)
				}
			} else {
				if err != nil {
					t.Fatalf("Image: %v", err)
				}
				raw, err := got.RawConfigFile()
				if err != nil || !bytes.Equal(raw, want) {
					t.Fatalf("RawConfigFile = %d bytes, %v; want the pushed config", len(raw), err)
				}
				cf, _ := got.ConfigFile()
				ls, err := got.Layers()
				if err != nil {
					t.Fatal(err)
				}
				for i, l := range ls {
					id, err := l.DiffID()
					if err != nil || id != cf.RootFS.DiffIDs[i] {
						t.Errorf("layer %d diff ID %s, %v; want %s", i, id, err, cf.RootFS.DiffIDs[i])
					}
				}
			}
			if g := f.count(); g != tt.wantGets {
				t.Errorf("%d config downloads, want %d", g, tt.wantGets)
			}
		})
	}
}

// TestManifestTooLarge: a manifest over MaxManifestSize fails with a "too
// large" error naming it and the cap, without being read whole.
func TestManifestTooLarge(t *testing.T) {
	t.Parallel()
	huge := bytes.Repeat([]byte(" "), MaxManifestSize+10)
	for _, chunked := range []bool{false, true} {
		reg := newRegistry(t, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.Contains(r.URL.Path, "/manifests/") {
					next.ServeHTTP(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				if r.Method == http.MethodHead {
					return
				}
				if chunked {
					w.(http.Flusher).Flush() // no Content-Length
				}
				w.Write(huge)
			})
		})
		c := newClient(t, Options{})
		_, _, err := c.Image(context.Background(), reg+"/huge:1")
		if !errors.Is(err, stream.ErrTooLarge) {
			t.Fatalf("chunked %v: Image error = %v, want ErrTooLarge", chunked, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "/v2/huge/manifests/1") || !strings.Contains(msg, "4 MiB") {
			t.Errorf("error %q does not name the manifest and the cap", msg)
		}
		_, _, _, err = c.Manifest(context.Background(), reg+"/huge:1")
		if !errors.Is(err, stream.ErrTooLarge) {
			t.Errorf("Manifest error = %v, want ErrTooLarge", err)
		}
	}
}
