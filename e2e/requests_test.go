package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// requestsDockerfile needs no runtime: two COPY steps on scratch.
const requestsDockerfile = "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n"

// requestsOf reads, from --metadata-file's kiln.summary, the requests of
// each cache (-1 when the summary has none for it).
func requestsOf(t *testing.T, md string) map[string]int64 {
	t.Helper()
	var s struct {
		Summary struct {
			Caches []struct {
				Source    string
				Direction string
				Requests  *int64
			}
		} `json:"kiln.summary"`
	}
	decodeJSONFile(t, md, &s)
	out := map[string]int64{}
	for _, c := range s.Summary.Caches {
		n := int64(-1)
		if c.Requests != nil {
			n = *c.Requests
		}
		out[c.Direction+" "+c.Source] = n
	}
	return out
}

// cacheLineRequests is the "N requests" of a cache's line in plain
// progress output, -1 if the line has none.
func cacheLineRequests(t *testing.T, stderr, source string) int64 {
	t.Helper()
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "  cache "+source+": ") {
			m := regexp.MustCompile(`, (\d+) requests?$`).FindStringSubmatch(l)
			if m == nil {
				return -1
			}
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no cache line for %s in:\n%s", source, stderr)
	return 0
}

// requestsBuild builds ctxDir in a fresh state dir into a local directory
// (so imported layers are read), with flags, and returns stderr and the
// per-cache request counts of its summary.
func requestsBuild(t *testing.T, ctxDir string, env []string, flags ...string) (string, map[string]int64) {
	t.Helper()
	md := filepath.Join(t.TempDir(), "md.json")
	args := append([]string{"build", "--progress", "plain", "--metadata-file", md,
		"-o", "type=local,dest=" + filepath.Join(t.TempDir(), "out")}, flags...)
	r := mustKiln(t, filepath.Join(t.TempDir(), "state"), env, append(args, ctxDir)...)
	return r.stderr, requestsOf(t, md)
}

// TestCacheRequestCounts: the requests the summary and the plain cache
// lines give for a registry cache equal what a counting proxy in front of
// docker-registry saw, for an export, an import (lazy layers read), and
// both at once; a local cache shows none counted (not 0).
func TestCacheRequestCounts(t *testing.T) {
	reg := startRegistry(t, "")
	p := newCountingProxy(t, reg)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": requestsDockerfile, "a.txt": "a\n", "b.txt": "b\n"})
	spec := "type=registry,ref=" + p.addr + "/cache/app:c"
	// As the summary names it: attributes after type in order.
	maxSpec := "type=registry,mode=max,ref=" + p.addr + "/cache/app:c"
	local := "type=local,dest=" + filepath.Join(t.TempDir(), "lc")

	stderr, got := requestsBuild(t, ctxDir, nil, "--cache-to", maxSpec, "--cache-to", local)
	export := got["export "+maxSpec]
	if seen := p.takeRequests(); export != seen || export <= 0 {
		t.Errorf("export: summary counts %d requests, the proxy saw %d", export, seen)
	}
	if n := cacheLineRequests(t, stderr, maxSpec); n != export {
		t.Errorf("export: plain line says %d requests, summary %d", n, export)
	}
	if n := got["export "+local]; n != -1 {
		t.Errorf("local export: %d requests in the summary, want none counted", n)
	}
	if n := cacheLineRequests(t, stderr, local); n != -1 {
		t.Errorf("local export: plain line counts %d requests, want none", n)
	}

	stderr, got = requestsBuild(t, ctxDir, nil, "--cache-from", spec)
	imp := got["import "+spec]
	if seen := p.takeRequests(); imp != seen || imp <= 0 {
		t.Errorf("import: summary counts %d requests, the proxy saw %d", imp, seen)
	}
	if n := cacheLineRequests(t, stderr, spec); n != imp {
		t.Errorf("import: plain line says %d requests, summary %d", n, imp)
	}
	if !strings.Contains(stderr, "2 hits") {
		t.Errorf("import did not hit both steps:\n%s", stderr)
	}

	writeFiles(t, ctxDir, map[string]string{"b.txt": "b2\n"})
	_, got = requestsBuild(t, ctxDir, nil, "--cache-from", spec, "--cache-to", spec)
	both := got["import "+spec] + got["export "+spec]
	if seen := p.takeRequests(); both != seen || got["import "+spec] <= 0 || got["export "+spec] <= 0 {
		t.Errorf("import and export: summary counts %d + %d requests, the proxy saw %d", got["import "+spec], got["export "+spec], seen)
	}
	t.Logf("registry cache requests: export %d, import %d, import+export %d", export, imp, both)
}

// logServer is a `kiln cache-server --debug` whose request log is kept.
type logServer struct {
	addr string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
}

func (s *logServer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(b)
}

// requests stops the server and returns how many requests it logged.
func (s *logServer) requests(t *testing.T) int64 {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(strings.Count(s.log.String(), "msg=request "))
}

// startLogServer starts the server on addr ("" for a free port) over dir.
func startLogServer(t *testing.T, dir, addr string) *logServer {
	t.Helper()
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	s := &logServer{addr: addr}
	s.cmd = exec.Command(kilnBin, "--debug", "cache-server", "--listen", s.addr, "--dir", dir)
	s.cmd.Stderr = s
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting kiln cache-server: %v", err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	})
	waitListen(t, s.addr)
	return s
}

// TestGHARequestCounts: the requests the summary gives for a type=gha
// cache equal those kiln cache-server logged, over v1 and v2 (Twirp and
// blob URLs), for an export and an import.
func TestGHARequestCounts(t *testing.T) {
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": requestsDockerfile, "a.txt": "a\n", "b.txt": "b\n"})
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			dir := t.TempDir()
			const token = "e2e-requests-token"
			s := startLogServer(t, dir, "")
			env := (&cacheServer{addr: s.addr}).env(v, token)
			_, got := requestsBuild(t, ctxDir, env, "--cache-to", "type=gha,mode=max")
			export := got["export type=gha,mode=max"]
			if seen := s.requests(t); export != seen || export <= 0 {
				t.Errorf("export: summary counts %d requests, the server logged %d", export, seen)
			}
			s = startLogServer(t, dir, s.addr)
			stderr, got := requestsBuild(t, ctxDir, env, "--cache-from", "type=gha")
			imp := got["import type=gha"]
			if seen := s.requests(t); imp != seen || imp <= 0 {
				t.Errorf("import: summary counts %d requests, the server logged %d", imp, seen)
			}
			if !strings.Contains(stderr, "2 hits") {
				t.Errorf("import did not hit both steps:\n%s", stderr)
			}
			t.Logf("gha v%d cache requests: export %d, import %d", v, export, imp)
		})
	}
}

// waitListen waits until addr accepts connections (a dial, not a request
// the server would log).
func waitListen(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decodeJSONFile decodes the JSON file at path into v.
func decodeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
}
