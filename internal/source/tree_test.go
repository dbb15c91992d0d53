package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestExcludeStateDir: a path given in Exclude does not exist for the
// tree, even when a "!" pattern would bring files back.
func TestExcludeStateDir(t *testing.T) {
	imagetest.Require(t, "root") // chown to 0:0
	root := t.TempDir()
	for _, f := range []string{"app.txt", ".kiln/tmp/s1/secret", ".kiln/cc/x.json"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := Open(root, Options{Ignore: []string{"nothing", "!.kiln/tmp/s1/secret"}, Exclude: []string{filepath.Join(root, ".kiln")}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := tr.Select([]string{"."})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := tr.CopyInto(context.Background(), ms, dst, CopyRequest{Dest: "/", UID: 0, GID: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".kiln")); err == nil {
		t.Errorf("the excluded state dir was copied")
	}
	if _, err := os.Stat(filepath.Join(dst, "app.txt")); err != nil {
		t.Errorf("app.txt missing: %v", err)
	}
	if _, err := tr.Select([]string{".kiln/tmp/s1/secret"}); err == nil {
		t.Errorf("a file in the excluded dir can be selected")
	}
}

// TestXattrsCopiedAndDigested: a file's xattrs (file capabilities above
// all) are copied, and changing one changes the digest.
func TestXattrsCopiedAndDigested(t *testing.T) {
	imagetest.Require(t, "root", "user-xattr") // chown to 0:0
	root, p := xattrFile(t)
	digest := func() string {
		tr, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ms, err := tr.Select([]string{"ping"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := tr.Digest(context.Background(), ms)
		if err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if err := tr.CopyInto(context.Background(), ms, dst, CopyRequest{Dest: "/ping", UID: 0, GID: 0}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(filepath.Join(dst, "ping"), "user.kiln.test", buf)
		if err != nil {
			t.Errorf("the copy lost its xattr: %v", err)
		} else if want, _ := unix.Lgetxattr(p, "user.kiln.test", make([]byte, 16)); n != want {
			t.Errorf("copied xattr has %d bytes, want %d", n, want)
		}
		return d
	}
	d1 := digest()
	if err := unix.Lsetxattr(p, "user.kiln.test", []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	if d2 := digest(); d1 == d2 {
		t.Errorf("changing an xattr kept the digest %s", d1)
	}
}

// TestExcludedSymlinkNotFollowed: an excluded symlink stays excluded when
// .dockerignore also has "!" patterns.
func TestExcludedSymlinkNotFollowed(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "real", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, ignore := range [][]string{{"link"}, {"link", "!keep"}} {
		tr, err := Open(root, Options{Ignore: ignore})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Select([]string{"link"}); err == nil {
			t.Errorf("ignore %q: the excluded symlink was selected", ignore)
		}
	}
}

// TestXattrsFromChecksumCache: a file whose sum comes from the checksum
// cache (or from this Tree's memory of sums) digests with its xattrs, as
// one that is read: the hashing, not the walk, reads a regular file's
// xattrs, and the cache keeps them.
func TestXattrsFromChecksumCache(t *testing.T) {
	imagetest.Require(t, "user-xattr")
	root, p := xattrFile(t)
	cacheFile := filepath.Join(t.TempDir(), "sums.json")
	digest := func(cache string) (string, int64) { return cachedDigest(t, root, cache) }
	read, _ := digest("")
	if first, n := digest(cacheFile); first != read || n != 1 {
		t.Fatalf("digest filling the cache: %s after %d reads, want %s after 1", first, n, read)
	}
	if cached, n := digest(cacheFile); cached != read || n != 0 {
		t.Errorf("digest from the cache: %s after %d reads, want %s after none", cached, n, read)
	}
	if err := unix.Lremovexattr(p, "user.kiln.test"); err != nil {
		t.Fatal(err)
	}
	if without, _ := digest(cacheFile); without == read {
		t.Errorf("removing the xattr kept the digest %s", read)
	}
}

// xattrFile writes a file "ping" with the xattr user.kiln.test=one into a
// new directory and returns the directory and the file's path.
func xattrFile(t *testing.T) (root, p string) {
	t.Helper()
	root = t.TempDir()
	p = filepath.Join(root, "ping")
	if err := os.WriteFile(p, []byte("bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, "user.kiln.test", []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	return root, p
}

// cachedDigest digests all of root with the checksum cache file cache (""
// for none), no racy window, twice on the same tree (the second from its
// memory of sums, which must agree), and returns the digest and how many
// files were read.
func cachedDigest(t *testing.T, root, cache string) (string, int64) {
	t.Helper()
	tr, err := Open(root, Options{CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	tr.racyWindow, tr.fineRacyWindow = 0, 0
	ms, err := tr.Select([]string{"."})
	if err != nil {
		t.Fatal(err)
	}
	d, err := tr.Digest(context.Background(), ms)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := tr.Digest(context.Background(), ms); err != nil || again != d {
		t.Errorf("second digest on the same tree: %s, %v; want %s", again, err, d)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	return d, tr.Hashed()
}
