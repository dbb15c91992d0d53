package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/transport"
)

// faultInjector wraps a registry handler: the first n requests that match
// are answered by fault instead of the registry.
type faultInjector struct {
	mu    sync.Mutex
	n     int
	hits  int
	match func(*http.Request) bool
	fault func(http.ResponseWriter, *http.Request)
}

func (f *faultInjector) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.match(r) {
			f.mu.Lock()
			inject := f.hits < f.n
			if inject {
				f.hits++
			}
			f.mu.Unlock()
			if inject {
				f.fault(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (f *faultInjector) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

func isManifestPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
}

func isBlobHead(r *http.Request) bool {
	return r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/")
}

func isUploadStart(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/")
}

func isManifestGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
}

func status(code int, header map[string]string, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

// hangUp closes the connection without a response.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

func TestRetryTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     *faultInjector
		pull      bool            // fault hits the pull instead of the push
		fresh     bool            // no keep-alive, so net/http cannot replay the request itself
		wantSleep []time.Duration // exact waits; nil: only the count is checked
		wantHits  int
		// hostBackOff: the fault throttles the whole registry for this long
		// (429 with Retry-After). Besides the retry's own wait, every
		// request sent while the back-off lasts waits for the rest of it;
		// Sleep returns at once here, so the back-off outlasts the push.
		hostBackOff time.Duration
	}{
		{
			name:     "503 twice on manifest put",
			fault:    &faultInjector{n: 2, match: isManifestPut, fault: status(503, nil, "busy")},
			wantHits: 2,
		},
		{
			name:        "429 honours Retry-After seconds",
			fault:       &faultInjector{n: 1, match: isBlobHead, fault: status(429, map[string]string{"Retry-After": "7"}, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)},
			wantHits:    1,
			hostBackOff: 7 * time.Second,
		},
		{
			// net/http itself replays idempotent requests on a reused
			// connection; a POST it does not, so this reaches our retry.
			name:     "connection dropped on upload start",
			fault:    &faultInjector{n: 1, match: isUploadStart, fault: hangUp},
			wantHits: 1,
		},
		{
			name:     "connection dropped on manifest get",
			fault:    &faultInjector{n: 1, match: isManifestGet, fault: hangUp},
			pull:     true,
			fresh:    true,
			wantHits: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			reg := newRegistry(t, tt.fault.wrap)
			rec := &sleepRecorder{}
			opts := Options{Sleep: rec.Sleep}
			if tt.fresh {
				opts.Transport = &http.Transport{DisableKeepAlives: true}
			}
			c := newClient(t, opts)
			img := randomImage(t)
			tag := reg + "/retry:1"
			if tt.pull {
				tt.fault.mu.Lock()
				tt.fault.n, tt.fault.hits = 0, 0 // let the push through untouched
				tt.fault.mu.Unlock()
			}
			if err := c.Push(ctx, img, []string{tag}); err != nil {
				t.Fatalf("Push: %v", err)
			}
			if tt.pull {
				tt.fault.mu.Lock()
				tt.fault.n = tt.wantHits
				tt.fault.mu.Unlock()
				_, h, err := c.Image(ctx, tag)
				if err != nil {
					t.Fatalf("Image: %v", err)
				}
				if want := mustDigest(t, img); h != want {
					t.Errorf("digest = %s, want %s", h, want)
				}
			}
			if got := tt.fault.count(); got != tt.wantHits {
				t.Errorf("faults served = %d, want %d", got, tt.wantHits)
			}
			sleeps := rec.got()
			if tt.hostBackOff != 0 {
				retries, rest := 0, 0
				for _, d := range sleeps {
					switch {
					case d == tt.hostBackOff:
						retries++
					case d > tt.hostBackOff-time.Second && d < tt.hostBackOff:
						rest++
					default:
						t.Errorf("wait %v: want %v (the retry) or the rest of it (the host back-off)", d, tt.hostBackOff)
					}
				}
				if retries != tt.wantHits || rest == 0 {
					t.Errorf("retry waits = %v: want %d of %v and later requests waiting out the rest", sleeps, tt.wantHits, tt.hostBackOff)
				}
			} else if len(sleeps) != tt.wantHits {
				t.Errorf("retry waits = %v, want %d of them", sleeps, tt.wantHits)
			}
			if tt.wantSleep != nil {
				if diff := cmp.Diff(tt.wantSleep, sleeps); diff != "" {
					t.Errorf("retry waits (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRetryGivesUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxWait     time.Duration
		fault       func(http.ResponseWriter, *http.Request)
		wantStatus  int
		wantMessage string
		maxSleeps   int
	}{
		{
			name:        "persistent 503 within budget",
			maxWait:     2 * time.Second,
			fault:       status(503, nil, "backend down for maintenance"),
			wantStatus:  503,
			wantMessage: "backend down for maintenance",
			maxSleeps:   5,
		},
		{
			name:        "Retry-After beyond budget",
			maxWait:     time.Minute,
			fault:       status(429, map[string]string{"Retry-After": "120"}, `{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}`),
			wantStatus:  429,
			wantMessage: "pull rate limit",
			maxSleeps:   0,
		},
		{
			name:        "retries disabled",
			maxWait:     -1,
			fault:       status(502, nil, "bad gateway"),
			wantStatus:  502,
			wantMessage: "bad gateway",
			maxSleeps:   0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &faultInjector{n: 1 << 30, match: isManifestPut, fault: tt.fault}
			reg := newRegistry(t, f.wrap)
			rec := &sleepRecorder{}
			c := newClient(t, Options{Sleep: rec.Sleep, RetryMaxWait: tt.maxWait})
			err := c.Push(context.Background(), randomImage(t), []string{reg + "/fail:1"})
			var e *transport.Error
			if !errors.As(err, &e) {
				t.Fatalf("Push error = %v (%T), want *Error", err, err)
			}
			if e.Status != tt.wantStatus || !strings.Contains(e.Message, tt.wantMessage) || e.Method != http.MethodPut {
				t.Errorf("Error = %+v, want PUT status %d with message %q", e, tt.wantStatus, tt.wantMessage)
			}
			sleeps := rec.got()
			var total time.Duration
			for _, s := range sleeps {
				total += s
			}
			if len(sleeps) > tt.maxSleeps || (tt.maxWait > 0 && total > tt.maxWait) {
				t.Errorf("waits = %v (total %v), want at most %d within %v", sleeps, total, tt.maxSleeps, tt.maxWait)
			}
			if tt.maxSleeps > 0 && len(sleeps) == 0 {
				t.Errorf("no retry happened before giving up")
			}
			if got, want := f.count(), len(sleeps)+1; got != want {
				t.Errorf("attempts = %d, want %d (one per wait plus the first)", got, want)
			}
			// The message says it was retried, when it was.
			if retried := strings.Contains(e.Error(), "gave up after"); retried != (len(sleeps) > 0) {
				t.Errorf("error %q: says it gave up after retries = %v, but %d retries happened", e.Error(), retried, len(sleeps))
			}
		})
	}
}

// TestResponseRequestHasNoCredentials checks that ggcr's errors, which keep
// resp.Request, cannot carry the Authorization header out of the package:
// the client's whole stack strips it.
func TestResponseRequestHasNoCredentials(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t, nil)
	rt := newClient(t, Options{RetryMaxWait: -1}).transport
	req, err := http.NewRequest(http.MethodGet, "http://"+reg+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Request.Header.Get("Authorization"); got != "" {
		t.Errorf("resp.Request carries Authorization %q", got)
	}
	if req.Header.Get("Authorization") == "" {
		t.Errorf("the caller's request was modified")
	}
}
