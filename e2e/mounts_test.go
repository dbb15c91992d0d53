package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountOptions: a cache mount is made with its mode=, a tmpfs mount
// has its size=, as BuildKit does.
func TestMountOptions(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + `
RUN --mount=type=cache,target=/c,mode=0751 stat -c %a /c > /cmode
RUN --mount=type=tmpfs,target=/t,size=1m df -k /t | awk 'NR==2 {print $2}' > /tsize
`})
	root := filepath.Join(t.TempDir(), "rootfs")
	mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "-o", "type=local,dest="+root, ctxDir)
	if got := readFile(t, filepath.Join(root, "cmode")); got != "751\n" {
		t.Errorf("cache mount mode %q, want 751", got)
	}
	if got := readFile(t, filepath.Join(root, "tsize")); got != "1024\n" {
		t.Errorf("tmpfs size %q KiB, want 1024", got)
	}
}

// TestPrivateCacheMount: sharing=private gives a step the cache directory
// to itself, or, while another holder has it, a fresh empty one.
func TestPrivateCacheMount(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	df := func(run string) {
		writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN --mount=type=cache,id=p,target=/c,sharing=private " + run + "\n"})
	}
	df("echo kept > /c/f")
	mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)

	// Another holder of the mount: the step gets an empty one of its own.
	sum := sha256.Sum256([]byte("p"))
	lock := filepath.Join(state, "locks", "mount-"+hex.EncodeToString(sum[:16]))
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	df("ls -A /c > /seen-busy")
	root := filepath.Join(t.TempDir(), "rootfs")
	mustKiln(t, state, nil, "build", "--progress", "plain", "-o", "type=local,dest="+root, ctxDir)
	if got := readFile(t, filepath.Join(root, "seen-busy")); got != "" {
		t.Errorf("a busy private mount was shared: the step saw %q", got)
	}
	f.Close()

	df("ls -A /c > /seen-free")
	mustKiln(t, state, nil, "build", "--progress", "plain", "-o", "type=local,dest="+root, ctxDir)
	if got := readFile(t, filepath.Join(root, "seen-free")); got != "f\n" {
		t.Errorf("a free private mount showed %q, want the earlier build's f", got)
	}
}
