package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
)

func reg(name, body string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Linkname: body, ModTime: t0}
}

func dirH(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: t0}
}

func symH(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: t0}
}

func linkH(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: t0}
}

func TestApplyRefusesEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// hdrs builds the tar; outside is an absolute directory next to dir.
		hdrs func(outside string) []*tar.Header
	}{
		{"dotdot name", func(string) []*tar.Header { return []*tar.Header{reg("../outside/evil", "x")} }},
		{"dotdot inside name", func(string) []*tar.Header { return []*tar.Header{reg("a/../../outside/evil", "x")} }},
		{"absolute symlink then file through it", func(o string) []*tar.Header {
			return []*tar.Header{symH("evil", o), reg("evil/evil", "x")}
		}},
		{"relative symlink then file through it", func(string) []*tar.Header {
			return []*tar.Header{symH("evil", "../outside"), reg("evil/evil", "x")}
		}},
		{"symlink then dir through it", func(o string) []*tar.Header {
			return []*tar.Header{symH("evil", o), dirH("evil/sub/")}
		}},
		{"hard link outside", func(string) []*tar.Header { return []*tar.Header{linkH("l", "../outside/secret")} }},
		{"hard link through own symlink", func(o string) []*tar.Header {
			return []*tar.Header{symH("evil", o), linkH("l", "evil/secret")}
		}},
		{"whiteout outside", func(string) []*tar.Header { return []*tar.Header{reg("../outside/.wh.secret", "")} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []ApplyMode{ApplyFlat, ApplyOverlay} {
				base := t.TempDir()
				dir, outside := filepath.Join(base, "dir"), filepath.Join(base, "outside")
				must(t, os.Mkdir(dir, 0o755))
				build(t, outside, file("secret", "s", 0o644))
				before := treeState(t, base, true)
				err := Apply(context.Background(), bytes.NewReader(tarOf(t, tt.hdrs(outside)...)), dir, mode)
				if !isUnsafe(err) {
					t.Errorf("mode %d: Apply error = %v, want one wrapping ErrUnsafePath", mode, err)
				}
				after := treeState(t, base, true)
				for p := range after {
					if _, ok := before[p]; !ok && !within(p, "dir") {
						t.Errorf("mode %d: Apply created %s outside dir", mode, p)
					}
				}
				if diff := cmp.Diff(before["outside/secret"], after["outside/secret"]); diff != "" {
					t.Errorf("mode %d: outside/secret changed (-before +after):\n%s", mode, diff)
				}
			}
		})
	}
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../")
}

