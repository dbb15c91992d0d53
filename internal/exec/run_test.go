package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// applets are the busybox applets the test rootfs links.
var applets = []string{"sh", "id", "env", "pwd", "cat", "echo", "sleep", "ls", "hostname", "grep", "true", "false", "test", "[", "df", "awk"}

// newRoot builds a minimal rootfs from the host's busybox-static, with
// users root (0), app (1000, also in group wheel) and groups root, wheel
// (10) and app (1000). It has no /etc/hosts, /etc/resolv.conf, /proc, /sys
// or /dev.
func newRoot(t *testing.T) string {
	t.Helper()
	imagetest.Require(t, "busybox")
	bb, err := os.ReadFile(imagetest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nwheel:x:10:app\napp:x:1000:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// forRuntimes runs f as a subtest for runc and for crun, each requiring
// root, busybox and its runtime.
func forRuntimes(t *testing.T, f func(t *testing.T, runtime string)) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			imagetest.Require(t, "root", "busybox", rt)
			f(t, rt)
		})
	}
}

// run runs args in a fresh rootfs and returns stdout, stderr and the error.
func run(t *testing.T, spec Spec) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	if spec.Root == "" {
		spec.Root = newRoot(t)
	}
	if spec.BundleDir == "" {
		spec.BundleDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Run(ctx, spec)
	return stdout.String(), stderr.String(), err
}

func TestRunOutputAndExit(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		tests := []struct {
			name       string
			script     string
			wantOut    string
			wantErrOut string
			wantCode   int // 0: success
		}{
			{"stdout and stderr", "echo out; echo err >&2", "out\n", "err\n", 0},
			{"exit code", "echo before; exit 3", "before\n", "", 3},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				out, errOut, err := run(t, Spec{Runtime: rt, Args: []string{"/bin/sh", "-c", tc.script}})
				var code int
				if err != nil {
					var ee *ExitError
					if !errors.As(err, &ee) {
						t.Fatalf("Run: %v (not an ExitError)", err)
					}
					code = ee.Code
					if got, want := err.Error(), fmt.Sprintf("exit code %d", tc.wantCode); got != want {
						t.Errorf("Error() = %q, want %q", got, want)
					}
				}
				if code != tc.wantCode {
					t.Errorf("exit code = %d, want %d", code, tc.wantCode)
				}
				if out != tc.wantOut {
					t.Errorf("stdout = %q, want %q", out, tc.wantOut)
				}
				if errOut != tc.wantErrOut {
					t.Errorf("stderr = %q, want %q", errOut, tc.wantErrOut)
				}
			})
		}
	})
}

// notifyWriter calls f once, the first time its content contains want.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	f    func()
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.f != nil && strings.Contains(w.buf.String(), w.want) {
		w.f()
		w.f = nil
	}
	return len(p), nil
}

// TestRunStreams checks that output reaches the writer while the process
// is still running: the process waits for a file that the test creates only
// once it has seen the first line.
func TestRunStreams(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		root := newRoot(t)
		w := &notifyWriter{want: "first\n", f: func() {
			os.WriteFile(filepath.Join(root, "tmp/go"), nil, 0o644)
		}}
		script := `echo first; i=0; while [ ! -e /tmp/go ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done; echo second`
		err := Run(context.Background(), Spec{Runtime: rt, Root: root, BundleDir: t.TempDir(),
			Args: []string{"/bin/sh", "-c", script}, Stdout: w})
		if err != nil {
			t.Fatalf("Run: %v (output not streamed before exit?)", err)
		}
		if got, want := w.buf.String(), "first\nsecond\n"; got != want {
			t.Errorf("stdout = %q, want %q", got, want)
		}
	})
}

