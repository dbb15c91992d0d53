package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nektos/act/pkg/artifactcache"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/backends"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
	"github.com/kiln-build/kiln/internal/imagetest"
)

// cacheServer is a running `kiln cache-server`.
type cacheServer struct {
	t    *testing.T
	addr string
	dir  string
	args []string
	cmd  *exec.Cmd
}

// startCacheServer starts `kiln cache-server` on a free loopback port over
// dir with extra flags, and stops it when the test ends.
func startCacheServer(t *testing.T, dir string, flags ...string) *cacheServer {
	t.Helper()
	s := &cacheServer{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), dir: dir}
	s.args = append([]string{"cache-server", "--listen", s.addr, "--dir", dir}, flags...)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *cacheServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(kilnBin, s.args...)
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting kiln cache-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("kiln cache-server did not listen on %s: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the server with SIGTERM and waits for it.
func (s *cacheServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// env is the runner environment of the server for API version v.
func (s *cacheServer) env(v int, token string) []string {
	base := "http://" + s.addr + "/"
	env := []string{"ACTIONS_RUNTIME_TOKEN=" + token, "ACTIONS_CACHE_URL=", "ACTIONS_RESULTS_URL=", "ACTIONS_CACHE_SERVICE_V2="}
	if v == 2 {
		return append(env, "ACTIONS_RESULTS_URL="+base, "ACTIONS_CACHE_SERVICE_V2=true")
	}
	return append(env, "ACTIONS_CACHE_URL="+base)
}

// TestGHACacheServer: a multi-stage build exports type=gha,mode=max to a
// running kiln cache-server; the state dir is wiped and the server
// restarted; the rebuild runs no RUN step and gives the same digest. Over
// the v1 REST API and over v2 (Twirp and blob URLs).
func TestGHACacheServer(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	const token = "e2e-cache-token"
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			srv := startCacheServer(t, filepath.Join(t.TempDir(), "entries"), "--token", token)
			env := append(srv.env(v, token), "SOURCE_DATE_EPOCH=1700000000")
			cold, s0 := cacheBuild(t, ctxDir, env, "--cache-to", "type=gha,mode=max")
			if s0.Summary.Ran == 0 {
				t.Fatalf("the cold build ran nothing:\n%s", cold.stderr)
			}
			srv.stop()
			srv.start()
			warm, s1 := cacheBuild(t, ctxDir, env, "--cache-from", "type=gha")
			if got := ranSteps(warm.stderr); len(got) != 0 {
				t.Errorf("the warm build from the gha cache ran steps %v:\n%s", got, warm.stderr)
			}
			if s1.Digest != s0.Digest {
				t.Errorf("warm digest %s, cold %s", s1.Digest, s0.Digest)
			}
			if len(s1.Summary.Caches) == 0 || s1.Summary.Caches[0].Hits == 0 {
				t.Errorf("the summary shows no gha hits: %+v", s1.Summary.Caches)
			}
		})
	}
}

// TestGHAAct: the same round trip against nektos/act's cache server (a v1
// server no one here wrote), as act and Gitea/Forgejo runners offer it.
func TestGHAAct(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	url := startActProcess(t)
	env := []string{"ACTIONS_RUNTIME_TOKEN=act-needs-none", "ACTIONS_CACHE_URL=" + url, "ACTIONS_RESULTS_URL=", "ACTIONS_CACHE_SERVICE_V2=", "SOURCE_DATE_EPOCH=1700000000"}
	_, s0 := cacheBuild(t, ctxDir, env, "--cache-to", "type=gha,mode=max,scope=e2e")
	warm, s1 := cacheBuild(t, ctxDir, env, "--cache-from", "type=gha,scope=e2e")
	if got := ranSteps(warm.stderr); len(got) != 0 || s1.Digest != s0.Digest {
		t.Errorf("warm build from act's cache ran %v, digest %s (cold %s):\n%s", got, s1.Digest, s0.Digest, warm.stderr)
	}
}

