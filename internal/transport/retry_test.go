package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetryStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		wantTries int
	}{
		{http.StatusRequestTimeout, 2},
		{http.StatusTooManyRequests, 2},
		{http.StatusInternalServerError, 2},
		{http.StatusBadGateway, 2},
		{http.StatusServiceUnavailable, 2},
		{http.StatusGatewayTimeout, 2},
		{http.StatusNotFound, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusNotImplemented, 1},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			s := &script{steps: []http.HandlerFunc{reply(tt.status, nil, "first"), reply(200, nil, "ok")}}
			srv := serve(t, s)
			rec := &sleepRecorder{}
			rt := New(Options{Sleep: rec.Sleep})
			resp, err := get(t, rt, srv.URL+"/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := s.count(); got != tt.wantTries {
				t.Errorf("requests = %d, want %d", got, tt.wantTries)
			}
			wantBody := "ok"
			if tt.wantTries == 1 {
				wantBody = "first"
			}
			if string(body) != wantBody {
				t.Errorf("body = %q, want %q", body, wantBody)
			}
			if got := len(rec.got()); got != tt.wantTries-1 {
				t.Errorf("waits = %d, want %d", got, tt.wantTries-1)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	date := clock.Now().Add(42 * time.Second).Format(http.TimeFormat)
	tests := []struct {
		name   string
		header string
		want   time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"http date", date, 42 * time.Second},
		{"zero", "0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &script{steps: []http.HandlerFunc{reply(503, map[string]string{"Retry-After": tt.header}, ""), reply(200, nil, "")}}
			srv := serve(t, s)
			rec := &sleepRecorder{}
			rt := New(Options{Sleep: rec.Sleep, Now: clock.Now})
			resp, err := get(t, rt, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if diff := cmp.Diff([]time.Duration{tt.want}, rec.got()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetryBudget: a host that stays down is tried until the next wait
// would pass the budget; the answer then says how often and how long.
func TestRetryBudget(t *testing.T) {
	t.Parallel()
	s := &script{steps: []http.HandlerFunc{reply(503, nil, "backend down for maintenance")}}
	srv := serve(t, s)
	clock := newFakeClock()
	rt := New(Options{Sleep: clock.Sleep, Now: clock.Now, RetryBudget: 10 * time.Second, Jitter: func() float64 { return 0.5 }})
	start := clock.Now()
	resp, err := get(t, rt, srv.URL+"/v2/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// 0.25+0.5+1+2+4 = 7.75s of waits; the next (8s) passes the budget.
	if got, want := s.count(), 6; got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	if spent := clock.Now().Sub(start); spent > 10*time.Second {
		t.Errorf("spent %v, more than the budget", spent)
	}
	e := NewError(resp)
	if e.Attempts != 6 || e.Elapsed != 7750*time.Millisecond {
		t.Errorf("attempts %d in %v, want 6 in 7.75s", e.Attempts, e.Elapsed)
	}
	want := "GET " + srv.URL + "/v2/: 503 Service Unavailable: backend down for maintenance (gave up after 6 attempts in 7.8s)"
	if got := e.Error(); got != want {
		t.Errorf("error = %q\nwant    %q", got, want)
	}
}

func TestRetryDisabled(t *testing.T) {
	t.Parallel()
	s := &script{steps: []http.HandlerFunc{reply(502, nil, "bad gateway")}}
	srv := serve(t, s)
	rec := &sleepRecorder{}
	rt := New(Options{Sleep: rec.Sleep, RetryBudget: -1})
	resp, err := get(t, rt, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.count() != 1 || len(rec.got()) != 0 {
		t.Errorf("%d requests and waits %v, want 1 and none", s.count(), rec.got())
	}
	if n, _ := Attempts(resp.Request); n != 0 {
		t.Errorf("Attempts = %d, want 0 for a request tried once", n)
	}
}

// TestRetryOnlyReplayable: a body that cannot be sent again is sent once;
// one with GetBody (and a bodyless POST) is retried whole.
func TestRetryOnlyReplayable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		method    string
		body      func() io.Reader
		wantTries int
	}{
		{"PUT bytes", http.MethodPut, func() io.Reader { return bytes.NewReader([]byte("payload")) }, 2},
		{"POST bytes", http.MethodPost, func() io.Reader { return strings.NewReader("payload") }, 2},
		{"POST no body", http.MethodPost, func() io.Reader { return nil }, 2},
		{"PATCH stream", http.MethodPatch, func() io.Reader { return io.MultiReader(strings.NewReader("payload")) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var bodies []string
			s := &script{steps: []http.HandlerFunc{reply(503, nil, ""), reply(201, nil, "")}}
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				mu.Unlock()
				s.ServeHTTP(w, r)
			}))
			rt := New(Options{Sleep: (&sleepRecorder{}).Sleep})
			req, err := http.NewRequest(tt.method, srv.URL, tt.body())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := s.count(); got != tt.wantTries {
				t.Errorf("requests = %d, want %d", got, tt.wantTries)
			}
			for i, b := range bodies {
				if want := map[bool]string{true: "", false: "payload"}[tt.body() == nil]; b != want {
					t.Errorf("body %d = %q, want %q", i, b, want)
				}
			}
		})
	}
}

func TestRetryConnectionErrors(t *testing.T) {
	t.Parallel()
	t.Run("dropped connection is retried", func(t *testing.T) {
		t.Parallel()
		s := &script{steps: []http.HandlerFunc{hangUp, reply(200, nil, "ok")}}
		srv := serve(t, s)
		rt := New(Options{Base: fresh(), Sleep: (&sleepRecorder{}).Sleep})
		resp, err := get(t, rt, srv.URL)
		if err != nil {
			t.Fatalf("RoundTrip: %v", err)
		}
		resp.Body.Close()
		if s.count() != 2 {
			t.Errorf("requests = %d, want 2", s.count())
		}
	})
	t.Run("dropped every time says how often", func(t *testing.T) {
		t.Parallel()
		s := &script{steps: []http.HandlerFunc{hangUp}}
		srv := serve(t, s)
		clock := newFakeClock()
		rt := New(Options{Base: fresh(), Sleep: clock.Sleep, Now: clock.Now, RetryBudget: 2 * time.Second, Jitter: func() float64 { return 0.5 }})
		_, err := get(t, rt, srv.URL)
		var re *RetryError
		if !errors.As(err, &re) {
			t.Fatalf("error = %v (%T), want *RetryError", err, err)
		}
		if re.Attempts != 4 || !strings.Contains(err.Error(), "gave up after 4 attempts in 1.8s") {
			t.Errorf("error = %q (%d attempts), want 4 attempts in 1.75s", err, re.Attempts)
		}
	})
	t.Run("refused is not retried", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		rec := &sleepRecorder{}
		rt := New(Options{Sleep: rec.Sleep})
		if _, err := get(t, rt, "http://"+addr); err == nil {
			t.Fatal("RoundTrip to a closed port succeeded")
		}
		if n := len(rec.got()); n != 0 {
			t.Errorf("%d waits, want none", n)
		}
	})
}

// TestHostBackOffShared: once a host said to wait, other requests to it
// wait too before their first attempt; other hosts do not.
func TestHostBackOffShared(t *testing.T) {
	t.Parallel()
	throttled := &script{steps: []http.HandlerFunc{reply(429, map[string]string{"Retry-After": "30"}, "slow down"), reply(200, nil, "")}}
	other := &script{steps: []http.HandlerFunc{reply(200, nil, "")}}
	srvA, srvB := serve(t, throttled), serve(t, other)
	clock := newFakeClock()
	rec := &sleepRecorder{} // does not move the clock: the block stays
	rt := New(Options{Sleep: rec.Sleep, Now: clock.Now})

	resp, err := get(t, rt, srvA.URL+"/first")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = get(t, rt, srvA.URL+"/second")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = get(t, rt, srvB.URL+"/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// first: 429, waits 30s, 200; second: waits 30s, then 200 at once;
	// the other host: no wait.
	if diff := cmp.Diff([]time.Duration{30 * time.Second, 30 * time.Second}, rec.got()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if got := throttled.count(); got != 3 {
		t.Errorf("throttled host got %d requests, want 3 (the second request was not throttled again)", got)
	}
	clock.mu.Lock()
	clock.now = clock.now.Add(31 * time.Second)
	clock.mu.Unlock()
	resp, err = get(t, rt, srvA.URL+"/later")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(rec.got()); n != 2 {
		t.Errorf("a request after the back-off waited: %v", rec.got())
	}
}

// TestHostBackOffParallel: parallel requests to a host that throttles
// them all wait together and each gets through after one wait.
func TestHostBackOffParallel(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	open := false
	var throttled int
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !open {
			throttled++
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(429)
			return
		}
		w.WriteHeader(200)
	}))
	rec := &sleepRecorder{}
	clock := newFakeClock()
	rt := New(Options{Now: clock.Now, Sleep: func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		open = true // the server lets requests through once they waited
		mu.Unlock()
		return rec.Sleep(ctx, d)
	}})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := get(t, rt, srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d, want 200", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	for _, d := range rec.got() {
		if d != 5*time.Second {
			t.Errorf("wait %v, want the host's 5s", d)
		}
	}
	if n := len(rec.got()); n > 8 {
		t.Errorf("%d waits for 8 requests, want at most one each", n)
	}
}

