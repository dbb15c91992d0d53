package remote

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// schemeRecorder records the scheme, method and path of every request that
// reaches the base transport, including those that fail (an HTTPS attempt
// at a plain-HTTP registry).
type schemeRecorder struct {
	inner http.RoundTripper
	mu    sync.Mutex
	reqs  []string
}

func (s *schemeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r.URL.Scheme+" "+r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	return s.inner.RoundTrip(r)
}

func (s *schemeRecorder) count(want string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reqs {
		if r == want {
			n++
		}
	}
	return n
}

// TestPingOncePerHost: pulls from one repository, a push to another and
// manifest reads of a third, some of them concurrent, ping the registry
// once over HTTPS (the loopback fallback's first try) and once over HTTP,
// for the whole client; with basic and token auth alike.
func TestPingOncePerHost(t *testing.T) {
	for _, mode := range []authMode{basicAuth, tokenAuth} {
		t.Run(map[authMode]string{basicAuth: "basic", tokenAuth: "token"}[mode], func(t *testing.T) {
			host := newRegistry(t, authRegistry(mode, "u", "p"))
			rec := &schemeRecorder{inner: http.DefaultTransport.(*http.Transport).Clone()}
			dir := t.TempDir()
			if err := storeCredentials(context.Background(), dir, host, "u", "p"); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, Options{Transport: rec, DockerConfigDir: dir})
			ctx := context.Background()
			img := randomImage(t)
			if err := c.Push(ctx, img, []string{host + "/a/one:1"}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for _, ref := range []string{host + "/a/one:1", host + "/b/two:1", host + "/c/three:1"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if ref != host+"/a/one:1" {
						errs <- c.Push(ctx, img, []string{ref})
						return
					}
					_, _, err := c.Image(ctx, ref)
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, mt, _, err := c.Manifest(ctx, host+"/c/three:1"); err != nil || mt != types.DockerManifestSchema2 && mt != types.OCIManifestSchema1 {
				t.Fatalf("Manifest: %v %v", mt, err)
			}
			if n := rec.count("http GET /v2/"); n != 1 {
				t.Errorf("%d pings over http, want 1\n%v", n, rec.reqs)
			}
			if n := rec.count("https GET /v2/"); n > 1 {
				t.Errorf("%d pings over https, want at most 1 (the fallback is decided once)\n%v", n, rec.reqs)
			}
		})
	}
}

// TestPingFailureNotKept: a ping that gets no answer is not remembered;
// the next request pings again and succeeds.
func TestPingFailureNotKept(t *testing.T) {
	host := newRegistry(t, nil)
	fail := true
	var mu sync.Mutex
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		f := fail
		mu.Unlock()
		if f && r.URL.Path == "/v2/" {
			return nil, errTestDown
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	c := newClient(t, Options{Transport: rt, RetryMaxWait: -1})
	ctx := context.Background()
	if err := c.Push(ctx, randomImage(t), []string{host + "/a/b:1"}); err == nil {
		t.Fatal("push with the registry down succeeded")
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := c.Push(ctx, randomImage(t), []string{host + "/a/b:1"}); err != nil {
		t.Fatalf("push after the registry came back: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type testDown struct{}

func (testDown) Error() string { return "test: registry down" }

var errTestDown error = testDown{}
