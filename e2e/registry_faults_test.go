package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/imagetest"
)

// faults says what a faultProxy does to the requests it passes on.
type faults struct {
	// Flaky is the share of requests answered 429 (with Retry-After: 1) or
	// 503 instead of being passed on. No request path fails more than
	// twice in a row, and at most maxFlaky requests fail in all.
	Flaky float64
	// Seed makes the flaky choices reproducible.
	Seed int64
	// DropBlobGet closes the connection halfway through the body of the
	// first GET of each blob.
	DropBlobGet bool
	// DropUpload closes the connection halfway through the body of the
	// first PATCH of each blob upload (recognised by its bytes), and drops
	// the response to the first committing PUT of each digest after the
	// registry has handled it.
	DropUpload bool
}

// maxFlaky bounds the flaky answers of one proxy, so a test's worst case
// stays a few dozen retries.
const maxFlaky = 60

// faultProxy is a reverse proxy on 127.0.0.1 in front of a registry that
// injects faults while it is on.
type faultProxy struct {
	addr   string
	target string
	f      faults
	on     atomic.Bool
	rp     *httputil.ReverseProxy

	mu     sync.Mutex
	rng    *rand.Rand
	inRow  map[string]int
	nFlaky int
	seen   map[string]bool
	log    []string
	counts map[string]int
}

var (
	blobGetPath = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)
	uploadPath  = regexp.MustCompile(`^/v2/.+/blobs/uploads/[^/]+$`)
)

func newFaultProxy(t *testing.T, registry string, f faults) *faultProxy {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: registry}
	p := &faultProxy{
		target: registry, f: f,
		rp:    httputil.NewSingleHostReverseProxy(target),
		rng:   rand.New(rand.NewSource(f.Seed)),
		inRow: map[string]int{}, seen: map[string]bool{}, counts: map[string]int{},
	}
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	p.on.Store(true)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.addr = strings.TrimPrefix(srv.URL, "http://")
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Logf("fault proxy injected %v", p.counts)
	})
	return p
}

// note records an injected fault.
func (p *faultProxy) note(kind string, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[kind]++
	p.log = append(p.log, kind+" "+r.Method+" "+r.URL.Path)
}

// injected returns how many faults of kind were injected.
func (p *faultProxy) injected(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[kind]
}

// first reports whether key is seen for the first time.
func (p *faultProxy) first(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen[key] {
		return false
	}
	p.seen[key] = true
	return true
}