func TestRunEnvCwdHostname(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		tests := []struct {
			name    string
			spec    Spec
			script  string
			want    string
			wantDir string // must exist in the rootfs afterwards
		}{
			{
				name:   "default PATH added",
				spec:   Spec{Env: []string{"FOO=bar baz"}},
				script: `echo "$FOO|$PATH"; pwd`,
				want:   "bar baz|" + DefaultPath + "\n/\n",
			},
			{
				name:   "own PATH kept",
				spec:   Spec{Env: []string{"PATH=/bin"}},
				script: `echo "$PATH"; env | grep -c ^PATH=`,
				want:   "/bin\n1\n",
			},
			{
				name:    "missing cwd created",
				spec:    Spec{Cwd: "/work/dir"},
				script:  `pwd`,
				want:    "/work/dir\n",
				wantDir: "work/dir",
			},
			{
				name:   "hostname and hosts",
				spec:   Spec{Hostname: "box"},
				script: `hostname; cat /etc/hosts`,
				want:   "box\n" + string(hostsFile("box", nil)),
			},
			{
				name: "extra hosts",
				spec: Spec{Hostname: "box", Hosts: []Host{
					{Name: "db.internal", IP: net.ParseIP("10.1.2.3")},
					{Name: "v6", IP: net.ParseIP("fd00::7")},
				}},
				script: `cat /etc/hosts`,
				want: "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
					"10.1.2.3\tdb.internal\nfd00::7\tv6\n",
			},
			{
				name:   "default shm size",
				script: `df -k /dev/shm | awk 'NR==2 {print $2}'`,
				want:   "65536\n",
			},
			{
				name:   "shm size",
				spec:   Spec{ShmSize: 8 << 20},
				script: `df -k /dev/shm | awk 'NR==2 {print $2}'`,
				want:   "8192\n",
			},
			{
				name: "ulimits",
				spec: Spec{Ulimits: []Ulimit{
					{Name: "nofile", Soft: 1024, Hard: 2048},
					{Name: "nproc", Soft: 300, Hard: 400},
				}},
				script: `grep -E '^Max (open files|processes)' /proc/self/limits | awk '{print $(NF-2), $(NF-1)}'`,
				want:   "300 400\n1024 2048\n",
			},
			{
				// Docker's default capabilities are 0xa80425fb.
				name:   "umask and capabilities",
				script: `umask; grep -E '^Cap(Bnd|Eff)' /proc/self/status`,
				want:   "0022\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n",
			},
			{
				name:   "default hostname",
				script: `hostname`,
				want:   DefaultHostname + "\n",
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				spec := tc.spec
				spec.Runtime = rt
				spec.Root = newRoot(t)
				spec.Args = []string{"/bin/sh", "-c", tc.script}
				out, errOut, err := run(t, spec)
				if err != nil {
					t.Fatalf("Run: %v; stderr: %s", err, errOut)
				}
				if diff := cmp.Diff(tc.want, out); diff != "" {
					t.Errorf("stdout (-want +got):\n%s", diff)
				}
				if tc.wantDir != "" {
					if fi, err := os.Stat(filepath.Join(spec.Root, tc.wantDir)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
						t.Errorf("working directory in rootfs: %v, %v; want a 0755 directory", fi, err)
					}
				}
			})
		}
	})
}

func TestRunUser(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		tests := []struct {
			user string
			want string
		}{
			// As BuildKit runs them: the primary group is in groups=.
			{"", "uid=0(root) gid=0(root) groups=0(root)"},
			{"app", "uid=1000(app) gid=1000(app) groups=1000(app),10(wheel)"},
			{"1000", "uid=1000(app) gid=1000(app) groups=1000(app),10(wheel)"},
			{"app:wheel", "uid=1000(app) gid=10(wheel) groups=10(wheel)"},
			{"1000:10", "uid=1000(app) gid=10(wheel) groups=10(wheel)"},
			{"4242", "uid=4242 gid=0(root) groups=0(root)"},
			{"4242:1000", "uid=4242 gid=1000(app) groups=1000(app)"},
		}
		for _, tc := range tests {
			t.Run("user="+tc.user, func(t *testing.T) {
				out, errOut, err := run(t, Spec{Runtime: rt, User: tc.user, Args: []string{"id"}})
				if err != nil {
					t.Fatalf("Run: %v; stderr: %s", err, errOut)
				}
				// The order of groups= is the runtime's (crun sorts).
				if got := sortGroups(strings.TrimSpace(out)); got != sortGroups(tc.want) {
					t.Errorf("id = %q, want %q", got, tc.want)
				}
			})
		}
		t.Run("unknown user", func(t *testing.T) {
			_, _, err := run(t, Spec{Runtime: rt, User: "nobody", Args: []string{"id"}})
			if err == nil || !strings.Contains(err.Error(), "nobody") {
				t.Errorf("Run with unknown user: %v, want an error naming it", err)
			}
		})
	})
}

