package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// watchedTree writes a context (a dir match with subdirectories, a file
// beside it, a multiply-linked file whose other name is outside the
// context, and an ignored directory), opens it and prefetches COPY src/
// and COPY single. It returns the tree, its matches and their digest.
func watchedTree(t *testing.T) (dir, outside string, tr *Tree, m []Match, want string) {
	t.Helper()
	dir, outside = t.TempDir(), t.TempDir()
	files := map[string]string{
		"src/a.txt":       "a",
		"src/sub/b.txt":   "b",
		"src/sub/c/d.txt": "d",
		"single":          "single",
		"logs/build.log":  "log",
		"src/tmp/x.o":     "object",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "shared"), []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(outside, "shared"), filepath.Join(dir, "src", "sub", "shared")); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(dir, Options{Ignore: []string{"logs", "src/tmp", "src/*.log"}, Watch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	tr.racyWindow = 0
	if tr.watcher() == nil {
		t.Fatal("no watcher on the test's file system: inotify unavailable or the file system is not local")
	}
	m, err = tr.Select([]string{"src/", "single"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Prefetch(context.Background(), m)
	if want, err = tr.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return dir, outside, tr, m, want
}

// fresh is the digest of m's sources by a new Tree, which reads everything.
func fresh(t *testing.T, dir string, srcs ...string) string {
	t.Helper()
	tr, err := Open(dir, Options{Ignore: []string{"logs", "src/tmp", "src/*.log"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	m, err := tr.Select(srcs)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tr.Digest(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestWatchReusesWalk: a digest of matches the prefetch walked does not
// walk them again while nothing changed, nor when only what the walk
// skips changed (an ignored file beside the sources, an ignored
// directory's contents), nor
// when a file is read.
func TestWatchReusesWalk(t *testing.T) {
	dir, _, tr, m, want := watchedTree(t)
	if n := tr.walkCount.Load(); n != 2 {
		t.Fatalf("prefetch and digest walked %d matches, want the 2 once", n)
	}
	if err := os.WriteFile(filepath.Join(dir, "logs", "build.log"), []byte("more log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "tmp", "y.o"), []byte("new object"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "debug.log"), []byte("an ignored file in a watched directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "src", "a.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "unrelated"), []byte("beside single"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Digest(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("digest after changes outside the sources: %s, want %s", got, want)
	}
	if n := tr.walkCount.Load(); n != 2 {
		t.Errorf("walked %d matches after changes outside the sources, want still 2", n)
	}
	if got := fresh(t, dir, "src/", "single"); got != want {
		t.Errorf("a fresh tree's digest %s differs from the reused %s", got, want)
	}
}

// TestWatchSeesChanges: every kind of change to what the sources copy
// makes the next digest walk again and see it, even where the file's
// stat alone could not tell (a write within the same timestamp tick is
// made here by restoring the mtime; ctime changes, but the watcher does
// not need it).
func TestWatchSeesChanges(t *testing.T) {
	cases := map[string]func(t *testing.T, dir, outside string){
		"content": func(t *testing.T, dir, _ string) {
			write(t, filepath.Join(dir, "src", "sub", "c", "d.txt"), "D")
		},
		"content, same size and mtime": func(t *testing.T, dir, _ string) {
			p := filepath.Join(dir, "src", "a.txt")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			write(t, p, "A")
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		},
		"mode": func(t *testing.T, dir, _ string) {
			chmodFile(t, filepath.Join(dir, "src", "sub", "b.txt"), 0o600)
		},
		"mode of the match's directory": func(t *testing.T, dir, _ string) {
			chmodFile(t, filepath.Join(dir, "src"), 0o700)
		},
		"new file": func(t *testing.T, dir, _ string) {
			write(t, filepath.Join(dir, "src", "sub", "c", "new.txt"), "new")
		},
		"removed file": func(t *testing.T, dir, _ string) {
			if err := os.Remove(filepath.Join(dir, "src", "sub", "b.txt")); err != nil {
				t.Fatal(err)
			}
		},
		"renamed directory": func(t *testing.T, dir, _ string) {
			if err := os.Rename(filepath.Join(dir, "src", "sub", "c"), filepath.Join(dir, "src", "sub", "e")); err != nil {
				t.Fatal(err)
			}
		},
		"single file replaced by a rename": func(t *testing.T, dir, _ string) {
			write(t, filepath.Join(dir, "single.new"), "replaced")
			if err := os.Rename(filepath.Join(dir, "single.new"), filepath.Join(dir, "single")); err != nil {
				t.Fatal(err)
			}
		},
		"match directory replaced": func(t *testing.T, dir, _ string) {
			if err := os.Rename(filepath.Join(dir, "src"), filepath.Join(dir, "old-src")); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, "src", "a.txt"), "another a")
		},
		"linked file written through its name outside": func(t *testing.T, _, outside string) {
			write(t, filepath.Join(outside, "shared"), "SHARED")
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			dir, outside, tr, m, want := watchedTree(t)
			change(t, dir, outside)
			got, err := tr.Digest(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if got == want {
				t.Errorf("digest unchanged after the change")
			}
			if n := tr.walkCount.Load(); n != 4 {
				t.Errorf("walked %d matches, want the 2 again (4)", n)
			}
			if f := fresh(t, dir, "src/", "single"); got != f {
				t.Errorf("digest %s, a fresh tree's %s", got, f)
			}
		})
	}
}

// TestWatchClosed: after Close nothing is reused.
func TestWatchClosed(t *testing.T) {
	_, _, tr, m, want := watchedTree(t)
	tr.Close()
	if got, err := tr.Digest(context.Background(), m); err != nil || got != want {
		t.Fatalf("digest after Close: %s, %v; want %s", got, err, want)
	}
	if n := tr.walkCount.Load(); n != 4 {
		t.Errorf("walked %d matches after Close, want the 2 again (4)", n)
	}
}

// TestWatchOnlyLocal: a file system inotify may not see every change of
// (here procfs, standing for a network or FUSE one) gets no watcher, so
// every digest walks.
func TestWatchOnlyLocal(t *testing.T) {
	tr, err := Open("/proc/self", Options{Watch: true})
	if err != nil {
		t.Fatal(err)
	}
	if w := tr.watcher(); w != nil {
		t.Errorf("a watcher on procfs")
	}
	// Without Options.Watch no inotify instance is taken.
	plain, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w := plain.watcher(); w != nil {
		t.Errorf("a watcher without Options.Watch")
	}
	if (*watcher)(nil).unchanged() {
		t.Error("no watcher reports nothing changed")
	}
}

// TestWatchCountsUnknown: an event the watcher cannot place (a queue
// overflow, a descriptor it did not add) counts as a change.
func TestWatchCountsUnknown(t *testing.T) {
	_, _, tr, _, _ := watchedTree(t)
	w := tr.watcher()
	if !w.counts(-1, 0x4000 /* IN_Q_OVERFLOW */, "") {
		t.Error("a queue overflow does not count")
	}
	if !w.counts(1<<30, 0x2 /* IN_MODIFY */, "x") {
		t.Error("an event on an unknown descriptor does not count")
	}
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func chmodFile(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// TestCopyRefusesChangedSinceHashed: a file that changed between the
// digest that made the step's key and the copy fails the copy, naming the
// file, rather than copying content the key does not describe.
func TestCopyRefusesChangedSinceHashed(t *testing.T) {
	dir, _, tr, m, _ := watchedTree(t)
	if err := tr.CopyInto(context.Background(), m, t.TempDir(), CopyRequest{Dest: "/out/"}); err != nil {
		t.Fatalf("copy of what was hashed: %v", err)
	}
	write(t, filepath.Join(dir, "src", "sub", "b.txt"), "changed after the digest")
	err := tr.CopyInto(context.Background(), m, t.TempDir(), CopyRequest{Dest: "/out/"})
	var ce *ChangedError
	if !errors.As(err, &ce) || ce.Path != "src/sub/b.txt" {
		t.Fatalf("copy after a change: %v, want a ChangedError for src/sub/b.txt", err)
	}
	// A digest after the change hashes it again; the copy then agrees.
	if _, err := tr.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := tr.CopyInto(context.Background(), m, t.TempDir(), CopyRequest{Dest: "/out/"}); err != nil {
		t.Fatalf("copy after the digest saw the change: %v", err)
	}
}

// TestHashContentSizes: the content hash is the file's whole content
// whatever its size against the read buffer, and whatever size the
// caller's stat said (a stale one, smaller or larger, reads to the end).
func TestHashContentSizes(t *testing.T) {
	dir := t.TempDir()
	bufLen := 128 << 10
	for _, n := range []int{0, 1, bufLen - 1, bufLen, bufLen + 1, 2 * bufLen} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		p := filepath.Join(dir, fmt.Sprint(n))
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(body)
		for _, size := range []int64{int64(n), int64(n) / 2, int64(n) + 7} {
			h := sha256.New()
			if err := hashContent(h, p, size); err != nil {
				t.Fatal(err)
			}
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Errorf("%d bytes, stat size %d: hash of %x, want the whole file's", n, size, got[:6])
			}
		}
	}
}