// flaky picks the status to answer r with, or 0 to pass it on.
func (p *faultProxy) flaky(r *http.Request) int {
	if p.f.Flaky == 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	if p.nFlaky >= maxFlaky || p.inRow[key] >= 2 || p.rng.Float64() >= p.f.Flaky {
		p.inRow[key] = 0
		return 0
	}
	p.inRow[key]++
	p.nFlaky++
	if p.rng.Intn(3) == 0 {
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.on.Load() {
		p.rp.ServeHTTP(w, r)
		return
	}
	if status := p.flaky(r); status != 0 {
		p.note(fmt.Sprint(status), r)
		// Read the body as a registry would before answering, so the
		// client has sent it all (a replay must start from the top).
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"fault proxy: %d, try again"}]}`, status)
		return
	}
	switch {
	case p.f.DropBlobGet && r.Method == http.MethodGet && blobGetPath.MatchString(r.URL.Path):
		if p.first("GET " + blobGetPath.FindStringSubmatch(r.URL.Path)[1]) {
			p.halfBodyThenDrop(w, r)
			return
		}
	case p.f.DropUpload && r.Method == http.MethodPatch && uploadPath.MatchString(r.URL.Path):
		p.dropPatch(w, r)
		return
	case p.f.DropUpload && r.Method == http.MethodPut && uploadPath.MatchString(r.URL.Path):
		if p.first("PUT " + r.URL.Query().Get("digest")) {
			p.commitThenDrop(w, r)
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// upstream sends r to the registry.
func (p *faultProxy) upstream(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = "http", p.target
	out.Host = p.target
	out.RequestURI = ""
	return http.DefaultTransport.RoundTrip(out)
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// halfBodyThenDrop passes on the registry's answer to a blob GET but
// closes the connection after half of its body.
func (p *faultProxy) halfBodyThenDrop(w http.ResponseWriter, r *http.Request) {
	resp, err := p.upstream(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 2 {
		io.Copy(w, resp.Body)
		return
	}
	io.CopyN(w, resp.Body, resp.ContentLength/2)
	p.note("drop-get", r)
	hangUp(w)
}

// dropPatch reads the first half of an upload PATCH and, the first time
// those bytes are seen, hangs up; otherwise it passes the whole request
// on.
func (p *faultProxy) dropPatch(w http.ResponseWriter, r *http.Request) {
	n := r.ContentLength / 2
	if n <= 0 {
		n = 16 << 10
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, n))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(head)
	if len(head) > 0 && p.first(fmt.Sprintf("PATCH %d %x", r.ContentLength, sum)) {
		p.note("drop-patch", r)
		hangUp(w)
		return
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	p.rp.ServeHTTP(w, r)
}

// commitThenDrop lets the registry commit an upload, then hangs up
// without telling the client.
func (p *faultProxy) commitThenDrop(w http.ResponseWriter, r *http.Request) {
	resp, err := p.upstream(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.note("drop-put", r)
	hangUp(w)
}

// kilnWithin is kiln with a deadline, for builds that might retry forever.
func kilnWithin(t *testing.T, d time.Duration, state string, env []string, args ...string) result {
	t.Helper()
	r, _ := kilnRSS(t, d, state, env, args...)
	return r
}

// reproducible pins timestamps so that two builds of one context give one
// digest.
var reproducible = []string{"SOURCE_DATE_EPOCH=1700000000"}

// checkFailureLine checks that a failed build exits 1 with one clear last
// line: kiln's error, naming what failed, with no stack trace and not just
// a status code.
func checkFailureLine(t *testing.T, r result, mustName ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("failed build: exit %d, want 1\n%s", r.code, r.stderr)
	}
	last := lastLine(r.stderr)
	i := strings.LastIndex("\n"+r.stderr, "\nkiln: ")
	if !strings.HasPrefix(last, "kiln: ") || i < 0 || strings.TrimRight(r.stderr[i:], "\n") != last {
		t.Errorf("failed build: the error is not one last `kiln: ` line\n%s", r.stderr)
	}
	for _, bad := range []string{"goroutine ", "panic:", ".go:"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("failed build shows %q (a stack trace?)\n%s", bad, r.stderr)
		}
	}
	if regexp.MustCompile(`^kiln: (\S+: )?\d{3}( [A-Za-z ]+)?$`).MatchString(last) {
		t.Errorf("failed build: last line %q is a bare status", last)
	}
	t.Logf("last line: %s", last)
	for _, s := range mustName {
		if !strings.Contains(last, s) {
			t.Errorf("failed build: last line %q does not name %q", last, s)
		}
	}
	if r.stdout != "" {
		t.Errorf("a failed build printed %q on stdout", r.stdout)
	}
}

// checkCacheBlobs checks, through the registry itself, that the cache at
// ref (if there is one) refers only to blobs the registry holds whole. It
// reports whether there is a cache.
func checkCacheBlobs(t *testing.T, ref string) bool {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		if strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || strings.Contains(err.Error(), "NAME_UNKNOWN") {
			return false
		}
		t.Fatalf("reading the cache manifest %s: %v", ref, err)
	}
	var im v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &im); err != nil {
		t.Fatalf("cache manifest %s: %v", ref, err)
	}
	if im.Config.MediaType != cache.MediaType {
		t.Errorf("cache manifest %s: config media type %s, want %s", ref, im.Config.MediaType, cache.MediaType)
	}
	for _, d := range append([]v1.Descriptor{im.Config}, im.Layers...) {
		blobRef := r.Context().Digest(d.Digest.String())
		l, err := remote.Layer(blobRef)
		if err != nil {
			t.Errorf("cache blob %s: %v", d.Digest, err)
			continue
		}
		if size, err := l.Size(); err != nil || size != d.Size {
			t.Errorf("HEAD cache blob %s: size %d, err %v; want %d", d.Digest, size, err, d.Size)
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Errorf("GET cache blob %s: %v", d.Digest, err)
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); err != nil || got != d.Digest.String() || n != d.Size {
			t.Errorf("cache blob %s: read %d bytes hashing to %s (err %v)", d.Digest, n, got, err)
		}
	}
	return true
}

// checkPushed pulls ref from the registry itself and checks it is a valid
// image with digest want.
func checkPushed(t *testing.T, ref, want string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Errorf("pulling %s: %v", ref, err)
		return
	}
	imagetest.Check(t, img)
	if d, _ := img.Digest(); d.String() != want {
		t.Errorf("%s is %s, want %s", ref, d, want)
	}
}

// faultyPushAndCache builds ctxDir through the proxy with --push and a
// mode=max registry cache export, with the proxy's faults on; then, with
// the faults off, checks the result through the registry directly and
// rebuilds from the cache in a fresh state dir. It returns the faulty
// build's result.
func faultyPushAndCache(t *testing.T, reg string, p *faultProxy) result {
	t.Helper()
	ctxDir := appContext(t, p.addr+"/base/busybox:1")

	// The clean build the others are compared with, faults off.
	p.on.Store(false)
	_, clean := cacheBuild(t, ctxDir, reproducible)
	if !strings.HasPrefix(clean.Digest, "sha256:") {
		t.Fatalf("clean build: digest %q", clean.Digest)
	}

	p.on.Store(true)
	md := filepath.Join(t.TempDir(), "md.json")
	r := kilnWithin(t, 40*time.Second, filepath.Join(t.TempDir(), "state"), reproducible,
		"build", "--progress", "plain", "--metadata-file", md,
		"--push", "-t", p.addr+"/app:1",
		"--cache-to", "type=registry,ref="+p.addr+"/app:cache,mode=max", ctxDir)
	p.on.Store(false)
	if r.code == 0 {
		if got := strings.TrimSpace(r.stdout); got != clean.Digest {
			t.Errorf("build through faults gave %s, clean build %s", got, clean.Digest)
		}
		checkPushed(t, reg+"/app:1", clean.Digest)
	} else {
		t.Logf("build through faults failed:\n%s", r.stderr)
		checkFailureLine(t, r)
	}

	hasCache := checkCacheBlobs(t, reg+"/app:cache")
	if r.code == 0 && !hasCache {
		t.Errorf("the build succeeded but %s/app:cache holds no cache", reg)
	}
	// A fresh build from the cache, read from the registry directly, gives
	// the clean build's image.
	fresh, s := cacheBuild(t, ctxDir, reproducible, "--cache-from", "type=registry,ref="+reg+"/app:cache")
	if s.Digest != clean.Digest {
		t.Errorf("build from the cache gave %s, clean build %s\n%s", s.Digest, clean.Digest, fresh.stderr)
	}
	if hasCache && s.Summary.Cached != 5 {
		t.Errorf("build from the cache: %d of 5 steps cached\n%s", s.Summary.Cached, fresh.stderr)
	}
	return r
}

// TestRegistryFaultsFlaky: about 30% of registry requests answer 429 or
// 503; retries get the push and the cache export through.
func TestRegistryFaultsFlaky(t *testing.T) {
	reg, _ := setup(t)
	p := newFaultProxy(t, reg, faults{Flaky: 0.3, Seed: 1})
	r := faultyPushAndCache(t, reg, p)
	if p.injected("429")+p.injected("503") == 0 {
		t.Errorf("the proxy injected no fault")
	}
	if r.code != 0 {
		t.Errorf("a build through 429s and 503s failed; retries should get it through")
	}
}

// TestRegistryFaultsDropped: connections that drop halfway through a blob
// download or upload.
func TestRegistryFaultsDropped(t *testing.T) {
	reg, _ := setup(t)
	p := newFaultProxy(t, reg, faults{DropBlobGet: true, DropUpload: true})
	faultyPushAndCache(t, reg, p)
	for _, kind := range []string{"drop-get", "drop-patch", "drop-put"} {
		if p.injected(kind) == 0 {
			t.Errorf("the proxy injected no %s", kind)
		}
	}
}

// TestRegistryFaultsDroppedImport: a cache import whose blob downloads
// drop halfway still gives the right image.
func TestRegistryFaultsDroppedImport(t *testing.T) {
	reg, _ := setup(t)
	p := newFaultProxy(t, reg, faults{DropBlobGet: true})
	ctxDir := appContext(t, reg+"/base/busybox:1")
	cacheRef := p.addr + "/app:cache"
	p.on.Store(false)
	_, clean := cacheBuild(t, ctxDir, reproducible, "--cache-to", "type=registry,ref="+cacheRef+",mode=max")
	p.on.Store(true)
	// An OCI output makes the build read the cached layers.
	md := filepath.Join(t.TempDir(), "md.json")
	r := kilnWithin(t, 40*time.Second, filepath.Join(t.TempDir(), "state"), reproducible,
		"build", "--progress", "plain", "--metadata-file", md, "--cache-from", "type=registry,ref="+cacheRef,
		"-o", "type=oci,dest="+filepath.Join(t.TempDir(), "img.tar"), ctxDir)
	if r.code != 0 {
		t.Logf("import through dropped downloads failed:\n%s", r.stderr)
		checkFailureLine(t, r)
		return
	}
	s := readSummary(t, md)
	if s.Digest != clean.Digest {
		t.Errorf("build from a cache with dropped downloads gave %s, want %s\n%s", s.Digest, clean.Digest, r.stderr)
	}
	// Either hits or rebuilds are right; log which.
	t.Logf("build from the cache: %d cached, %d ran", s.Summary.Cached, s.Summary.Ran)
	if p.injected("drop-get") == 0 {
		t.Errorf("the proxy dropped no download")
	}
}

// TestRegistryCacheDown: exporting to a registry nobody listens on fails
// the build with a line naming the cache, unless ignore-error=true.
func TestRegistryCacheDown(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	down := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	spec := "type=registry,ref=" + down + "/app:cache,mode=max"

	r := kilnWithin(t, 40*time.Second, filepath.Join(t.TempDir(), "state"), nil,
		"build", "--progress", "plain", "--cache-to", spec, ctxDir)
	checkFailureLine(t, r, down+"/app:cache", "cache")

	r = kilnWithin(t, 40*time.Second, filepath.Join(t.TempDir(), "state"), nil,
		"build", "--progress", "plain", "--cache-to", spec+",ignore-error=true", ctxDir)
	if r.code != 0 {
		t.Errorf("export to a down registry with ignore-error=true: exit %d, want 0\n%s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^WARNING: .*` + regexp.QuoteMeta(down) + `.*ignore-error=true`).MatchString(r.stderr) {
		t.Errorf("no warning naming %s and ignore-error=true\n%s", down, r.stderr)
	}
	// An import from it is a warning too.
	r = kilnWithin(t, 40*time.Second, filepath.Join(t.TempDir(), "state"), nil,
		"build", "--progress", "plain", "--cache-from", "type=registry,ref="+down+"/app:cache", ctxDir)
	if r.code != 0 || !regexp.MustCompile(`(?m)^WARNING: .*`+regexp.QuoteMeta(down)).MatchString(r.stderr) {
		t.Errorf("import from a down registry: exit %d, want 0 with a warning naming %s\n%s", r.code, down, r.stderr)
	}
}