// TestGHATrust: ACTIONS_CACHE_MODE=read imports but skips the export, a
// read-only token skips it too (the server answers 403), and neither
// fails the build; each skip is one line and shows in the summary. A gha
// spec without a token is a usage error naming the variable.
func TestGHATrust(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	srv := startCacheServer(t, filepath.Join(t.TempDir(), "entries"), "--token", "rw-token", "--read-token", "ro-token")
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"cache mode read", append(srv.env(2, "rw-token"), "ACTIONS_CACHE_MODE=read"), "ACTIONS_CACHE_MODE=read"},
		{"read-only token", srv.env(2, "ro-token"), "may only read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, s := cacheBuild(t, ctxDir, tc.env, "--cache-to", "type=gha,mode=max")
			var lines []string
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.HasPrefix(l, "WARNING:") && strings.Contains(l, "export skipped") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("want one 'export skipped' line naming %q, got %q\n%s", tc.want, lines, r.stderr)
			}
			if strings.Contains(r.stderr, "rw-token") || strings.Contains(r.stderr, "ro-token") {
				t.Errorf("the output shows the token:\n%s", r.stderr)
			}
			if len(s.Summary.Caches) != 1 || !strings.Contains(s.Summary.Caches[0].Skipped, tc.want) {
				t.Errorf("summary caches %+v, want one skipped naming %q", s.Summary.Caches, tc.want)
			}
		})
	}
	bad := kiln(t, filepath.Join(t.TempDir(), "state"), []string{"ACTIONS_RUNTIME_TOKEN=", "ACTIONS_CACHE_URL=http://" + srv.addr + "/"}, "build", "--cache-to", "type=gha", ctxDir)
	if bad.code != 2 || !strings.Contains(bad.stderr, "ACTIONS_RUNTIME_TOKEN") || strings.Count(strings.TrimSpace(bad.stderr), "\n") != 0 {
		t.Errorf("gha without a token: exit %d, stderr %q; want exit 2 and one line naming ACTIONS_RUNTIME_TOKEN", bad.code, bad.stderr)
	}
}

// TestGHAConformance runs the cache conformance suite on the gha backend
// against a real kiln cache-server, over v1 and v2; the corrupt-blob case
// flips a byte of the entry's file in the server's directory.
func TestGHAConformance(t *testing.T) {
	const token = "e2e-conformance-token"
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			// A server per API: blob entries are content-addressed, so the
			// suite's blobs would otherwise already be there for v2.
			dir := filepath.Join(t.TempDir(), "entries")
			srv := startCacheServer(t, dir, "--token", token)
			var n atomic.Int64
			cachetest.Run(t, func(t *testing.T) cachetest.Location {
				spec := fmt.Sprintf("type=gha,token=%s,version=%d,scope=conf-v%d-%d", token, v, v, n.Add(1))
				if v == 2 {
					spec += ",url_v2=http://" + srv.addr + "/"
				} else {
					spec += ",url=http://" + srv.addr + "/"
				}
				return cachetest.Location{
					Table:   backends.Table(cache.Deps{}),
					Import:  spec,
					Export:  spec,
					Corrupt: func(t *testing.T, h v1.Hash) { imagetest.CorruptFileOf(t, dir, h) },
				}
			})
		})
	}
}

// actServerEnv names the directory of nektos/act's cache server when the
// test binary runs as that server (see startActProcess).
const actServerEnv = "KILN_E2E_ACT_SERVER"

// startActProcess runs nektos/act's cache server in a child process (this
// test binary, dispatched from TestMain) and returns its URL. A process of
// its own, because act's handler has a data race of its own (its port is
// written and read unsynchronised) that -race would pin on this package.
func startActProcess(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), actServerEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nektos/act's cache server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading act's cache server URL: %v", err)
	}
	return strings.TrimSpace(line)
}

// serveAct is the child of startActProcess: it serves act's cache server
// over dir on 127.0.0.1, prints its URL and waits to be killed.
func serveAct(dir string) {
	h, err := artifactcache.StartHandler(dir, "", "127.0.0.1", 0, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(h.ExternalURL())
	select {}
}
