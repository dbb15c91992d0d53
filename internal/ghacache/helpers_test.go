package ghacache

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// testJWT is a token shaped like a runner's ACTIONS_RUNTIME_TOKEN:
// go-actions-cache parses (without verifying) its ac, exp and nbf claims.
func testJWT(t *testing.T) string {
	t.Helper()
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{
		"ac":  `[{"Scope":"refs/heads/main","Permission":3}]`,
		"nbf": time.Now().Add(-time.Minute).Unix(),
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	body := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	m := hmac.New(sha256.New, []byte("test"))
	m.Write([]byte(body))
	return body + "." + enc.EncodeToString(m.Sum(nil))
}

// fakeClock is an injectable clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testServer is a Handler on an httptest server on 127.0.0.1.
type testServer struct {
	URL    string
	client *http.Client
	srv    *httptest.Server
	h      *Handler
	opts   Options
	token  string
}

// newTestServer starts a server on dir (a new temp dir when opts.Dir is
// empty). Its token, when opts.Token is empty, is set to a fresh JWT.
func newTestServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Token == "" {
		opts.Token = testJWT(t)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	ts := &testServer{URL: srv.URL, client: srv.Client(), srv: srv, h: h, opts: opts, token: opts.Token}
	t.Cleanup(ts.stop)
	return ts
}

// stop closes the server and releases its directory (twice is fine).
func (ts *testServer) stop() {
	if ts.h == nil {
		return
	}
	ts.srv.Close()
	ts.h.Close()
	ts.h = nil
}

// do sends a request with the server's token and returns status and body.
func (ts *testServer) do(t *testing.T, method, path string, hdr map[string]string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = ts.URL + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.token)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// twirp calls a v2 method with a JSON body and decodes the answer into a map.
func (ts *testServer) twirp(t *testing.T, method string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	st, out, _ := ts.do(t, "POST", "/twirp/github.actions.results.api.v1.CacheService/"+method, map[string]string{"Content-Type": "application/json"}, b)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s answered %d with non-JSON %q", method, st, out)
	}
	return st, m
}

// randomBytes is n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// e2e reports whether external parts are required (KILN_E2E set): then a
// missing part fails the test instead of skipping it.
func requireE2E(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("KILN_E2E") == "" {
		t.Skipf("KILN_E2E is unset: skipping the test that needs %s", what)
	}
}

// requestLog is a slog.Handler that counts the server's request lines by
// method and blob operation ("PUT block", "PUT blocklist", "GET").
type requestLog struct {
	mu     sync.Mutex
	counts map[string]int
}

func newRequestLog() *requestLog { return &requestLog{counts: map[string]int{}} }

func (l *requestLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *requestLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *requestLog) WithGroup(string) slog.Handler            { return l }

func (l *requestLog) Handle(_ context.Context, r slog.Record) error {
	var method, comp string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "method":
			method = a.Value.String()
		case "comp":
			comp = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.counts[strings.TrimSpace(method+" "+comp)]++
	l.mu.Unlock()
	return nil
}

func (l *requestLog) count(what string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[what]
}
