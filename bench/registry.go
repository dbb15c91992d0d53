package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// registryBinary is the Debian docker-registry (CNCF distribution), the
// real registry the registry section pushes to and pulls from.
const registryBinary = "docker-registry"

// registryServer is a docker-registry process on 127.0.0.1 with its
// storage in a dir of the work dir.
type registryServer struct {
	addr    string // host:port
	version string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	logPath string
}

// startRegistry starts `docker-registry serve` with filesystem storage in
// dir and waits until /v2/ answers.
func startRegistry(ctx context.Context, bin, dir string) (*registryServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	s := &registryServer{addr: addr, cmd: cmd, exited: make(chan struct{}), logPath: logPath,
		version: registryVersion(firstLine(ctx, bin, "--version"))}
	go func() { cmd.Wait(); close(s.exited) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("docker-registry exited at start:\n%s", s.logTail())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
	s.stop()
	return nil, fmt.Errorf("docker-registry did not answer on %s within 15 s:\n%s", addr, s.logTail())
}

// registryVersion names the registry by the output of --version, which
// starts with the path it was run as ("/usr/bin/docker-registry
// github.com/docker/distribution 2.8.2+ds1").
func registryVersion(out string) string {
	if _, rest, ok := strings.Cut(out, " "); ok && out != "unknown" {
		return registryBinary + " " + rest
	}
	return registryBinary + " (version unknown)"
}

// stop kills the registry process and waits for it.
func (s *registryServer) stop() {
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

func (s *registryServer) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	return tail(string(b), 20)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Registry API paths the proxy tells apart.
var (
	blobGetPath  = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)
	uploadPath   = regexp.MustCompile(`^/v2/.+/blobs/uploads/([^/]*)$`)
	manifestPath = regexp.MustCompile(`^/v2/.+/manifests/[^/]+$`)
)

// traffic is what went through the proxy between two resets.
type traffic struct {
	// requests counts round trips: HTTP requests and HTTPS attempts.
	requests int
	// hellos counts the HTTPS attempts (TLS hellos) among them.
	hellos int
	// spans are the round trips' times, for their sequential depth.
	spans []span
	// downBlobs maps a blob digest to the GET response bytes served for it.
	downBlobs map[string]int64
	// downManifests is the GET response bytes of manifests.
	downManifests int64
	// upBlobs maps a blob digest to the request bytes of its upload
	// (POST, PATCH and the closing PUT ?digest= of one upload session).
	upBlobs map[string]int64
	// upUnfinished is the bytes of upload sessions not closed by a PUT
	// with a digest (yet), and of other request bodies.
	upUnfinished int64
	// upManifests is the request bytes of manifest PUTs.
	upManifests int64
}

// A split is one build's traffic divided into layer blobs and the rest
// (manifests, image configs, cache configs).
type split struct {
	requests   int
	hellos     int
	depth      int
	downLayers int64
	downOther  int64
	upLayers   int64
	upOther    int64
}

// splitBy divides t by the set of layer digests. Upload bytes not tied to
// a digest count as layer bytes (an aborted upload is most likely one).
func (t traffic) splitBy(layers map[string]bool) split {
	s := split{requests: t.requests, hellos: t.hellos, depth: depth(t.spans), downOther: t.downManifests, upOther: t.upManifests, upLayers: t.upUnfinished}
	for d, n := range t.downBlobs {
		if layers[d] {
			s.downLayers += n
		} else {
			s.downOther += n
		}
	}
	for d, n := range t.upBlobs {
		if layers[d] {
			s.upLayers += n
		} else {
			s.upOther += n
		}
	}
	return s
}

func (s split) up() int64 { return s.upLayers + s.upOther }

// countingProxy is a reverse proxy on 127.0.0.1 in front of a registry
// that counts the bytes of blob and manifest downloads (GET response
// bodies) and of uploads (PATCH, PUT and POST request bodies).
type countingProxy struct {
	addr     string // host:port kiln talks to
	latency  time.Duration
	srv      *http.Server
	rp       *httputil.ReverseProxy
	inflight atomic.Int64

	mu       sync.Mutex
	t        traffic
	sessions map[string]int64 // upload session (path) → bytes so far
}

// newCountingProxy listens on a free port of 127.0.0.1 and forwards to
// the registry at target (host:port), each request (and HTTPS attempt)
// after waiting latency. Proxy errors go to errLog.
func newCountingProxy(target string, latency time.Duration, errLog io.Writer) (*countingProxy, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the counting proxy: %w", err)
	}
	p := &countingProxy{addr: l.Addr().String(), latency: latency}
	p.reset()
	// The Host header is left as the proxy's, so the registry's upload
	// Locations point back through the proxy.
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.ErrorLog = log.New(errLog, "bench: proxy: ", 0)
	p.rp.ModifyResponse = p.countResponse
	p.srv = &http.Server{Handler: p, ErrorLog: p.rp.ErrorLog}
	go p.srv.Serve(&helloListener{Listener: l, latency: latency, hello: func(s span) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.t.requests++
		p.t.hellos++
		p.t.spans = append(p.t.spans, s)
	}})
	return p, nil
}

func (p *countingProxy) close() { p.srv.Close() }

