package build

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/remote"
	"github.com/kiln-build/kiln/internal/store"
)

// holdTimeout is how long the test registries below hold a request for
// what should come beside it, before they let it through and the test
// fails.
const holdTimeout = 10 * time.Second

// tailRegistry serves an in-process registry on 127.0.0.1 whose handler
// first calls hold (nil: none) with each request.
func tailRegistry(t *testing.T, hold func(r *http.Request)) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold != nil {
			hold(r)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, d := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// oneRunContext is a context of busybox and a Dockerfile that copies it
// and runs one RUN.
func oneRunContext(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile(imagetest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo ran > /out\"]\n",
		"busybox": string(bb)})
	if err := os.Chmod(filepath.Join(ctxDir, "busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	return ctxDir
}

func pushOpts(t *testing.T, ctxDir, tag string) Options {
	t.Helper()
	client, err := remote.New(remote.Options{RetryMaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	return Options{ContextDir: ctxDir, StateDir: t.TempDir(), Tags: []string{tag}, Push: true, Remote: client}
}

// TestPushConfigBesideLastLayer: the image config is uploaded while the
// last layer's upload is still on its way, not after it: the registry
// holds the upload of every layer until the config has arrived. The image
// pushed is whole.
func TestPushConfigBesideLastLayer(t *testing.T) {
	var (
		mu        sync.Mutex
		configIn  = make(chan struct{})
		closed    bool
		heldLayer bool
	)
	host := tailRegistry(t, func(r *http.Request) {
		if r.Method != http.MethodPatch && r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/blobs/uploads/") {
			return
		}
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil || len(body) == 0 {
			return
		}
		// The config is the one blob of a COPY build that is JSON; the
		// layer is a gzip stream.
		if body[0] == '{' {
			mu.Lock()
			if !closed {
				closed = true
				close(configIn)
			}
			mu.Unlock()
			return
		}
		mu.Lock()
		heldLayer = true
		mu.Unlock()
		select {
		case <-configIn:
		case <-time.After(holdTimeout):
		}
	})
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a.bin /a\n", "a.bin": strings.Repeat("layer bytes\n", 20000)})
	tag := host + "/tail/config:1"
	start := time.Now()
	res, err := Run(context.Background(), pushOpts(t, ctxDir, tag))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= holdTimeout {
		t.Errorf("the build took %v: the layer upload waited for a config that came only after it", took)
	}
	mu.Lock()
	if !heldLayer || !closed {
		t.Errorf("held a layer upload: %v, config uploaded: %v; want both", heldLayer, closed)
	}
	mu.Unlock()
	got := imagetest.Pull(t, tag)
	if d, _ := got.Digest(); d != res.Digest {
		t.Errorf("pushed %s, built %s", d, res.Digest)
	}
	imagetest.Check(t, got)
}

// TestSnapshotSyncBesidePush: the snapshots a RUN committed unsynced are
// synced while the image is pushed, not after the push and the cache
// exports: the registry holds the manifest PUT until no unsynced marker is
// left in the state dir.
func TestSnapshotSyncBesidePush(t *testing.T) {
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := oneRunContext(t)
	var stateDir string
	markers := func() int {
		n := 0
		filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == "unsynced" {
				n++
			}
			return nil
		})
		return n
	}
	var left int = -1
	host := tailRegistry(t, func(r *http.Request) {
		if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") {
			return
		}
		deadline := time.Now().Add(holdTimeout)
		for left = markers(); left > 0 && time.Now().Before(deadline); left = markers() {
			time.Sleep(5 * time.Millisecond)
		}
	})
	opts := pushOpts(t, ctxDir, host+"/tail/sync:1")
	stateDir = opts.StateDir
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d unsynced snapshot markers left while the manifest was pushed, want 0", left)
	}
}

// TestNetworkClosedWhenRunReturns: the build's network namespace, stopped
// in the background once the steps are solved, is gone when Run returns:
// no slirp4netns child of this process is left, on success and when the
// push fails.
func TestNetworkClosedWhenRunReturns(t *testing.T) {
	imagetest.Require(t, "root", "runc", "busybox", "slirp4netns")
	ctxDir := oneRunContext(t)
	failPush := false
	host := tailRegistry(t, func(r *http.Request) {
		if failPush && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			// Let the registry answer a method it does not allow.
			r.Method = http.MethodTrace
		}
	})
	for _, fail := range []bool{false, true} {
		failPush = fail
		_, err := Run(context.Background(), pushOpts(t, ctxDir, host+"/tail/net-"+strconv.FormatBool(fail)+":1"))
		if (err != nil) != fail {
			t.Fatalf("push failing %v: Run: %v", fail, err)
		}
		if kids := slirpChildren(t); len(kids) > 0 {
			t.Errorf("push failing %v: slirp4netns still running after Run returned: pids %v", fail, kids)
		}
	}
}

// slirpChildren returns the pids of this process's slirp4netns children.
func slirpChildren(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(slirp4netns") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestChecksumCacheSavedBesidePush: the context's checksum cache is
// written while the image is pushed, not after it: the registry holds the
// manifest PUT until the cache file exists.
func TestChecksumCacheSavedBesidePush(t *testing.T) {
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := oneRunContext(t)
	// Files changed within the racy window (50 ms for sub-second
	// timestamps) are not cached, and a ctime cannot be set back: let the
	// context age.
	time.Sleep(100 * time.Millisecond)
	var sums string
	saved := false
	host := tailRegistry(t, func(r *http.Request) {
		if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") {
			return
		}
		for deadline := time.Now().Add(holdTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(sums); err == nil {
				saved = true
				return
			}
		}
	})
	opts := pushOpts(t, ctxDir, host+"/tail/sums:1")
	st, err := store.Open(opts.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	sums = st.ContextCacheFile(ctxDir)
	st.Close()
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if !saved {
		t.Errorf("no checksum cache %s while the manifest was pushed", filepath.Base(sums))
	}
	if _, err := os.Stat(sums); err != nil {
		t.Errorf("no checksum cache after the build: %v", err)
	}
}
