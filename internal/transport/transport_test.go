package transport

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// authWrapper is a wrapper as a client adds one (a token header), with
// the Unwrap every wrapper should have.
type authWrapper struct{ next http.RoundTripper }

func (a authWrapper) RoundTrip(r *http.Request) (*http.Response, error) { return a.next.RoundTrip(r) }
func (a authWrapper) Unwrap() http.RoundTripper                         { return a.next }

// opaqueWrapper hides what it wraps.
type opaqueWrapper struct{ next http.RoundTripper }

func (o opaqueWrapper) RoundTrip(r *http.Request) (*http.Response, error) { return o.next.RoundTrip(r) }

func TestAsFindsTransportThroughWrappers(t *testing.T) {
	t.Parallel()
	base := &http.Transport{}
	tr := New(Options{Base: base})
	if got, ok := As[*Transport](authWrapper{authWrapper{tr}}); !ok || got != tr {
		t.Errorf("As through two wrappers = %v, %v; want the Transport", got, ok)
	}
	if got, ok := As[*http.Transport](authWrapper{tr}); !ok || got != base {
		t.Errorf("As below the Transport = %v, %v; want Options.Base", got, ok)
	}
	if _, ok := As[*Transport](opaqueWrapper{tr}); ok {
		t.Errorf("As found a Transport behind a wrapper without Unwrap")
	}
	if _, ok := As[*Transport](nil); ok {
		t.Errorf("As(nil) found something")
	}
	var _ interface{ CloseIdleConnections() } = tr
	tr.CloseIdleConnections() // must not panic, with or without connections
}

// TestResumeDroppedDownload: a download that Resumable allows goes on
// with a Range request after its connection drops halfway; one it does
// not allow fails.
func TestResumeDroppedDownload(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for _, allowed := range []bool{true, false} {
		t.Run(strconv.FormatBool(allowed), func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Content-Length", strconv.Itoa(len(data)))
					w.WriteHeader(200)
					w.Write(data[:len(data)/2])
					w.(http.Flusher).Flush()
					hangUp(w, r)
					return
				}
				http.ServeContent(w, r, "blob", zeroTime, bytes.NewReader(data))
			}))
			rec := &sleepRecorder{}
			rt := New(Options{Sleep: rec.Sleep, Resumable: func(r *http.Request) bool {
				return allowed && strings.HasPrefix(r.URL.Path, "/blobs/")
			}})
			resp, err := get(t, rt, srv.URL+"/blobs/sha256:abc")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !allowed {
				if err == nil {
					t.Fatalf("read a dropped download whole without resuming")
				}
				return
			}
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if !bytes.Equal(got, data) || n.Load() != 2 || len(rec.got()) != 1 {
				t.Errorf("read %d bytes in %d requests with %d waits, want %d in 2 with 1", len(got), n.Load(), len(rec.got()), len(data))
			}
		})
	}
}

var zeroTime time.Time
