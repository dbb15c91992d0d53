package layer

import (
	"archive/tar"
	"bytes"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
)

func TestWriteUpper(t *testing.T) {
	imagetest.Require(t, "root") // mknod, chown, trusted xattrs
	t.Parallel()
	upper := t.TempDir()
	build(t, upper,
		file("etc/conf", "hello", 0o640),
		chown("etc/conf", 1000, 2000),
		xattr("etc/conf", "user.note", "kept"),
		xattr("etc/conf", "trusted.overlay.origin", "dropped"),
		file("bin/tool", "#!", 0o4755),
		hardlink("bin/tool2", "bin/tool"),
		symlink("bin/sh", "/bin/busybox"),
		mknod("gone", unix.S_IFCHR, 0, 0), // a whiteout
		mknod("dev-null", unix.S_IFCHR|0o666, 1, 3),
		mkdir("opq", 0o755),
		xattr("opq", "trusted.overlay.opaque", "y"),
		file("opq/new", "n", 0o644),
		mkdir("notopq", 0o700),
		xattr("notopq", "trusted.overlay.opaque", "x"),
		mknod("notopq/.gone2", unix.S_IFCHR, 0, 0),
		mknod("fifo", unix.S_IFIFO|0o600, 0, 0),
		stamp(t0),
	)
	// A socket cannot be in a tar: it is skipped.
	l, err := net.Listen("unix", filepath.Join(upper, "sock"))
	must(t, err)
	defer l.Close()

	got := readEntries(t, writeUpper(t, upper, TarOptions{}))
	ts := t0.Unix()
	wh := func(name string) entry { return entry{Name: name, Type: tar.TypeReg, Mode: 0o600} }
	want := []entry{
		{Name: "bin/", Type: tar.TypeDir, Mode: 0o755, MTime: ts},
		{Name: "bin/sh", Type: tar.TypeSymlink, Mode: 0o777, Link: "/bin/busybox", MTime: ts},
		{Name: "bin/tool", Type: tar.TypeReg, Mode: 0o4755, Body: "#!", MTime: ts},
		{Name: "bin/tool2", Type: tar.TypeLink, Mode: 0o4755, Link: "bin/tool", MTime: ts},
		{Name: "dev-null", Type: tar.TypeChar, Mode: 0o666, Dev: [2]int64{1, 3}, MTime: ts},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755, MTime: ts},
		{Name: "etc/conf", Type: tar.TypeReg, Mode: 0o640, UID: 1000, GID: 2000, Body: "hello", Xattrs: map[string]string{"user.note": "kept"}, MTime: ts},
		{Name: "fifo", Type: tar.TypeFifo, Mode: 0o600, MTime: ts},
		wh(".wh.gone"),
		{Name: "notopq/", Type: tar.TypeDir, Mode: 0o700, MTime: ts},
		wh("notopq/.wh..gone2"),
		{Name: "opq/", Type: tar.TypeDir, Mode: 0o755, MTime: ts},
		wh("opq/.wh..wh..opq"),
		{Name: "opq/new", Type: tar.TypeReg, Mode: 0o644, Body: "n", MTime: ts},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WriteUpper entries mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteUpperDeterministic(t *testing.T) {
	t.Parallel()
	epoch := t0.Add(time.Hour)
	old := t0.Add(-time.Hour)
	tree := func(mtime time.Time) string {
		dir := t.TempDir()
		build(t, dir,
			file("a/b/c", "c", 0o644), file("a/z", "z", 0o600), symlink("a/l", "b/c"),
			file("old", "o", 0o644), stamp(mtime), touch("old", old))
		return dir
	}
	// Two trees that differ only in mtimes, all after the epoch except "old".
	one, two := tree(epoch.Add(time.Minute)), tree(epoch.Add(48*time.Hour+time.Second))

	tests := []struct {
		name      string
		opts      TarOptions
		wantEqual bool
	}{
		{"no epoch keeps mtimes", TarOptions{}, false},
		{"epoch clamps mtimes", TarOptions{SourceDateEpoch: &epoch}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := writeUpper(t, one, tt.opts), writeUpper(t, two, tt.opts)
			if got := bytes.Equal(a, b); got != tt.wantEqual {
				t.Errorf("tars of the two trees equal = %v, want %v", got, tt.wantEqual)
			}
			if again := writeUpper(t, one, tt.opts); !bytes.Equal(a, again) {
				t.Errorf("two writes of the same tree differ")
			}
			for _, e := range readEntries(t, a) {
				want := epoch.Unix()
				if e.Name == "old" {
					want = old.Unix()
				} else if tt.opts.SourceDateEpoch == nil {
					want = epoch.Add(time.Minute).Unix()
				}
				if e.MTime != want {
					t.Errorf("entry %s mtime %d, want %d", e.Name, e.MTime, want)
				}
			}
		})
	}
}