func TestRetryAfterParse(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{in: "", wantOK: false},
		{in: "0", want: 0, wantOK: true},
		{in: "12", want: 12 * time.Second, wantOK: true},
		{in: "-3", wantOK: false},
		{in: now.Add(30 * time.Second).Format(http.TimeFormat), want: 30 * time.Second, wantOK: true},
		{in: now.Add(-30 * time.Second).Format(http.TimeFormat), want: 0, wantOK: true},
		{in: "soon", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := retryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	rt := New(Options{})
	for attempt := 0; attempt < 20; attempt++ {
		d := rt.backoff(attempt)
		base := min(retryFirstDelay<<min(attempt, 10), retryMaxDelay)
		if d < base*8/10 || d > base*12/10 {
			t.Errorf("backoff(%d) = %v, want within 20%% of %v", attempt, d, base)
		}
	}
	lo, hi := New(Options{Jitter: func() float64 { return 0 }}), New(Options{Jitter: func() float64 { return 0.999999 }})
	if a, b := lo.backoff(3), hi.backoff(3); a != 1600*time.Millisecond || b < 2399*time.Millisecond {
		t.Errorf("backoff(3) spans %v..%v, want 1.6s..2.4s", a, b)
	}
}

// TestResponseRequestHasNoCredentials checks that callers' errors, which
// keep resp.Request, cannot carry the Authorization header away.
func TestResponseRequestHasNoCredentials(t *testing.T) {
	t.Parallel()
	srv := serve(t, reply(200, nil, ""))
	rt := New(Options{RetryBudget: -1})
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok-SECRET")
	req.Header.Set("Cookie", "session=SECRET")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Request.Header.Get("Authorization") + resp.Request.Header.Get("Cookie"); got != "" {
		t.Errorf("resp.Request carries credentials %q", got)
	}
	if req.Header.Get("Authorization") == "" {
		t.Errorf("the caller's request was modified")
	}
}