// reset zeroes the counts.
func (p *countingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t = traffic{downBlobs: map[string]int64{}, upBlobs: map[string]int64{}}
	p.sessions = map[string]int64{}
}

// snapshot returns the counts since the last reset, after waiting (a
// little) for requests still being proxied.
func (p *countingProxy) snapshot() traffic {
	for i := 0; i < 100 && p.inflight.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.t
	t.downBlobs, t.upBlobs = maps.Clone(p.t.downBlobs), maps.Clone(p.t.upBlobs)
	t.spans = slices.Clone(p.t.spans)
	for _, n := range p.sessions {
		t.upUnfinished += n
	}
	return t
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	start := time.Now()
	defer func() {
		p.mu.Lock()
		p.t.spans = append(p.t.spans, span{start, time.Now()})
		p.mu.Unlock()
	}()
	p.mu.Lock()
	p.t.requests++
	p.mu.Unlock()
	time.Sleep(p.latency)
	var sent atomic.Int64
	upload := r.Method == http.MethodPatch || r.Method == http.MethodPut || r.Method == http.MethodPost
	if upload && r.Body != nil && r.Body != http.NoBody {
		r.Body = &countBody{rc: r.Body, add: func(n int64) { sent.Add(n) }}
	}
	p.rp.ServeHTTP(w, r)
	if !upload {
		return
	}
	n := sent.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch m := uploadPath.FindStringSubmatch(r.URL.Path); {
	case manifestPath.MatchString(r.URL.Path):
		p.t.upManifests += n
	case m != nil:
		// One upload session is POST .../uploads/, PATCH .../uploads/ID,
		// PUT .../uploads/ID?digest=D; a monolithic upload is one POST or
		// PUT with ?digest=D.
		session := m[1]
		if d := r.URL.Query().Get("digest"); d != "" {
			p.t.upBlobs[d] += p.sessions[session] + n
			delete(p.sessions, session)
		} else if n > 0 {
			p.sessions[session] += n
		}
	default:
		p.t.upUnfinished += n
	}
}

// countResponse wraps the body of a successful GET of a blob or manifest
// so that its bytes are counted as the client reads them.
func (p *countingProxy) countResponse(resp *http.Response) error {
	req := resp.Request
	if req.Method != http.MethodGet || resp.StatusCode/100 != 2 {
		return nil
	}
	if m := blobGetPath.FindStringSubmatch(req.URL.Path); m != nil {
		digest := m[1]
		resp.Body = &countBody{rc: resp.Body, add: func(n int64) {
			p.mu.Lock()
			p.t.downBlobs[digest] += n
			p.mu.Unlock()
		}}
	} else if manifestPath.MatchString(req.URL.Path) {
		resp.Body = &countBody{rc: resp.Body, add: func(n int64) {
			p.mu.Lock()
			p.t.downManifests += n
			p.mu.Unlock()
		}}
	}
	return nil
}

// countBody reports the bytes read through it.
type countBody struct {
	rc  io.ReadCloser
	add func(int64)
}

func (c *countBody) Read(b []byte) (int, error) {
	n, err := c.rc.Read(b)
	if n > 0 {
		c.add(int64(n))
	}
	return n, err
}

func (c *countBody) Close() error { return c.rc.Close() }

// manifestAccept is every manifest type kiln may push.
const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

// manifestJSON is the part of an image manifest or index the bench reads.
type manifestJSON struct {
	Config *struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
	Manifests []struct {
		Digest string `json:"digest"`
	} `json:"manifests"`
}

// parseManifest returns the layer digests of an image manifest, or the
// child manifest digests of an index.
func parseManifest(b []byte) (layers, children []string, err error) {
	var m manifestJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("reading manifest: %w", err)
	}
	for _, l := range m.Layers {
		layers = append(layers, l.Digest)
	}
	for _, c := range m.Manifests {
		children = append(children, c.Digest)
	}
	return layers, children, nil
}

// registryClient reads manifests straight from the registry, not through
// the proxy, so the bench's own reads are not counted.
type registryClient struct {
	addr   string
	client *http.Client
}

var errNoManifest = errors.New("no such manifest")

// manifest fetches repo:ref and returns its digest and body.
func (c registryClient) manifest(ctx context.Context, repo, ref string) (string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("reading %s:%s: %w", repo, ref, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", nil, fmt.Errorf("reading %s:%s: %w", repo, ref, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", nil, fmt.Errorf("reading %s:%s: %w", repo, ref, errNoManifest)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("reading %s:%s: %s: %s", repo, ref, resp.Status, bytes.TrimSpace(b))
	}
	return resp.Header.Get("Docker-Content-Digest"), b, nil
}

// layers adds the layer digests of repo:ref (and of its children, for an
// index) to set, and returns ref's digest.
func (c registryClient) layers(ctx context.Context, repo, ref string, set map[string]bool) (string, error) {
	digest, b, err := c.manifest(ctx, repo, ref)
	if err != nil {
		return "", err
	}
	layers, children, err := parseManifest(b)
	if err != nil {
		return "", fmt.Errorf("%s:%s: %w", repo, ref, err)
	}
	for _, l := range layers {
		set[l] = true
	}
	for _, child := range children {
		if _, err := c.layers(ctx, repo, child, set); err != nil {
			return "", err
		}
	}
	return digest, nil
}
