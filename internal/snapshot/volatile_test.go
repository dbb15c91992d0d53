package snapshot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/layer"
)

// TestVolatileCommit: where the kernel takes "volatile" (Linux 5.10 on),
// a step's writable overlay is mounted volatile (its unmount syncs
// nothing), and the snapshot committed from it is marked unsynced with
// this boot's ID: held in this boot, stale (not held) under another boot's
// ID, and replaced by an unpack of its layer then. Sync makes the marked
// snapshots durable and drops their markers.
func TestVolatileCommit(t *testing.T) {
	imagetest.Require(t, "root")
	ctx := context.Background()
	s := newSnapshotter(t, false)
	if s.Mode() != ModeOverlay {
		t.Fatalf("mode %s, want overlayfs (fallback: %v)", s.Mode(), s.Fallback())
	}
	if !s.volatile {
		t.Fatalf("the probe found no volatile overlay mounts on this kernel (%s)", kernelRelease(t))
	}
	a, err := s.Prepare(ctx, nil)
	must(t, err)
	if opts := mountOptions(t, a.Root()); !strings.Contains(opts, "volatile") {
		t.Errorf("the writable overlay's options %q lack volatile", opts)
	}
	writeFile(t, a.Root(), "f", "data", 0o644)
	var diff bytes.Buffer
	must(t, a.WriteDiff(ctx, &diff, layer.TarOptions{}))
	id := diffID(diff.Bytes())
	must(t, a.Commit(ctx, id))
	must(t, a.Release())

	marker := filepath.Join(s.dir(id), unsyncedFile)
	b, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(b)) != bootID() {
		t.Fatalf("unsynced marker = %q, %v; want this boot's ID %q", b, err, bootID())
	}
	if !s.Has(id) {
		t.Fatal("a snapshot committed unsynced in this boot is not held")
	}

	// As after a reboot: the marker names another boot.
	must(t, os.WriteFile(marker, []byte("another-boot\n"), 0o600))
	if s.Has(id) {
		t.Fatal("a snapshot published unsynced in another boot is still held")
	}
	must(t, s.Unpack(ctx, id, bytes.NewReader(diff.Bytes())))
	if !s.Has(id) {
		t.Fatal("unpacking the layer again did not replace the stale snapshot")
	}
	if _, err := os.Lstat(marker); !os.IsNotExist(err) {
		t.Errorf("the unpacked snapshot kept an unsynced marker (lstat: %v)", err)
	}

	// Sync drops the markers of what this Snapshotter committed.
	a, err = s.Prepare(ctx, nil)
	must(t, err)
	writeFile(t, a.Root(), "g", "more", 0o644)
	diff.Reset()
	must(t, a.WriteDiff(ctx, &diff, layer.TarOptions{}))
	id2 := diffID(diff.Bytes())
	must(t, a.Commit(ctx, id2))
	must(t, a.Release())
	marker2 := filepath.Join(s.dir(id2), unsyncedFile)
	if _, err := os.Lstat(marker2); err != nil {
		t.Fatalf("no unsynced marker after a volatile commit: %v", err)
	}
	must(t, s.Sync())
	if _, err := os.Lstat(marker2); !os.IsNotExist(err) {
		t.Errorf("Sync left the unsynced marker (lstat: %v)", err)
	}
	if !s.Has(id2) {
		t.Error("the synced snapshot is not held")
	}
}

// mountOptions returns the super options of the mount at target, from
// /proc/self/mountinfo.
func mountOptions(t *testing.T, target string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == target {
			return f[len(f)-1]
		}
	}
	t.Fatalf("%s is not mounted", target)
	return ""
}

func kernelRelease(t *testing.T) string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
