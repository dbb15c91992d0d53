package transport

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestCounter: every request the server sees counts in the counters of
// its context (a retried 503 and a followed redirect as two each), and
// only in the nearest one; an attempt no server answered does not count.
func TestCounter(t *testing.T) {
	var seen atomic.Int64
	var failed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		switch r.URL.Path {
		case "/flaky":
			if failed.CompareAndSwap(false, true) {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	client := &http.Client{Transport: New(Options{Sleep: (&sleepRecorder{}).Sleep, Jitter: func() float64 { return 0 }})}
	get := func(ctx context.Context, path string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var outer, inner Counter
	ctxOuter := WithCounter(context.Background(), &outer)
	ctxInner := WithCounter(ctxOuter, &inner)
	if WithCounter(ctxInner, &inner) != ctxInner {
		t.Error("adding a counter already there made a new context")
	}
	get(context.Background(), "/ok") // counted nowhere
	get(ctxOuter, "/ok")
	get(ctxInner, "/flaky")
	get(ctxInner, "/moved")
	// No server, no request seen: not counted.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	req, _ := http.NewRequestWithContext(ctxInner, http.MethodGet, gone.URL, nil)
	if resp, err := (&http.Client{Transport: New(Options{RetryBudget: -1})}).Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a closed server answered")
	}
	if got, want := inner.Requests(), int64(4); got != want {
		t.Errorf("inner counter: %d requests, want %d (a retried 503 and a redirect count as two each)", got, want)
	}
	if got, want := outer.Requests(), int64(1); got != want {
		t.Errorf("outer counter: %d requests, want %d", got, want)
	}
	if got, want := seen.Load(), int64(6); got != want {
		t.Errorf("server saw %d requests, want %d", got, want)
	}
}
