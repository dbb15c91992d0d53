package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestBuildLeavesHostMounts: a build whose RUN step has the default
// network (slirp4netns) leaves the mounts of the namespace kiln runs in
// alone, also those below a shared mount, as all are on a systemd host
// (/dev/shm, /sys/fs/cgroup) and as dockerd makes its data root. Before
// kiln gave slirp4netns a private mount namespace, its sandbox's lazy
// unmount of its old root propagated back and unmounted them.
//
// kiln runs from a locked thread (never unlocked: the runtime discards
// it) in a private mount namespace playing the host: a shared tmpfs with
// a tmpfs below it. Nothing reaches the real host's mounts.
func TestBuildLeavesHostMounts(t *testing.T) {
	imagetest.Require(t, "root", "runc", "slirp4netns")
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo hi > /f\n"})
	state := filepath.Join(t.TempDir(), "state")
	dir := t.TempDir()
	shared, leaf := filepath.Join(dir, "shared"), filepath.Join(dir, "shared", "leaf")
	type result struct {
		before, after []string
		out           string
		err           error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		var r result
		r.err = func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unsharing the mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("making mounts private: %w", err)
			}
			for _, m := range []string{shared, leaf} {
				if err := os.Mkdir(m, 0o755); err != nil {
					return err
				}
				if err := unix.Mount("tmpfs", m, "tmpfs", 0, "size=1m"); err != nil {
					return fmt.Errorf("mounting %s: %w", m, err)
				}
				if m == shared {
					if err := unix.Mount("", m, "", unix.MS_SHARED, ""); err != nil {
						return fmt.Errorf("making %s shared: %w", m, err)
					}
				}
			}
			var err error
			if r.before, err = imagetest.ThreadMounts(dir); err != nil {
				return err
			}
			cmd := exec.Command(kilnBin, "build", "--progress", "plain", "--network", "default", ctxDir)
			cmd.Env = append(os.Environ(), "KILN_STATE="+state)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err = cmd.Run() // forked from this thread: in its namespace
			r.out = out.String()
			if err != nil {
				return fmt.Errorf("kiln build: %w", err)
			}
			r.after, err = imagetest.ThreadMounts(dir)
			return err
		}()
		c <- r
	}()
	r := <-c
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	if len(r.before) != 2 {
		t.Fatalf("set-up: mounts %v, want %s and %s", r.before, shared, leaf)
	}
	if !strings.Contains(r.out, "RUN echo hi") {
		t.Fatalf("the build ran no RUN step:\n%s", r.out)
	}
	if strings.Join(r.after, "\n") != strings.Join(r.before, "\n") {
		t.Errorf("a build with a RUN step on the default network changed the mounts of kiln's namespace:\nbefore %v\nafter  %v\n%s", r.before, r.after, r.out)
	}
}
