package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// tracingProxy sits in front of a registry and records every request kiln
// makes: its method, path and when it started and ended, so a test can
// count requests and their sequential depth (the longest chain of requests
// each of which started only after the one before it ended: with a fixed
// latency per request, the build waits at least depth times that latency).
type tracingProxy struct {
	addr string
	// latency delays every request (and HTTPS attempt) before it is
	// answered, as a registry far away would: requests sent together then
	// overlap, requests sent one after the other do not.
	latency time.Duration
	mu      sync.Mutex
	reqs    []tracedRequest
}

type tracedRequest struct {
	method, path string
	digest       string // the ?digest= of a blob upload's closing PUT
	status       int
	start, end   time.Time
}

func (r tracedRequest) String() string {
	return fmt.Sprintf("%s %s %d", r.method, r.path, r.status)
}

func newTracingProxy(t *testing.T, registry string, latency time.Duration) *tracingProxy {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	p := &tracingProxy{latency: latency}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		time.Sleep(p.latency)
		rp.ServeHTTP(rec, r)
		p.add(tracedRequest{method: r.Method, path: r.URL.Path, digest: r.URL.Query().Get("digest"), status: rec.status, start: start, end: time.Now()})
	}))
	srv.Listener = &helloListener{Listener: srv.Listener, p: p}
	srv.Start()
	t.Cleanup(srv.Close)
	p.addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *tracingProxy) add(r tracedRequest) {
	p.mu.Lock()
	p.reqs = append(p.reqs, r)
	p.mu.Unlock()
}

// helloListener records, as a request "TLS hello", every connection that
// starts with a TLS handshake record: an HTTPS attempt at this plain-HTTP
// server (it answers 400 and the client gives up on HTTPS).
type helloListener struct {
	net.Listener
	p *tracingProxy
}

func (l *helloListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &helloConn{Conn: c, p: l.p, start: time.Now()}, nil
}

type helloConn struct {
	net.Conn
	p     *tracingProxy
	start time.Time
	once  sync.Once
	read  bool
	tls   bool
}

func (c *helloConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.read && n > 0 {
		c.read, c.tls = true, b[0] == 0x16
		if c.tls {
			time.Sleep(c.p.latency)
		}
	}
	return n, err
}

func (c *helloConn) Close() error {
	c.once.Do(func() {
		if c.tls {
			c.p.add(tracedRequest{method: "TLS", path: "hello", start: c.start, end: time.Now()})
		}
	})
	return c.Conn.Close()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (p *tracingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}

// requests returns the requests recorded since the last reset, in the
// order they started.
func (p *tracingProxy) requests() []tracedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]tracedRequest(nil), p.reqs...)
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// depth is the length of the longest chain of requests in reqs in which
// each started after the previous one ended.
func depth(reqs []tracedRequest) int {
	best := make([]int, len(reqs)) // longest chain ending with reqs[i]
	n := 0
	for i, r := range reqs {
		best[i] = 1
		for j := 0; j < i; j++ {
			if !reqs[j].end.After(r.start) && best[j]+1 > best[i] {
				best[i] = best[j] + 1
			}
		}
		n = max(n, best[i])
	}
	return n
}

// TestWarmRebuildRequests: a full-hit rebuild of a two-stage Dockerfile
// from a fresh state dir, importing and exporting a registry cache
// (mode=max) and pushing its image, makes only the requests it cannot
// avoid: the registry is pinged once, the base image and the cache
// manifest are resolved concurrently, nothing is asked twice.
func TestWarmRebuildRequests(t *testing.T) {
	reg, _ := setup(t)
	proxy := newTracingProxy(t, reg, 50*time.Millisecond)
	// The base image is read through the proxy too.
	ctxDir := appContext(t, proxy.addr+"/base/busybox:1")
	tag := proxy.addr + "/app/rt:latest"
	cacheRef := proxy.addr + "/app/rt:buildcache"
	args := []string{"--push", "-t", tag,
		"--cache-from", "type=registry,ref=" + cacheRef,
		"--cache-to", "type=registry,ref=" + cacheRef + ",mode=max"}
	cacheBuild(t, ctxDir, nil, args...)
	proxy.reset()
	second, s2 := cacheBuild(t, ctxDir, nil, args...)
	// The state dir is new, the registry the same: everything is a hit.
	if got := ranSteps(second.stderr); len(got) != 0 {
		t.Fatalf("warm build ran steps %v\n%s", got, second.stderr)
	}
	if s2.Summary.Cached != 5 {
		t.Errorf("warm build: %d cached, want 5", s2.Summary.Cached)
	}
	reqs := proxy.requests()
	var lines []string
	seen := map[string]bool{}
	pings, hellos := 0, 0
	for _, r := range reqs {
		lines = append(lines, r.String())
		switch {
		case r.method == "TLS":
			hellos++
		case r.path == "/v2/":
			pings++
		case seen[r.method+" "+r.path]:
			t.Errorf("%s %s asked twice", r.method, r.path)
		}
		seen[r.method+" "+r.path] = true
	}
	all := strings.Join(lines, "\n  ")
	if pings != 1 || hellos > 1 {
		t.Errorf("%d pings and %d HTTPS attempts, want 1 and at most 1:\n  %s", pings, hellos, all)
	}
	// The requests a full hit cannot avoid: the ping (and the HTTPS
	// attempt beside it), the base image's manifest and config, the cache
	// manifest and config, and the HEAD of the tag the image is pushed to.
	// Depth: ping, manifests, configs, the push's HEAD.
	const wantMax, depthMax = 7, 4
	if n, d := len(reqs), depth(reqs); n > wantMax || d > depthMax {
		t.Errorf("%d requests in depth %d, want at most %d in depth %d:\n  %s", n, d, wantMax, depthMax, all)
	} else {
		t.Logf("%d requests in depth %d:\n  %s", n, d, all)
	}
}

// TestEarlyLayerUpload: a pushed image's layers are uploaded while the
// build goes on, each once: the first RUN's layer is in the registry a
// second before the last step (a sleep) ends, and the push at the end
// sends only what is left.
func TestEarlyLayerUpload(t *testing.T) {
	reg, _ := setup(t)
	proxy := newTracingProxy(t, reg, 0)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + proxy.addr + "/base/busybox:1\nRUN head -c 300000 /dev/urandom > /one\nRUN sleep 1.5\n",
	})
	tag := proxy.addr + "/app/early:latest"
	_, s := cacheBuild(t, dir, nil, "--push", "-t", tag)
	layers, d := pulledLayers(t, tag)
	if d.String() != s.Digest {
		t.Fatalf("registry has %s, build printed %s", d, s.Digest)
	}
	reqs := proxy.requests()
	var manifestPut time.Time
	uploaded := map[string][]tracedRequest{}
	for _, r := range reqs {
		if r.method == http.MethodPut && strings.Contains(r.path, "/manifests/") {
			manifestPut = r.start
		}
		if r.method == http.MethodPut && r.digest != "" {
			uploaded[r.digest] = append(uploaded[r.digest], r)
		}
	}
	// The base layer is mounted from base/busybox; the two RUN layers are
	// the build's own.
	own := layers[len(layers)-2:]
	for _, l := range own {
		if n := len(uploaded[l.Digest.String()]); n != 1 {
			t.Errorf("layer %s uploaded %d times, want once", l.Digest, n)
		}
	}
	first := uploaded[own[0].Digest.String()]
	if len(first) == 1 && manifestPut.Sub(first[0].end) < time.Second {
		t.Errorf("the first RUN's layer was uploaded %s before the manifest, want it during the 1.5 s sleep", manifestPut.Sub(first[0].end))
	}
}
