package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/transport"
)

// halfBlob answers a blob GET with the right length but only the first
// half of data, then hangs up.
func halfBlob(data []byte) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		hangUp(w, r)
	}
}

// pushedLayer pushes a random image to reg/repo and returns one of its
// layers' digest and bytes.
func pushedLayer(t *testing.T, c *Client, reg string) (v1.Hash, []byte) {
	t.Helper()
	img := randomImage(t)
	if err := c.Push(context.Background(), img, []string{reg + "/resume:1"}); err != nil {
		t.Fatalf("Push: %v", err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return d, data
}

// TestBlobDownloadResumes: a blob download whose connection drops halfway
// goes on with a Range request (or, from a server that ignores Range, a
// whole new GET whose start is skipped), within the retry budget.
func TestBlobDownloadResumes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		drops       int
		ignoreRange bool
		wantErr     bool
	}{
		{name: "one drop", drops: 1},
		{name: "three drops", drops: 3},
		{name: "server ignores Range", drops: 2, ignoreRange: true},
		{name: "drops past the resume limit", drops: 1 << 30, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu     sync.Mutex
				digest v1.Hash
				data   []byte
			)
			f := &faultInjector{
				match: func(r *http.Request) bool {
					mu.Lock()
					defer mu.Unlock()
					return r.Method == http.MethodGet && digest.Hex != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+digest.String())
				},
				fault: func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					d := data
					mu.Unlock()
					halfBlob(d)(w, r)
				},
			}
			reg := newRegistry(t, func(next http.Handler) http.Handler {
				h := f.wrap(next)
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tt.ignoreRange {
						r.Header.Del("Range")
					}
					h.ServeHTTP(w, r)
				})
			})
			rec := &sleepRecorder{}
			c := newClient(t, Options{Sleep: rec.Sleep})
			d, b := pushedLayer(t, c, reg)
			mu.Lock()
			digest, data = d, b
			mu.Unlock()
			f.mu.Lock()
			f.n = tt.drops
			f.mu.Unlock()

			rc, err := c.Blob(context.Background(), reg+"/resume", d)
			if err != nil {
				t.Fatalf("Blob: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if tt.wantErr {
				if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("reading a blob that always drops: err = %v, want unexpected EOF", err)
				}
				if n := len(rec.got()); n != transport.MaxResumes {
					t.Errorf("%d resumes, want %d", n, transport.MaxResumes)
				}
				return
			}
			if err != nil {
				t.Fatalf("reading the blob: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("read %d bytes that differ from the blob's %d", len(got), len(data))
			}
			if n := f.count(); n != tt.drops {
				t.Errorf("%d drops served, want %d", n, tt.drops)
			}
			if n := len(rec.got()); n != tt.drops {
				t.Errorf("%d waits, want one per drop (%d)", n, tt.drops)
			}
		})
	}
}

// TestHeadUnauthorizedCarriesRegistryMessage: a HEAD has no body, so the
// registry's 401 message comes from the same request as a GET.
func TestHeadUnauthorizedCarriesRegistryMessage(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t, authRegistry(basicAuth, "alice", "s3cret-pass"))
	c := newClient(t, Options{})
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	_, err := c.BlobExists(context.Background(), reg+"/private", d)
	var e *transport.Error
	if !errors.As(err, &e) {
		t.Fatalf("BlobExists error = %v (%T), want *Error", err, err)
	}
	if e.Method != http.MethodHead || e.Status != http.StatusUnauthorized || e.Code != "UNAUTHORIZED" || e.Message != "authentication required" {
		t.Errorf("Error = %+v, want HEAD 401 UNAUTHORIZED: authentication required", e)
	}
	if want := "run `kiln login " + reg + "`"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}
