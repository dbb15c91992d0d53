package remote

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/transport"
)

// The bounds of issue 11 item 2, through the client go-containerregistry
// really uses: each misbehaving registry ends in one clear error within
// its bound.

// TestRedirectLoopRegistry: a registry that redirects a manifest to itself
// is followed MaxRedirects times (ggcr's CheckRedirect sets no limit).
func TestRedirectLoopRegistry(t *testing.T) {
	t.Parallel()
	var loops atomic.Int64
	reg := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				loops.Add(1)
				http.Redirect(w, r, r.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := newClient(t, Options{})
	start := time.Now()
	_, _, err := c.Image(context.Background(), reg+"/loop:1")
	took := time.Since(start)
	if !errors.Is(err, transport.ErrTooManyRedirects) {
		t.Fatalf("Image error = %v, want ErrTooManyRedirects", err)
	}
	var e *transport.Error
	if !errors.As(err, &e) || e.Service != "registry "+reg {
		t.Errorf("error %v (%T): want a *transport.Error naming the registry", err, err)
	}
	if n := loops.Load(); n > 2*(transport.MaxRedirects+1) {
		t.Errorf("%d manifest requests, want at most %d", n, 2*(transport.MaxRedirects+1))
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "stopped after 10 redirects") {
		t.Errorf("error %q: want one line naming the bound", msg)
	}
	t.Logf("%d requests in %v: %v", loops.Load(), took, err)
}

// TestRedirectLoopPing: a registry whose /v2/ ping redirects to itself
// fails naming the redirect bound. ggcr pings such a loopback registry
// over https and http at once and joins both errors, https's "server gave
// HTTP response to HTTPS client" first: the error must be the http one.
func TestRedirectLoopPing(t *testing.T) {
	t.Parallel()
	var loops atomic.Int64
	reg := newRegistry(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			loops.Add(1)
			http.Redirect(w, r, r.URL.Path, http.StatusTemporaryRedirect)
		})
	})
	c := newClient(t, Options{})
	_, _, err := c.Image(context.Background(), reg+"/loop:1")
	if err == nil {
		t.Fatal("Image: no error")
	}
	// The ping's http.Client keeps net/http's own limit of 10.
	msg := err.Error()
	if strings.Contains(msg, "HTTPS client") || !strings.Contains(msg, "registry "+reg) ||
		!strings.Contains(msg, "stopped after 10 redirects") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want the http ping's, naming the registry and the bound", msg)
	}
	if n := loops.Load(); n > 2*(transport.MaxRedirects+1) {
		t.Errorf("%d requests, want at most %d", n, 2*(transport.MaxRedirects+1))
	}
}

// TestSilentRegistry: a registry that accepts connections and never
// answers fails at the response-header bound, not never.
func TestSilentRegistry(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	reg := l.Addr().String()
	const limit = 300 * time.Millisecond
	c := newClient(t, Options{ResponseHeaderTimeout: limit})
	start := time.Now()
	_, _, err = c.Image(context.Background(), reg+"/silent:1")
	took := time.Since(start)
	if !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("Image error = %v, want ErrTimeout", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "registry "+reg) || !strings.Contains(msg, "no response headers within 300ms") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming the registry and the bound", msg)
	}
	if took > limit+3*time.Second {
		t.Errorf("took %v, want about %v", took, limit)
	}
	t.Logf("after %v: %v", took, err)
}

// TestSlowBlob: a blob served at 1 byte per second fails at the idle
// bound instead of never ending.
func TestSlowBlob(t *testing.T) {
	t.Parallel()
	var slow atomic.Bool
	f := &faultInjector{
		n: 1 << 30,
		match: func(r *http.Request) bool {
			return slow.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
		},
		fault: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(1<<20))
			w.WriteHeader(http.StatusOK)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				w.Write([]byte{0})
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-tick.C:
				}
			}
		},
	}
	reg := newRegistry(t, f.wrap)
	const limit = 1500 * time.Millisecond
	c := newClient(t, Options{IdleTimeout: limit})
	d, _ := pushedLayer(t, c, reg)
	slow.Store(true)
	start := time.Now()
	rc, err := c.Blob(context.Background(), reg+"/resume", d)
	if err != nil {
		t.Fatalf("Blob: %v", err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	took := time.Since(start)
	if !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("reading a 1 byte/s blob: %v after %d bytes, want ErrTimeout", err, n)
	}
	if msg := err.Error(); !strings.Contains(msg, reg) || !strings.Contains(msg, "within 1.5s") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming the bound", msg)
	}
	if took > limit+3*time.Second {
		t.Errorf("took %v, want about %v", took, limit)
	}
	t.Logf("%d bytes in %v: %v", n, took, err)
}
