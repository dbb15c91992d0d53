package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/imagetest"
)

func TestWriteDiff(t *testing.T) {
	imagetest.Require(t, "root", "user-xattr") // the entries are owned by 0:0; one has a user xattr
	t.Parallel()
	ctx := context.Background()
	t1 := t0.Add(time.Hour)
	lower := t.TempDir()
	build(t, lower,
		file("keep", "k", 0o644), file("same", "aaaa", 0o644), file("sized", "12", 0o644),
		file("mode", "m", 0o644), file("gone", "g", 0o644), file("deldir/sub/f", "f", 0o644),
		file("d2f/x", "x", 0o644), file("f2d", "f", 0o644), symlink("sym", "keep"),
		file("hl/a", "h", 0o644), file("xa", "x", 0o644),
		stamp(t0))
	upper := t.TempDir()
	must(t, Copy(ctx, upper, lower))
	if diff := cmp.Diff(treeState(t, lower, true), treeState(t, upper, true)); diff != "" {
		t.Fatalf("Copy made a different tree (-src +dst):\n%s", diff)
	}
	build(t, upper,
		file("same", "bbbb", 0o644), touch("same", t0), // same size and mtime: found by content
		file("sized", "123", 0o644),
		func(t *testing.T, dir string) { must(t, os.Chmod(filepath.Join(dir, "mode"), 0o600)) },
		remove("gone"), remove("deldir"),
		remove("d2f"), file("d2f", "now a file", 0o644),
		remove("f2d"), file("f2d/in", "in", 0o644),
		remove("sym"), symlink("sym", "same"),
		hardlink("hl/b", "hl/a"),
		file("new/x", "x", 0o755), hardlink("new/y", "new/x"),
		xattr("xa", "user.k", "v"),
		touch("sized", t1), touch("d2f", t1), touch("f2d", t1), touch("f2d/in", t1), touch("sym", t1),
		touch("hl", t1), touch("new", t1), touch("new/x", t1), touch(".", t1),
	)

	var buf bytes.Buffer
	must(t, WriteDiff(ctx, &buf, lower, upper, TarOptions{}))
	got := readEntries(t, buf.Bytes())
	wh := func(name string) entry { return entry{Name: name, Type: tar.TypeReg, Mode: 0o600} }
	a, b := t0.Unix(), t1.Unix()
	want := []entry{
		{Name: "d2f", Type: tar.TypeReg, Mode: 0o644, Body: "now a file", MTime: b},
		wh(".wh.deldir"),
		{Name: "f2d/", Type: tar.TypeDir, Mode: 0o755, MTime: b},
		{Name: "f2d/in", Type: tar.TypeReg, Mode: 0o644, Body: "in", MTime: b},
		wh(".wh.gone"),
		{Name: "hl/", Type: tar.TypeDir, Mode: 0o755, MTime: b},
		{Name: "hl/b", Type: tar.TypeReg, Mode: 0o644, Body: "h", MTime: a}, // hl/a is not in the layer
		{Name: "mode", Type: tar.TypeReg, Mode: 0o600, Body: "m", MTime: a},
		{Name: "new/", Type: tar.TypeDir, Mode: 0o755, MTime: b},
		{Name: "new/x", Type: tar.TypeReg, Mode: 0o755, Body: "x", MTime: b},
		{Name: "new/y", Type: tar.TypeLink, Mode: 0o755, Link: "new/x", MTime: b},
		{Name: "same", Type: tar.TypeReg, Mode: 0o644, Body: "bbbb", MTime: a},
		{Name: "sized", Type: tar.TypeReg, Mode: 0o644, Body: "123", MTime: b},
		{Name: "sym", Type: tar.TypeSymlink, Mode: 0o777, Link: "same", MTime: b},
		{Name: "xa", Type: tar.TypeReg, Mode: 0o644, Body: "x", Xattrs: map[string]string{"user.k": "v"}, MTime: a},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WriteDiff entries mismatch (-want +got):\n%s", diff)
	}

	// Applying the diff on a copy of lower gives upper.
	dst := t.TempDir()
	must(t, Copy(ctx, dst, lower))
	must(t, Apply(ctx, bytes.NewReader(buf.Bytes()), dst, ApplyFlat))
	wantTree := treeState(t, upper, true)
	for _, p := range []string{"hl/a", "hl/b"} { // a link to a file below the layer becomes a copy
		n := wantTree[p]
		n.LinkGroup = ""
		wantTree[p] = n
	}
	if diff := cmp.Diff(wantTree, treeState(t, dst, true)); diff != "" {
		t.Errorf("lower + diff differs from upper (-want +got):\n%s", diff)
	}

	// No change, no entries.
	buf.Reset()
	must(t, WriteDiff(ctx, &buf, upper, upper, TarOptions{}))
	if got := readEntries(t, buf.Bytes()); len(got) != 0 {
		t.Errorf("WriteDiff of a tree against itself: got entries %v, want none", names(got))
	}
}
