package remote

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// newRegistry serves an in-process registry, optionally behind wrap, on
// 127.0.0.1 and returns its HOST:PORT.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatalf("random.Image: %v", err)
	}
	return img
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return h
}

// sleepRecorder is an Options.Sleep that returns at once and remembers how
// long it was asked to wait.
type sleepRecorder struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sleeps = append(s.sleeps, d)
	return ctx.Err()
}

func (s *sleepRecorder) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.sleeps...)
}

// newClient is New that fails the test on error, with fast retries unless
// opts says otherwise.
func newClient(t *testing.T, opts Options) *Client {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// logBuffer returns a debug-level logger writing to a buffer.
func logBuffer() (*slog.Logger, *imagetest.SyncBuffer) {
	b := &imagetest.SyncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// authMode selects how authRegistry challenges clients.
type authMode int

const (
	basicAuth authMode = iota
	tokenAuth
)

const testToken = "tok-SECRET-6d1f0c"

// authRegistry wraps a registry so that every /v2/ request needs user/pass,
// either directly (basic) or through a token server at /token (bearer).
func authRegistry(mode authMode, user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				u, p, ok := r.BasicAuth()
				if !ok || u != user || p != pass {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusUnauthorized)
					fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, testToken, testToken)
				return
			}
			authorized := false
			switch mode {
			case basicAuth:
				u, p, ok := r.BasicAuth()
				authorized = ok && u == user && p == pass
				if !authorized {
					w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				}
			case tokenAuth:
				authorized = r.Header.Get("Authorization") == "Bearer "+testToken
				if !authorized {
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, r.Host))
				}
			}
			if !authorized {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func basicAuthValue(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// countingTransport records every request it forwards.
type countingTransport struct {
	inner http.RoundTripper
	mu    sync.Mutex
	reqs  []string // "METHOD PATH?QUERY STATUS"
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, fmt.Sprintf("%s %s?%s %d", r.Method, r.URL.Path, r.URL.RawQuery, status))
	c.mu.Unlock()
	return resp, err
}

func (c *countingTransport) matching(f func(string) bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.reqs {
		if f(r) {
			out = append(out, r)
		}
	}
	return out
}