// Symlinks already in the destination (from lower layers) are followed, but
// only inside it: /bin -> /usr/bin must work in a rootfs.
func TestApplyFollowsExistingSymlinksInside(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir, outside := filepath.Join(base, "dir"), filepath.Join(base, "outside")
	must(t, os.Mkdir(outside, 0o755))
	build(t, dir, mkdir("usr/lib", 0o755), symlink("lib", "/usr/lib"), symlink("out", outside), symlink("up", "../../.."))
	hdrs := []*tar.Header{reg("/lib/libc.so", "c"), reg("out/f", "o"), reg("up/etc/passwd", "p"), reg("./abs/name", "a")}
	must(t, Apply(context.Background(), bytes.NewReader(tarOf(t, hdrs...)), dir, ApplyFlat))
	for _, p := range []string{"usr/lib/libc.so", filepath.Join(outside[1:], "f"), "etc/passwd", "abs/name"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Errorf("want %s inside dir: %v", p, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("Apply wrote %d entries into the outside directory", len(entries))
	}
}

func TestApplyFlat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before []spec
		hdrs   []*tar.Header
		want   map[string]string // path → body ("dir" for a directory, "->x" for a symlink)
	}{
		{
			name:   "whiteouts delete files and whole directories",
			before: []spec{file("a", "a", 0o644), file("d/x/y", "y", 0o644), file("keep", "k", 0o644)},
			hdrs:   []*tar.Header{reg(".wh.a", ""), reg(".wh.d", ""), reg(".wh.missing", ""), reg("sub/.wh.nothing", "")},
			want:   map[string]string{"keep": "k"},
		},
		{
			name:   "opaque directory drops what was there, keeps this layer's",
			before: []spec{file("d/old", "o", 0o644), file("d/sub/old", "o", 0o644), file("e/keep", "k", 0o644)},
			hdrs:   []*tar.Header{dirH("d/"), reg("d/new", "n"), reg("d/.wh..wh..opq", ""), reg("d/later", "l")},
			want:   map[string]string{"d": "dir", "d/new": "n", "d/later": "l", "e": "dir", "e/keep": "k"},
		},
		{
			name:   "file replaces directory, directory replaces file",
			before: []spec{file("d/x", "x", 0o644), file("f", "f", 0o644)},
			hdrs:   []*tar.Header{reg("d", "now file"), dirH("f/"), reg("f/in", "in")},
			want:   map[string]string{"d": "now file", "f": "dir", "f/in": "in"},
		},
		{
			name:   "file replaces symlink without following it",
			before: []spec{file("target", "t", 0o644), symlink("l", "target")},
			hdrs:   []*tar.Header{reg("l", "new")},
			want:   map[string]string{"target": "t", "l": "new"},
		},
		{
			name:   "file replaces a hard link without changing the other name",
			before: []spec{file("a", "a", 0o644), hardlink("b", "a")},
			hdrs:   []*tar.Header{reg("b", "b")},
			want:   map[string]string{"a": "a", "b": "b"},
		},
		{
			name: "hard links, symlinks and missing parents",
			hdrs: []*tar.Header{reg("x/y/f", "f"), linkH("x/g", "x/y/f"), symH("s", "x/y/f")},
			want: map[string]string{"x": "dir", "x/y": "dir", "x/y/f": "f", "x/g": "f", "s": "->x/y/f"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			build(t, dir, tt.before...)
			must(t, Apply(context.Background(), bytes.NewReader(tarOf(t, tt.hdrs...)), dir, ApplyFlat))
			got := map[string]string{}
			for p, n := range treeState(t, dir, false) {
				switch n.Type {
				case "dir":
					got[p] = "dir"
				case "symlink":
					got[p] = "->" + n.Link
				default:
					got[p] = n.Body
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tree after Apply mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyMetadata(t *testing.T) {
	imagetest.Require(t, "root") // mknod, chown, trusted xattrs
	t.Parallel()
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o1750, Uid: 5, Gid: 6, ModTime: t0},
		{Typeflag: tar.TypeReg, Name: "d/suid", Linkname: "s", Mode: 0o4755, Uid: 7, Gid: 8, ModTime: t0,
			PAXRecords: map[string]string{paxXattr + "user.a": "1", paxXattr + "trusted.overlay.redirect": "/etc"}},
		{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: t0},
		{Typeflag: tar.TypeBlock, Name: "blk", Mode: 0o600, Devmajor: 7, Devminor: 0, ModTime: t0},
		{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o620, ModTime: t0},
		{Typeflag: tar.TypeSymlink, Name: "sym", Linkname: "d/suid", Uid: 3, Gid: 4, ModTime: t0},
	}
	dir := t.TempDir()
	must(t, Apply(context.Background(), bytes.NewReader(tarOf(t, hdrs...)), dir, ApplyFlat))
	ts := t0.UnixNano()
	want := map[string]node{
		"d":      {Type: "dir", Mode: 0o1750, UID: 5, GID: 6, MTime: ts},
		"d/suid": {Type: "file", Mode: 0o4755, UID: 7, GID: 8, Body: "s", MTime: ts, Xattrs: map[string]string{"user.a": "1"}},
		"null":   {Type: "char", Mode: 0o666, Rdev: unix.Mkdev(1, 3), MTime: ts},
		"blk":    {Type: "block", Mode: 0o600, Rdev: unix.Mkdev(7, 0), MTime: ts},
		"fifo":   {Type: "fifo", Mode: 0o620, MTime: ts},
		"sym":    {Type: "symlink", Mode: 0o777, UID: 3, GID: 4, Link: "d/suid", MTime: ts},
	}
	if diff := cmp.Diff(want, treeState(t, dir, true)); diff != "" {
		t.Errorf("tree after Apply mismatch (-want +got):\n%s", diff)
	}
}

func TestApplyOverlay(t *testing.T) {
	imagetest.Require(t, "root") // mknod, chown, trusted xattrs
	t.Parallel()
	hdrs := []*tar.Header{
		dirH("d/"), reg("d/.wh..wh..opq", ""), reg("d/new", "n"),
		reg(".wh.gone", ""), reg("e/.wh.gone2", ""), reg(".wh..wh.plnk", ""),
	}
	dir := t.TempDir()
	must(t, Apply(context.Background(), bytes.NewReader(tarOf(t, hdrs...)), dir, ApplyOverlay))
	ts := t0.UnixNano()
	want := map[string]node{
		"d":       {Type: "dir", Mode: 0o755, MTime: ts},
		"d/new":   {Type: "file", Mode: 0o644, Body: "n", MTime: ts},
		"gone":    {Type: "char"},
		"e":       {Type: "dir", Mode: 0o755},
		"e/gone2": {Type: "char"},
	}
	got := treeState(t, dir, true)
	for _, p := range []string{"gone", "e", "e/gone2"} { // made by Apply, not from the tar: times are now
		n := got[p]
		n.MTime = 0
		got[p] = n
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree after Apply mismatch (-want +got):\n%s", diff)
	}
	if ok, err := isOpaque(filepath.Join(dir, "d")); err != nil || !ok {
		t.Errorf("d opaque = %v, %v; want true", ok, err)
	}

	// And WriteUpper turns it back into the same whiteouts.
	back := names(readEntries(t, writeUpper(t, dir, TarOptions{})))
	wantNames := []string{"d/", "d/.wh..wh..opq", "d/new", "e/", "e/.wh.gone2", ".wh.gone"}
	if diff := cmp.Diff(wantNames, back); diff != "" {
		t.Errorf("WriteUpper of the applied tree mismatch (-want +got):\n%s", diff)
	}
}

func TestApplyCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if err := Apply(ctx, bytes.NewReader(tarOf(t, reg("a", "a"))), dir, ApplyFlat); err == nil {
		t.Errorf("Apply with cancelled context: got nil error")
	}
}
