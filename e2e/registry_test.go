package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// countingProxy sits in front of a registry and counts the bytes of every
// blob it serves (GET) and receives (PATCH/PUT bodies), by digest, and
// every request.
type countingProxy struct {
	addr     string
	requests atomic.Int64
	mu       sync.Mutex
	// served maps a blob digest to the bytes served for it.
	served   map[string]int64
	uploaded int64
}

var blobPath = regexp.MustCompile(`/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)

func newCountingProxy(t *testing.T, registry string) *countingProxy {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	p := &countingProxy{served: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		m := blobPath.FindStringSubmatch(resp.Request.URL.Path)
		if resp.Request.Method != http.MethodGet || m == nil {
			return nil
		}
		resp.Body = &countBody{rc: resp.Body, add: func(n int64) {
			p.mu.Lock()
			p.served[m[1]] += n
			p.mu.Unlock()
		}}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if r.Method == http.MethodPatch || r.Method == http.MethodPut {
			r.Body = &countBody{rc: r.Body, add: func(n int64) {
				p.mu.Lock()
				p.uploaded += n
				p.mu.Unlock()
			}}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// takeRequests returns the requests seen since the last call.
func (p *countingProxy) takeRequests() int64 { return p.requests.Swap(0) }

func (p *countingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.served = map[string]int64{}
	p.uploaded = 0
}

// layerBytes returns the bytes served for the given layer digests.
func (p *countingProxy) layerBytes(layers []v1.Descriptor) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, l := range layers {
		n += p.served[l.Digest.String()]
	}
	return n
}

type countBody struct {
	rc  io.ReadCloser
	add func(int64)
}

func (c *countBody) Read(b []byte) (int, error) {
	n, err := c.rc.Read(b)
	c.add(int64(n))
	return n, err
}

func (c *countBody) Close() error { return c.rc.Close() }

const singleStage = `FROM {{BASE}}
WORKDIR /app
COPY go.mod ./
RUN echo "deps for $(cat go.mod)" > deps.txt && sleep 0.2
COPY src/ ./src/
RUN cat src/*.txt > all.txt
CMD ["cat", "/app/all.txt"]
`

func pulledLayers(t *testing.T, ref string) ([]v1.Descriptor, v1.Hash) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	imagetest.Check(t, img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return m.Layers, d
}

// TestInlineWorkflow is build-push-action's inline example, twice, each
// from a fresh state dir.
func TestInlineWorkflow(t *testing.T) {
	reg, base := setup(t)
	proxy := newCountingProxy(t, reg)
	ctxDir := appContext(t, base)
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(singleStage, "{{BASE}}", base)})
	tag := proxy.addr + "/app/inline:latest"
	args := []string{"--push", "-t", tag, "--cache-from", "type=registry,ref=" + tag, "--cache-to", "type=inline"}

	first, s1 := cacheBuild(t, ctxDir, nil, args...)
	if !strings.Contains(first.stderr, "nothing to import yet") {
		t.Errorf("first build: no warning for the missing ref\n%s", first.stderr)
	}
	if s1.Summary.Ran != 4 {
		t.Errorf("first build ran %d steps, want 4", s1.Summary.Ran)
	}
	layers, d1 := pulledLayers(t, tag)
	if d1.String() != s1.Digest {
		t.Errorf("registry has %s, build printed %s", d1, s1.Digest)
	}

	proxy.reset()
	second, s2 := cacheBuild(t, ctxDir, nil, args...)
	if got := ranSteps(second.stderr); len(got) != 0 {
		t.Errorf("second build ran steps %v\n%s", got, second.stderr)
	}
	if s2.Digest != s1.Digest {
		t.Errorf("second build pushed %s, first %s", s2.Digest, s1.Digest)
	}
	if n := proxy.layerBytes(layers); n != 0 {
		t.Errorf("fully cached rebuild downloaded %d layer bytes, want 0", n)
	}
	_, d2 := pulledLayers(t, tag)
	if d2.String() != s1.Digest {
		t.Errorf("registry now has %s, want %s", d2, s1.Digest)
	}
}

// TestRegistryWorkflow is build-push-action's registry example with
// mode=max on a multi-stage Dockerfile, twice, each from a fresh state dir.
func TestRegistryWorkflow(t *testing.T) {
	reg, base := setup(t)
	proxy := newCountingProxy(t, reg)
	ctxDir := appContext(t, base)
	tag := proxy.addr + "/app/reg:latest"
	cacheRef := proxy.addr + "/app/reg:buildcache"
	args := []string{"--push", "-t", tag,
		"--cache-from", "type=registry,ref=" + cacheRef,
		"--cache-to", "type=registry,ref=" + cacheRef + ",mode=max"}

	_, s1 := cacheBuild(t, ctxDir, nil, args...)
	if s1.Summary.Ran != 5 {
		t.Errorf("first build ran %d steps, want 5", s1.Summary.Ran)
	}
	layers, _ := pulledLayers(t, tag)

	proxy.reset()
	second, s2 := cacheBuild(t, ctxDir, nil, args...)
	if got := ranSteps(second.stderr); len(got) != 0 {
		t.Errorf("second build ran steps %v\n%s", got, second.stderr)
	}
	if s2.Digest != s1.Digest {
		t.Errorf("second build pushed %s, first %s", s2.Digest, s1.Digest)
	}
	// Intermediate-stage steps came from the registry cache.
	for _, want := range []string{`RUN echo "deps`, "RUN cat src"} {
		if !regexp.MustCompile(`(?m)^#\d+ \[build [^\]]*\] ` + regexp.QuoteMeta(want)).MatchString(second.stderr) {
			t.Errorf("no build-stage step %q in\n%s", want, second.stderr)
		}
	}
	if s2.Summary.Cached != 5 {
		t.Errorf("second build: %d cached, want 5 (both stages)", s2.Summary.Cached)
	}
	if n := proxy.layerBytes(layers); n != 0 {
		t.Errorf("fully cached rebuild downloaded %d bytes of image layers, want 0", n)
	}
	proxy.mu.Lock()
	up := proxy.uploaded
	proxy.mu.Unlock()
	if up > 16<<10 {
		t.Errorf("fully cached rebuild uploaded %d bytes; want only manifests and configs", up)
	}

	// A third build from another fresh state dir, reading only the cache
	// (no push), still hits everything.
	_, s3 := cacheBuild(t, ctxDir, nil, "--cache-from", "type=registry,ref="+cacheRef)
	if s3.Summary.Cached != 5 {
		t.Errorf("build from the registry cache alone: %d cached, want 5", s3.Summary.Cached)
	}
}

// TestRegistryCacheCrossRepoMount: exporting a cache to another repository
// of the same registry mounts the layers the image already pushed.
func TestRegistryCacheCrossRepoMount(t *testing.T) {
	reg, base := setup(t)
	proxy := newCountingProxy(t, reg)
	ctxDir := appContext(t, base)
	_, s := cacheBuild(t, ctxDir, nil, "--cache-from", "type=registry,ref="+proxy.addr+"/cache/a:1",
		"--cache-to", "type=registry,ref="+proxy.addr+"/cache/a:1,mode=max")
	if s.Summary.Ran != 5 {
		t.Fatalf("ran %d", s.Summary.Ran)
	}
	// A fresh state dir imports from cache/a and exports to cache/b: every
	// blob is in cache/a already, so nothing is uploaded.
	proxy.reset()
	_, s = cacheBuild(t, ctxDir, nil, "--cache-from", "type=registry,ref="+proxy.addr+"/cache/a:1",
		"--cache-to", "type=registry,ref="+proxy.addr+"/cache/b:1,mode=max")
	if s.Summary.Cached != 5 {
		t.Errorf("cached %d, want 5", s.Summary.Cached)
	}
	proxy.mu.Lock()
	up := proxy.uploaded
	proxy.mu.Unlock()
	if up > 16<<10 {
		t.Errorf("export to another repo uploaded %d bytes; want layers mounted, only manifests sent", up)
	}
	_, s = cacheBuild(t, ctxDir, nil, "--cache-from", "type=registry,ref="+proxy.addr+"/cache/b:1")
	if s.Summary.Cached != 5 {
		t.Errorf("build from the mounted cache: cached %d, want 5", s.Summary.Cached)
	}
}
