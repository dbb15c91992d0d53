package exec

import (
	"bytes"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Hosts in cgroup "hybrid" mode have the v1 controllers under
// /sys/fs/cgroup and a v2 hierarchy at /sys/fs/cgroup/unified. crun (1.8 at
// least) refuses to create any container there as soon as the v2 hierarchy
// has a controller ("cgroups in hybrid mode not supported, drop all
// controllers from cgroupv2"), whatever the cgroup manager; on Debian 12
// hosts hugetlb commonly sits there. runc handles such hosts.
//
// The way through is to start crun in a private mount namespace in which
// /sys/fs/cgroup/unified is unmounted: crun then sees a plain v1 host and
// places the container in the v1 controllers, as runc does. The host's
// mounts are untouched.

const (
	cgroupRoot    = "/sys/fs/cgroup"
	cgroupUnified = "/sys/fs/cgroup/unified"
)

// crunNeedsHiddenUnified reports whether the runtime at path is crun and
// this host is a hybrid one that crun would refuse.
func crunNeedsHiddenUnified(path string) bool {
	if filepath.Base(path) != "crun" {
		return false
	}
	var st unix.Statfs_t
	if unix.Statfs(cgroupRoot, &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return false
	}
	if unix.Statfs(cgroupUnified, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return false
	}
	b, err := os.ReadFile(filepath.Join(cgroupUnified, "cgroup.controllers"))
	return err == nil && len(bytes.TrimSpace(b)) > 0
}

// startWithoutUnified starts cmd in a new mount namespace without
// /sys/fs/cgroup/unified.
//
// Go cannot run code between fork and exec, so the namespace is made on a
// dedicated OS thread: the goroutine locks itself to its thread, unshares
// the mount namespace there (unshare(CLONE_NEWNS) also unshares the thread's
// filesystem attributes, which is allowed in a threaded process), and forks
// from it; the child inherits that thread's namespace. The goroutine never
// unlocks, so the Go runtime discards the thread when it returns, and it
// does not spawn new threads from a locked one.
func startWithoutUnified(cmd *osexec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			if err := hideUnifiedHere(); err != nil {
				return err
			}
			return cmd.Start()
		}()
	}()
	return <-errc
}

// hideUnifiedHere moves the calling goroutine's OS thread, which must be
// locked and must never be unlocked, to a new mount namespace without
// /sys/fs/cgroup/unified.
func hideUnifiedHere() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unsharing mount namespace: %w", err)
	}
	// Slave, so that the unmount below does not propagate back.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Unmount(cgroupUnified, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("hiding %s: %w", cgroupUnified, err)
	}
	return nil
}