// TestRunCwdOwnedByUser: a missing working directory is created owned by
// the step's user (BuildKit's WORKDIR under USER), so the user can write
// there; existing directories keep their owner.
func TestRunCwdOwnedByUser(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		root := newRoot(t)
		out, errOut, err := run(t, Spec{Runtime: rt, Root: root, User: "app", Cwd: "/home/app/w",
			Args: []string{"/bin/sh", "-c", "echo x > made && pwd"}})
		if err != nil {
			t.Fatalf("Run: %v; stderr: %s", err, errOut)
		}
		if out != "/home/app/w\n" {
			t.Errorf("pwd = %q", out)
		}
		for rel, want := range map[string]uint32{"home": 1000, "home/app": 1000, "home/app/w": 1000, "home/app/w/made": 1000, "tmp": 0} {
			fi, err := os.Lstat(filepath.Join(root, rel))
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != want {
				t.Errorf("%s owned by %d, want %d", rel, uid, want)
			}
		}
		// An existing directory is not chowned.
		_, errOut, err = run(t, Spec{Runtime: rt, Root: root, User: "app", Cwd: "/tmp", Args: []string{"true"}})
		if err != nil {
			t.Fatalf("Run: %v; stderr: %s", err, errOut)
		}
		if fi, err := os.Lstat(filepath.Join(root, "tmp")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("the existing /tmp was chowned: %v", err)
		}
	})
}

// interfaces returns the interface names in /proc/net/dev text.
func interfaces(procNetDev string) []string {
	var names []string
	for _, line := range strings.Split(procNetDev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

func TestRunNetwork(t *testing.T) {
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	hostIfs := interfaces(string(host))
	forRuntimes(t, func(t *testing.T, rt string) {
		tests := []struct {
			network string
			want    []string
		}{
			{NetworkNone, []string{"lo"}},
			{NetworkHost, hostIfs},
			{NetworkDefault, []string{"lo", slirpTap}},
			{"", []string{"lo", slirpTap}}, // the build's own namespace, not the host's
		}
		for _, tc := range tests {
			t.Run("network="+tc.network, func(t *testing.T) {
				out, errOut, err := run(t, Spec{Runtime: rt, Network: tc.network,
					Args: []string{"/bin/sh", "-c", "cat /proc/net/dev; ls /sys/class/net >/dev/null"}})
				if err != nil {
					t.Fatalf("Run: %v; stderr: %s", err, errOut)
				}
				if diff := cmp.Diff(tc.want, interfaces(out)); diff != "" {
					t.Errorf("interfaces (-want +got):\n%s", diff)
				}
			})
		}
	})
	if len(hostIfs) < 2 {
		t.Logf("host has only %v: host and none networks look alike here", hostIfs)
	}
}

func TestRunMounts(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		secret := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
			t.Fatal(err)
		}
		cache := t.TempDir()
		root := newRoot(t)
		script := `cat /run/secrets/token; echo
			echo x > /run/secrets/token && exit 10
			echo cached > /cache/file || exit 11
			echo tmp > /scratch/file || exit 12
			test -f /etc/resolv.conf || exit 13
			echo x > /etc/hosts && exit 14
			exit 0`
		out, errOut, err := run(t, Spec{Runtime: rt, Root: root,
			Args: []string{"/bin/sh", "-c", script},
			Mounts: []Mount{
				{Type: MountBind, Source: secret, Target: "/run/secrets/token", ReadOnly: true},
				{Type: MountBind, Source: cache, Target: "/cache"},
				{Type: MountTmpfs, Target: "/scratch"},
			}})
		if err != nil {
			t.Fatalf("Run: %v; stdout: %s; stderr: %s", err, out, errOut)
		}
		if got := strings.SplitN(out, "\n", 2)[0]; got != "s3cret" {
			t.Errorf("secret = %q, want %q", got, "s3cret")
		}
		if b, err := os.ReadFile(filepath.Join(cache, "file")); err != nil || string(b) != "cached\n" {
			t.Errorf("cache dir file = %q, %v; want %q", b, err, "cached\n")
		}
		// Every mount point Run created is gone again; what was there stays.
		var got []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(root, p)
			if !strings.HasPrefix(rel, "bin/") {
				got = append(got, rel)
			}
			return nil
		})
		want := []string{".", "bin", "etc", "etc/group", "etc/passwd", "tmp"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rootfs after Run (-want +got):\n%s", diff)
		}
	})
}