// TestRegistryUnauthorizedMessage: the registry's own 401 message reaches
// the user, with its host and a hint to log in, for a push and for a cache
// export.
func TestRegistryUnauthorizedMessage(t *testing.T) {
	_, base := setup(t)
	const user, password = "u", "Unauth-pa55-word"
	reg := startAuthRegistry(t, user, password)
	ctxDir := appContext(t, base)
	tests := []struct {
		name string
		args []string
	}{
		{"push", []string{"--push", "-t", reg.addr + "/app:1"}},
		{"cache export", []string{"--cache-to", "type=registry,ref=" + reg.addr + "/app:cache"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"build", "--progress", "plain", "--registry-ca", reg.caFile}, tt.args...)
			r := kilnWithin(t, 40*time.Second, filepath.Join(t.TempDir(), "state"), nil, append(args, ctxDir)...)
			checkFailureLine(t, r, reg.addr, "kiln login")
			last := lastLine(r.stderr)
			if !strings.Contains(last, "UNAUTHORIZED") && !strings.Contains(last, "authentication required") {
				t.Errorf("last line %q does not carry the registry's message (UNAUTHORIZED / authentication required)", last)
			}
			if strings.Contains(r.stderr, password) {
				t.Errorf("the password appears in the output")
			}
		})
	}
}
