package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestApplyDirMetaNotThroughLaterSymlink: a directory's mode is set at the
// end of Apply; a later entry that turns its parent into a symlink must not
// make that chmod land outside the destination.
func TestApplyDirMetaNotThroughLaterSymlink(t *testing.T) {
	for _, mode := range []ApplyMode{ApplyOverlay, ApplyFlat} {
		victim := t.TempDir()
		if err := os.Mkdir(filepath.Join(victim, "v"), 0o700); err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		data := tarOf(t,
			&tar.Header{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "x/v/", Typeflag: tar.TypeDir, Mode: 0o4777},
			&tar.Header{Name: "x", Typeflag: tar.TypeSymlink, Linkname: victim, Mode: 0o777},
		)
		_ = Apply(context.Background(), bytes.NewReader(data), root, mode)
		fi, err := os.Stat(filepath.Join(victim, "v"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 || fi.Mode()&os.ModeSetuid != 0 {
			t.Errorf("mode %d: a directory outside the destination became %v", mode, fi.Mode())
		}
	}
}

// TestApplyOpaqueNotThroughSymlink: an opaque marker under a symlink never
// empties the symlink's target.
func TestApplyOpaqueNotThroughSymlink(t *testing.T) {
	for _, mode := range []ApplyMode{ApplyOverlay, ApplyFlat} {
		victim := t.TempDir()
		if err := os.WriteFile(filepath.Join(victim, "precious"), []byte("p"), 0o644); err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		// The symlink from an earlier layer, the marker in this one.
		first := tarOf(t, &tar.Header{Name: "x", Typeflag: tar.TypeSymlink, Linkname: victim, Mode: 0o777})
		if err := Apply(context.Background(), bytes.NewReader(first), root, mode); err != nil {
			t.Fatal(err)
		}
		second := tarOf(t, &tar.Header{Name: "x/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644})
		_ = Apply(context.Background(), bytes.NewReader(second), root, mode)
		if _, err := os.Stat(filepath.Join(victim, "precious")); err != nil {
			t.Errorf("mode %d: the symlink's target was emptied: %v", mode, err)
		}
	}
}

func TestApplyRefusesEmptyWhiteout(t *testing.T) {
	root := t.TempDir()
	data := tarOf(t,
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644},
		&tar.Header{Name: "d/.wh.", Typeflag: tar.TypeReg, Mode: 0o644},
	)
	if err := Apply(context.Background(), bytes.NewReader(data), root, ApplyFlat); err == nil {
		t.Errorf("a whiteout with an empty name was accepted")
	}
	if _, err := os.Stat(filepath.Join(root, "d", "f")); err != nil {
		t.Errorf("d/f is gone: %v", err)
	}
}

// TestApplyParentThenExplicitDir: a directory made from the parent's
// metadata and later listed by the tar itself takes the tar's metadata.
func TestApplyParentThenExplicitDir(t *testing.T) {
	parent := t.TempDir()
	if err := os.Mkdir(filepath.Join(parent, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	data := tarOf(t,
		&tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644},
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
	)
	if err := ApplyWith(context.Background(), bytes.NewReader(data), root, ApplyOverlay, ApplyOptions{Parent: parent}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "d"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("d mode %v, want the tar's 0755", fi.Mode().Perm())
	}
	// Without a later listing, the parent's metadata is kept.
	root2 := t.TempDir()
	data = tarOf(t, &tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644})
	if err := ApplyWith(context.Background(), bytes.NewReader(data), root2, ApplyOverlay, ApplyOptions{Parent: parent}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(root2, "d")); fi.Mode().Perm() != 0o700 {
		t.Errorf("implicit d mode %v, want the parent's 0700", fi.Mode().Perm())
	}
}