func TestRunRuntimeError(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		_, _, err := run(t, Spec{Runtime: rt, Args: []string{"/bin/nonexistent"}})
		var ee *ExitError
		if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "/bin/nonexistent") {
			t.Errorf("Run of a missing binary: %v, want a runtime error naming it", err)
		}
	})
}

// containersIn lists the runtime's containers whose bundle is dir.
func containersIn(t *testing.T, rt, dir string) []string {
	t.Helper()
	// runc list fails when another process (a parallel package's test)
	// deletes a container while it reads the state dir: try again.
	var out []byte
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if out, err = osexec.Command(rt, "list", "-f", "json").Output(); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		var stderr string
		if ee, ok := err.(*osexec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s list: %v: %s", rt, err, stderr)
	}
	var cs []struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
	}
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &cs); err != nil {
			t.Fatalf("decoding %s list: %v: %s", rt, err, out)
		}
	}
	var ids []string
	for _, c := range cs {
		if c.Bundle == dir {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func TestRunCancel(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		bundle := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		started := &notifyWriter{want: "started\n", f: func() {}}
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Spec{Runtime: rt, Root: newRoot(t), BundleDir: bundle,
				Args: []string{"/bin/sh", "-c", "echo started; sleep 100"}, Stdout: started, Stderr: io.Discard})
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			started.mu.Lock()
			ok := started.f == nil
			started.mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("container did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ids := containersIn(t, rt, bundle); len(ids) != 1 {
			t.Fatalf("running containers for the bundle = %v, want one", ids)
		}
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel: %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Run returned %v after cancel, want promptly", d)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if ids := containersIn(t, rt, bundle); len(ids) != 0 {
			t.Errorf("containers left after cancel: %v", ids)
		}
	})
}

func TestAvailable(t *testing.T) {
	if err := Available("kiln-no-such-runtime"); err == nil || !strings.Contains(err.Error(), "kiln-no-such-runtime") {
		t.Errorf("Available(missing) = %v, want an error naming it", err)
	}
	t.Run("runc", func(t *testing.T) {
		imagetest.Require(t, "runc")
		for _, name := range []string{"", "runc"} {
			if err := Available(name); err != nil {
				t.Errorf("Available(%q) = %v, want nil", name, err)
			}
		}
	})
}

// TestRunLoopbackUp: with no network the loopback interface is still up
// (IFF_UP|IFF_LOOPBACK|IFF_RUNNING-ish flags; bit 0 is IFF_UP).
func TestRunLoopbackUp(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		out, errOut, err := run(t, Spec{Runtime: rt, Network: NetworkNone,
			Args: []string{"/bin/sh", "-c", "cat /sys/class/net/lo/flags"}})
		if err != nil {
			t.Fatalf("Run: %v; stderr: %s", err, errOut)
		}
		var flags int
		if _, err := fmt.Sscanf(strings.TrimSpace(out), "0x%x", &flags); err != nil || flags&1 == 0 {
			t.Errorf("lo flags = %q, want IFF_UP set", out)
		}
	})
}

