package source

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// copyCase copies sources of src into a target holding the busybox-like
// directories /etc (0755) and /tmp (1777), and returns what changed.
func copyCase(t *testing.T, src string, sources []string, req CopyRequest) map[string]string {
	t.Helper()
	target := t.TempDir()
	mkTree(t, target, []file{{path: "etc/"}, {path: "tmp/"}})
	if err := os.Chmod(filepath.Join(target, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	before := listing(t, target)
	tr := openTree(t, src, Options{})
	ms, err := tr.Select(sources)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.CopyInto(context.Background(), ms, target, req); err != nil {
		t.Fatal(err)
	}
	got := listing(t, target)
	for k, v := range before {
		if got[k] == v {
			delete(got, k)
		}
	}
	return got
}

// TestCopyLikeBuildKit pins the COPY results BuildKit v0.34.2 gave for the
// same operations (e2e/testdata/conformance records them): --chmod and the
// parents a COPY creates, --link's parents, owners kept from a stage.
func TestCopyLikeBuildKit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	src := t.TempDir()
	mkTree(t, src, []file{
		{path: "foo", content: "foo"},
		{path: "dir/x", content: "x", mode: 0o664},
		{path: "dir/sub/", mode: 0o700},
		{path: "owned/a", content: "a"},
		{path: "owned/sub/b", content: "b"},
	})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(src, "dir"), 0o700))
	must(os.Chown(filepath.Join(src, "owned"), 1001, 1002))
	must(os.Chown(filepath.Join(src, "owned/a"), 1001, 1002))
	must(os.Chown(filepath.Join(src, "owned/sub"), 1001, 1002))
	must(os.Chown(filepath.Join(src, "owned/sub/b"), 1003, 1004))
	tests := []struct {
		name    string
		sources []string
		req     CopyRequest
		want    map[string]string
	}{
		// Item 2: an octal --chmod also gives the parents it creates.
		{"octal chmod on created parents", []string{"foo"}, CopyRequest{Dest: "/parent/foo", Chmod: chmod(t, "777")},
			map[string]string{"parent": "d 777 0:0", "parent/foo": "f 777 0:0 foo"}},
		{"octal chmod on created dest dir", []string{"dir"}, CopyRequest{Dest: "/pdir/d/", Chmod: chmod(t, "640")},
			map[string]string{"pdir": "d 640 0:0", "pdir/d": "d 640 0:0", "pdir/d/x": "f 640 0:0 x", "pdir/d/sub": "d 640 0:0"}},
		{"octal chmod leaves existing parents", []string{"foo"}, CopyRequest{Dest: "/etc/y/", Chmod: chmod(t, "700"), UID: 1, GID: 2},
			map[string]string{"etc/y": "d 700 1:2", "etc/y/foo": "f 700 1:2 foo"}},
		// Item 4: a symbolic one applies to each copied entry only.
		{"symbolic chmod", []string{"dir"}, CopyRequest{Dest: "/d2/", Chmod: chmod(t, "go=")},
			map[string]string{"d2": "d 755 0:0", "d2/x": "f 600 0:0 x", "d2/sub": "d 700 0:0"}},
		{"symbolic +X", []string{"dir"}, CopyRequest{Dest: "/dx/", Chmod: chmod(t, "+X")},
			map[string]string{"dx": "d 755 0:0", "dx/x": "f 664 0:0 x", "dx/sub": "d 711 0:0"}},
		// Item 3: --link without --chmod writes every parent afresh,
		// 0755 and owned by --chown, existing ones included.
		{"link resets existing parents", []string{"foo"}, CopyRequest{Dest: "/tmp/x/", UID: 1005, GID: 1006, ResetParents: true},
			map[string]string{"tmp": "d 755 1005:1006", "tmp/x": "d 755 1005:1006", "tmp/x/foo": "f 644 1005:1006 foo"}},
		{"link resets deep parents", []string{"foo"}, CopyRequest{Dest: "/etc/deep/er/conf", UID: 1003, GID: 1004, ResetParents: true},
			map[string]string{"etc": "d 755 1003:1004", "etc/deep": "d 755 1003:1004", "etc/deep/er": "d 755 1003:1004",
				"etc/deep/er/conf": "f 644 1003:1004 foo"}},
		{"link into existing dest dir", []string{"dir"}, CopyRequest{Dest: "/tmp/", ResetParents: true},
			map[string]string{"tmp": "d 755 0:0", "tmp/x": "f 664 0:0 x", "tmp/sub": "d 700 0:0"}},
		// Item 5: owners kept (COPY --from); the dest dir made for a
		// directory's contents is a new parent (0:0, 0755).
		{"owners kept", []string{"owned"}, CopyRequest{Dest: "/copied", UID: -1, GID: -1},
			map[string]string{"copied": "d 755 0:0", "copied/a": "f 644 1001:1002 a",
				"copied/sub": "d 755 1001:1002", "copied/sub/b": "f 644 1003:1004 b"}},
		{"owners kept into an existing dir", []string{"owned/"}, CopyRequest{Dest: "/tmp/", UID: -1, GID: -1},
			map[string]string{"tmp/a": "f 644 1001:1002 a", "tmp/sub": "d 755 1001:1002", "tmp/sub/b": "f 644 1003:1004 b"}},
		{"source dir mode not copied", []string{"dir"}, CopyRequest{Dest: "/nd/"},
			map[string]string{"nd": "d 755 0:0", "nd/x": "f 664 0:0 x", "nd/sub": "d 700 0:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := copyCase(t, src, tt.sources, tt.req)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCopyHardLinks: files hard-linked in the source are hard-linked in
// the copy (item 6), within one match and across matches; a lone member
// of a group is a plain file.
func TestCopyHardLinks(t *testing.T) {
	src := t.TempDir()
	mkTree(t, src, []file{{path: "h/a", content: "one"}, {path: "h/g", content: "g"}})
	for _, l := range []string{"h/b", "h/c"} {
		if err := os.Link(filepath.Join(src, "h/a"), filepath.Join(src, l)); err != nil {
			t.Fatal(err)
		}
	}
	tr := openTree(t, src, Options{})
	ino := func(t *testing.T, p string) uint64 {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	for _, tc := range []struct {
		name    string
		sources []string
		dest    string
		linked  []string
		alone   []string
	}{
		{"directory", []string{"h"}, "/out/", []string{"out/a", "out/b", "out/c"}, []string{"out/g"}},
		{"across sources", []string{"h/a", "h/c"}, "/two/", []string{"two/a", "two/c"}, nil},
		{"one of a group", []string{"h/b"}, "/single", nil, []string{"single"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := t.TempDir()
			ms, err := tr.Select(tc.sources)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.CopyInto(context.Background(), ms, target, CopyRequest{Dest: tc.dest}); err != nil {
				t.Fatal(err)
			}
			for i, p := range tc.linked {
				if i > 0 && ino(t, filepath.Join(target, p)) != ino(t, filepath.Join(target, tc.linked[0])) {
					t.Errorf("%s is not hard-linked to %s", p, tc.linked[0])
				}
			}
			for _, p := range append(tc.alone, tc.linked...) {
				b, err := os.ReadFile(filepath.Join(target, p))
				if err != nil || len(b) == 0 {
					t.Errorf("%s: %q, %v", p, b, err)
				}
			}
			for _, p := range tc.alone {
				fi, _ := os.Lstat(filepath.Join(target, p))
				if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
					t.Errorf("%s has %d links, want 1", p, n)
				}
			}
		})
	}
}

// TestDigestHardLinks: two identical files digest differently when they
// are hard links of one file, since the copy differs.
func TestDigestHardLinks(t *testing.T) {
	sep, linked := t.TempDir(), t.TempDir()
	mkTree(t, sep, []file{{path: "d/a", content: "x"}, {path: "d/b", content: "x"}})
	mkTree(t, linked, []file{{path: "d/a", content: "x"}})
	if err := os.Link(filepath.Join(linked, "d/a"), filepath.Join(linked, "d/b")); err != nil {
		t.Fatal(err)
	}
	digest := func(root string) string {
		tr := openTree(t, root, Options{IgnoreOwners: true})
		ms, err := tr.Select([]string{"d"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := tr.Digest(context.Background(), ms)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if digest(sep) == digest(linked) {
		t.Error("separate and hard-linked files have the same digest")
	}
}
