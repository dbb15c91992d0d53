package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
