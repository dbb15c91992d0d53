package exec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestNetNSLeavesSharedMounts: starting slirp4netns (whose --enable-sandbox
// pivots into a new mount namespace and lazily unmounts the old root)
// leaves the mounts of the namespace kiln runs in alone, also below a
// shared mount, as every mount is on a systemd host and as dockerd makes
// its data root. Before slirp4netns got a private mount namespace of its
// own, its unmount propagated back: every such mount (a docker
// container's rootfs, /dev/shm, /sys/fs/cgroup...) vanished from the host.
//
// The test plays the host in a private mount namespace of its own, on a
// locked thread that is never unlocked (the runtime discards it), so what
// it mounts and anything that goes wrong stays there: a shared tmpfs with
// a tmpfs below it, then NewNetNS from that thread.
func TestNetNSLeavesSharedMounts(t *testing.T) {
	imagetest.Require(t, "root", "slirp4netns")
	dir := t.TempDir()
	shared, leaf := filepath.Join(dir, "shared"), filepath.Join(dir, "shared", "leaf")
	type result struct {
		before, after []string
		err           error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is thrown away
		var r result
		r.before, r.after, r.err = func() ([]string, []string, error) {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return nil, nil, fmt.Errorf("unsharing the mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return nil, nil, fmt.Errorf("making mounts private: %w", err)
			}
			if err := os.Mkdir(shared, 0o755); err != nil {
				return nil, nil, err
			}
			if err := unix.Mount("tmpfs", shared, "tmpfs", 0, "size=1m"); err != nil {
				return nil, nil, fmt.Errorf("mounting %s: %w", shared, err)
			}
			if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
				return nil, nil, fmt.Errorf("making %s shared: %w", shared, err)
			}
			if err := os.Mkdir(leaf, 0o755); err != nil {
				return nil, nil, err
			}
			if err := unix.Mount("tmpfs", leaf, "tmpfs", 0, "size=1m"); err != nil {
				return nil, nil, fmt.Errorf("mounting %s: %w", leaf, err)
			}
			before, err := imagetest.ThreadMounts(dir)
			if err != nil {
				return nil, nil, err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			nsDir := filepath.Join(dir, "netns")
			if err := os.Mkdir(nsDir, 0o755); err != nil {
				return before, nil, err
			}
			n, err := NewNetNS(ctx, NetNSOptions{Dir: nsDir})
			if err != nil {
				return before, nil, fmt.Errorf("NewNetNS: %w", err)
			}
			// slirp4netns has pivoted by the time it reports ready; give a
			// lazy unmount's propagation a moment all the same.
			time.Sleep(100 * time.Millisecond)
			after, err := imagetest.ThreadMounts(dir)
			if cerr := n.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing NetNS: %w", cerr)
			}
			return before, after, err
		}()
		c <- r
	}()
	r := <-c
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.before) != 2 {
		t.Fatalf("set-up: mounts under the test dir %v, want %s and %s", r.before, shared, leaf)
	}
	if strings.Join(r.after, "\n") != strings.Join(r.before, "\n") {
		t.Errorf("starting slirp4netns changed the mounts of the namespace it was started from:\nbefore %v\nafter  %v", r.before, r.after)
	}
}