// TestRunLeavesParentTimes: the mount points Run makes (/etc/hosts,
// /etc/resolv.conf, /proc, …) and removes leave their parents' times as
// they were, unless the step changed the parent itself.
func TestRunLeavesParentTimes(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		root := newRoot(t)
		old := time.Unix(1000000000, 0)
		for _, d := range []string{root, filepath.Join(root, "etc")} {
			if err := os.Chtimes(d, old, old); err != nil {
				t.Fatal(err)
			}
		}
		if _, stderr, err := run(t, Spec{Runtime: rt, Root: root, Args: []string{"/bin/true"}}); err != nil {
			t.Fatalf("run: %v\n%s", err, stderr)
		}
		for _, d := range []string{root, filepath.Join(root, "etc")} {
			if fi, _ := os.Stat(d); !fi.ModTime().Equal(old) {
				t.Errorf("%s mtime = %v after a run that touched nothing, want %v", d, fi.ModTime(), old)
			}
		}
		// A step that does change /etc keeps its change.
		if _, stderr, err := run(t, Spec{Runtime: rt, Root: root, Args: []string{"/bin/busybox", "touch", "/etc/new"}}); err != nil {
			t.Fatalf("run: %v\n%s", err, stderr)
		}
		if fi, _ := os.Stat(filepath.Join(root, "etc")); fi.ModTime().Equal(old) {
			t.Errorf("/etc mtime was put back although the step added a file to it")
		}
	})
}

// sortGroups sorts the list after "groups=" in id's output.
func sortGroups(id string) string {
	head, list, ok := strings.Cut(id, "groups=")
	if !ok {
		return id
	}
	gs := strings.Split(list, ",")
	slices.Sort(gs)
	return head + "groups=" + strings.Join(gs, ",")
}

// TestRunCancelWhileCreating: a build cancelled while the runtime is still
// creating the container (no container to kill yet) ends as soon as the
// container exists and is killed, not after the kill grace, and leaves no
// container. The grace is made long here so that waiting it out fails.
// Cancels land from the runtime's start onwards, a few milliseconds apart,
// so that some land before the container exists.
func TestRunCancelWhileCreating(t *testing.T) {
	defer func(g time.Duration) { killGrace = g }(killGrace)
	killGrace = 15 * time.Second
	forRuntimes(t, func(t *testing.T, rt string) {
		root := newRoot(t)
		landed := 0
		for delay := time.Duration(0); delay < 60*time.Millisecond; delay += 4 * time.Millisecond {
			bundle := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			// The runtime's log appears when it starts: cancel delay after.
			go func() {
				for {
					if _, err := os.Stat(filepath.Join(bundle, "runtime.log")); err == nil {
						break
					}
					if ctx.Err() != nil {
						return
					}
					time.Sleep(time.Millisecond / 2)
				}
				time.Sleep(delay)
				cancel()
			}()
			start := time.Now()
			err := Run(ctx, Spec{Runtime: rt, Root: root, BundleDir: bundle,
				Args: []string{"/bin/sleep", "100"}, Stdout: io.Discard, Stderr: io.Discard})
			took := time.Since(start)
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancel %v after start: Run: %v, want context.Canceled", delay, err)
			}
			if took > 10*time.Second {
				t.Fatalf("cancel %v after the runtime started: Run returned after %v", delay, took.Round(time.Millisecond))
			}
			if ids := containersIn(t, rt, bundle); len(ids) != 0 {
				t.Errorf("cancel %v after start: containers left: %v", delay, ids)
			}
			landed++
		}
		if landed == 0 {
			t.Fatal("no cancel landed")
		}
	})
}
