package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestSweep: a Prepare whose process died (never released) leaves a mount
// and a dir under Root/a; Sweep removes both.
func TestSweep(t *testing.T) {
	s := newSnapshotter(t, false)
	a, err := s.Prepare(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.Root(), "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No Release: as if the build was killed.
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := mountsUnder(t, s.root); n != 0 {
		t.Errorf("%d mounts left after Sweep", n)
	}
	entries, _ := os.ReadDir(filepath.Join(s.root, "a"))
	if len(entries) != 0 {
		t.Errorf("%d dirs left in a/ after Sweep", len(entries))
	}
}

// TestSweepSession: the mounts of a killed build's session are removed,
// and another session's, still running, are not touched.
func TestSweepSession(t *testing.T) {
	imagetest.Require(t, "overlayfs")
	ctx := context.Background()
	root := t.TempDir()
	open := func(session string) *Active {
		s, err := New(Options{Root: root, Session: session})
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Prepare(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	dead, live := open("k-dead"), open("k-live")
	defer live.Release()
	if err := os.WriteFile(filepath.Join(live.Root(), "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dead.s.SweepSession(ctx, "k-dead"); err != nil {
		t.Fatal(err)
	}
	if n := mountsUnder(t, filepath.Join(root, "a", "k-dead")); n != 0 {
		t.Errorf("%d mounts of the dead session left", n)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "k-dead")); !os.IsNotExist(err) {
		t.Errorf("the dead session's dir is still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(live.Root(), "f")); err != nil || string(b) != "x" {
		t.Errorf("the live session's rootfs: %q, %v", b, err)
	}
	if err := dead.s.SweepSession(ctx, "../x"); err == nil {
		t.Error("SweepSession(../x) succeeded")
	}
}
