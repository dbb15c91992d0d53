package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// file describes one entry of a test tree: a directory when path ends in
// "/", a symlink when link is set, a regular file otherwise.
type file struct {
	path    string
	content string
	mode    os.FileMode
	link    string
}

func mkTree(t *testing.T, dir string, files []file) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(f.path, "/"):
			err = os.MkdirAll(p, 0o755)
		case f.link != "":
			err = os.Symlink(f.link, p)
		default:
			err = os.WriteFile(p, []byte(f.content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.mode != 0 {
			if err := os.Chmod(p, f.mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

var contextFiles = []file{
	{path: "a.txt", content: "a"},
	{path: "b.txt", content: "bb"},
	{path: "dir/x.go", content: "package x"},
	{path: "dir/sub/y.go", content: "package y"},
	{path: "dir/debug.log", content: "log"},
	{path: "secret/key", content: "k"},
	{path: "secret/keep", content: "keep"},
	{path: ".git/HEAD", content: "ref"},
	{path: "link-in", link: "dir/x.go"},
	{path: "link-out", link: "../../etc/passwd"},
	{path: "abs-link", link: "/dir"},
	{path: "dir/up", link: "../a.txt"},
}

var contextIgnore = []string{".git", "secret", "!secret/keep", "**/*.log"}

func openTree(t *testing.T, dir string, opts Options) *Tree {
	t.Helper()
	tr, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	tr.racyWindow = 0
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestSelect(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, contextFiles)
	tr := openTree(t, dir, Options{Ignore: contextIgnore})
	tests := []struct {
		sources []string
		want    []Match
		wantErr string
	}{
		{[]string{"a.txt"}, []Match{{Source: "a.txt", Path: "a.txt", Name: "a.txt"}}, ""},
		{[]string{"/a.txt"}, []Match{{Source: "/a.txt", Path: "a.txt", Name: "a.txt"}}, ""},
		{[]string{"*.txt"}, []Match{
			{Source: "*.txt", Path: "a.txt", Name: "a.txt", Wildcard: true},
			{Source: "*.txt", Path: "b.txt", Name: "b.txt", Wildcard: true}}, ""},
		{[]string{"d?r/*/y.go"}, []Match{{Source: "d?r/*/y.go", Path: "dir/sub/y.go", Name: "y.go", Wildcard: true}}, ""},
		{[]string{"dir"}, []Match{{Source: "dir", Path: "dir", Name: "dir", Dir: true}}, ""},
		{[]string{"."}, []Match{{Source: ".", Path: "", Name: "", Dir: true}}, ""},
		{[]string{"a.txt", "dir/"}, []Match{
			{Source: "a.txt", Path: "a.txt", Name: "a.txt"},
			{Source: "dir/", Path: "dir", Name: "dir", Dir: true}}, ""},
		{[]string{"secret/keep"}, []Match{{Source: "secret/keep", Path: "secret/keep", Name: "keep"}}, ""},
		{[]string{"link-in"}, []Match{{Source: "link-in", Path: "dir/x.go", Name: "link-in"}}, ""},
		{[]string{"abs-link/x.go"}, []Match{{Source: "abs-link/x.go", Path: "dir/x.go", Name: "x.go"}}, ""},
		{[]string{"dir/up"}, []Match{{Source: "dir/up", Path: "a.txt", Name: "up"}}, ""},
		{[]string{"../x"}, nil, `COPY source "../x" is outside the build context`},
		{[]string{"dir/../../x"}, nil, `COPY source "dir/../../x" is outside the build context`},
		{[]string{"nope"}, nil, `COPY source "nope": no such file or directory`},
		// A glob matching nothing is no match and no error, beside other
		// sources or alone (BuildKit's testEmptyWildcard).
		{[]string{"*.nomatch"}, nil, ""},
		{[]string{"*.nomatch", "a.txt"}, []Match{{Source: "a.txt", Path: "a.txt", Name: "a.txt"}}, ""},
		{[]string{".git/HEAD"}, nil, `COPY source ".git/HEAD": no such file or directory`},
		{[]string{".git"}, nil, `COPY source ".git": no such file or directory`},
		{[]string{"secret/key"}, nil, `COPY source "secret/key": no such file or directory`},
		{[]string{"dir/debug.log"}, nil, `COPY source "dir/debug.log": no such file or directory`},
		{[]string{"link-out"}, nil, "points outside the root"},
		{[]string{"a.txt/x"}, nil, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.sources, ","), func(t *testing.T) {
			got, err := tr.Select(tt.sources)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Select error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadIgnore(t *testing.T) {
	dir := t.TempDir()
	got, err := ReadIgnore(filepath.Join(dir, ".dockerignore"))
	if err != nil || got != nil {
		t.Errorf("ReadIgnore(absent) = %v, %v; want nil, nil", got, err)
	}
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("# comment\n.git\n\n!keep\n/abs/**\n"), 0o644)
	got, err = ReadIgnore(filepath.Join(dir, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{".git", "!keep", "abs/**"}, got); diff != "" {
		t.Errorf("ReadIgnore (-want +got):\n%s", diff)
	}
}

func digest(t *testing.T, dir string, opts Options, sources ...string) string {
	t.Helper()
	tr := openTree(t, dir, opts)
	ms, err := tr.Select(sources)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tr.Digest(context.Background(), ms)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d, "sha256:") || len(d) != 71 {
		t.Fatalf("Digest = %q", d)
	}
	return d
}

func TestDigest(t *testing.T) {
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		opts    Options
		sources []string
		mutate  func(dir string) error
		same    bool
	}{
		{"content", Options{}, []string{"."}, func(d string) error {
			return os.WriteFile(filepath.Join(d, "dir/x.go"), []byte("package z"), 0o644)
		}, false},
		{"mode", Options{}, []string{"."}, func(d string) error { return os.Chmod(filepath.Join(d, "a.txt"), 0o755) }, false},
		{"setuid", Options{}, []string{"."}, func(d string) error {
			return os.Chmod(filepath.Join(d, "a.txt"), 0o644|os.ModeSetuid)
		}, false},
		{"rename", Options{}, []string{"."}, func(d string) error {
			return os.Rename(filepath.Join(d, "b.txt"), filepath.Join(d, "c.txt"))
		}, false},
		{"link target", Options{}, []string{"."}, func(d string) error {
			os.Remove(filepath.Join(d, "dir/up"))
			return os.Symlink("../b.txt", filepath.Join(d, "dir/up"))
		}, false},
		{"owner", Options{}, []string{"."}, func(d string) error { return os.Lchown(filepath.Join(d, "a.txt"), 1234, 1234) }, false},
		{"owner ignored", Options{IgnoreOwners: true}, []string{"."}, func(d string) error {
			return os.Lchown(filepath.Join(d, "a.txt"), 1234, 1234)
		}, true},
		{"file renamed to dir", Options{}, []string{"."}, func(d string) error {
			os.Remove(filepath.Join(d, "b.txt"))
			return os.Mkdir(filepath.Join(d, "b.txt"), 0o755)
		}, false},
		{"mtime only", Options{}, []string{"."}, func(d string) error {
			for _, p := range []string{"a.txt", "dir", "dir/x.go"} {
				if err := os.Chtimes(filepath.Join(d, p), old, old); err != nil {
					return err
				}
			}
			return nil
		}, true},
		{"ignored file added", Options{Ignore: contextIgnore}, []string{"."}, func(d string) error {
			return os.WriteFile(filepath.Join(d, "dir/new.log"), []byte("x"), 0o644)
		}, true},
		{"ignored file changed", Options{Ignore: contextIgnore}, []string{"."}, func(d string) error {
			return os.WriteFile(filepath.Join(d, "secret/key"), []byte("other"), 0o644)
		}, true},
		{"re-included file changed", Options{Ignore: contextIgnore}, []string{"."}, func(d string) error {
			return os.WriteFile(filepath.Join(d, "secret/keep"), []byte("other"), 0o644)
		}, false},
		{"unselected file changed", Options{}, []string{"dir"}, func(d string) error {
			return os.WriteFile(filepath.Join(d, "a.txt"), []byte("other"), 0o644)
		}, true},
		{"followed link's target changed", Options{}, []string{"link-in"}, func(d string) error {
			return os.WriteFile(filepath.Join(d, "dir/x.go"), []byte("other"), 0o644)
		}, false},
	}
	// The parts a case needs beyond the others: chown needs root.
	parts := map[string][]string{"owner": {"root"}, "owner ignored": {"root"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imagetest.Require(t, parts[tt.name]...)
			dir := t.TempDir()
			files := append([]file{}, contextFiles...)
			files = files[:len(files)-3] // no escaping link: it is fine inside a walk, but keep it simple
			files = append(files, file{path: "dir/up", link: "../a.txt"})
			mkTree(t, dir, files)
			before := digest(t, dir, tt.opts, tt.sources...)
			if again := digest(t, dir, tt.opts, tt.sources...); again != before {
				t.Fatalf("Digest not stable: %s then %s", before, again)
			}
			if err := tt.mutate(dir); err != nil {
				t.Fatal(err)
			}
			after := digest(t, dir, tt.opts, tt.sources...)
			if (after == before) != tt.same {
				t.Errorf("digest before %s, after %s; want same=%v", before, after, tt.same)
			}
		})
	}
}

// TestDigestNames pins that the destination name of a file match counts.
func TestDigestNames(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, []file{{path: "a", content: "x"}, {path: "b", content: "x"}})
	if digest(t, dir, Options{}, "a") == digest(t, dir, Options{}, "b") {
		t.Error("files with the same content but different names digest the same")
	}
}

func TestChecksumCache(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, []file{
		{path: "one", content: "1111"}, {path: "two", content: "2222"}, {path: "d/three", content: "3333"},
	})
	cacheFile := filepath.Join(t.TempDir(), "cc", "ctx.json")
	run := func(racy time.Duration) (string, int64) {
		t.Helper()
		tr, err := Open(dir, Options{CacheFile: cacheFile})
		if err != nil {
			t.Fatal(err)
		}
		tr.racyWindow, tr.fineRacyWindow = racy, racy
		ms, err := tr.Select([]string{"."})
		if err != nil {
			t.Fatal(err)
		}
		d, err := tr.Digest(context.Background(), ms)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		return d, tr.reads.Load()
	}
	steps := []struct {
		name      string
		mutate    func()
		racy      time.Duration
		wantReads int64
		wantSame  bool
	}{
		{"cold", func() {}, 0, 3, true},
		{"warm: stat only", func() {}, 0, 0, true},
		{"one file rewritten", func() { os.WriteFile(filepath.Join(dir, "two"), []byte("22222"), 0o644) }, 0, 1, false},
		{"warm again", func() {}, 0, 0, true},
		{"same size and mtime, new content", func() {
			p := filepath.Join(dir, "one")
			fi, _ := os.Stat(p)
			os.WriteFile(p, []byte("9999"), 0o644)
			os.Chtimes(p, fi.ModTime(), fi.ModTime()) // ctime still moves
		}, 0, 1, false},
		{"corrupt cache file", func() { os.WriteFile(cacheFile, []byte("{garbage"), 0o644) }, 0, 3, true},
		{"racy files are not cached", func() { os.Remove(cacheFile) }, time.Hour, 3, true},
		{"so they are read again", func() {}, time.Hour, 3, true},
	}
	var prev string
	for i, s := range steps {
		s.mutate()
		d, reads := run(s.racy)
		if reads != s.wantReads {
			t.Errorf("%s: %d files read, want %d", s.name, reads, s.wantReads)
		}
		if i > 0 && (d == prev) != s.wantSame {
			t.Errorf("%s: digest %s after %s, want same=%v", s.name, d, prev, s.wantSame)
		}
		prev = d
	}
	// Another root does not reuse this cache.
	other := t.TempDir()
	mkTree(t, other, []file{{path: "one", content: "1111"}})
	tr := openTree(t, other, Options{CacheFile: cacheFile})
	ms, _ := tr.Select([]string{"."})
	tr.Digest(context.Background(), ms)
	if tr.reads.Load() != 1 {
		t.Errorf("cache for another root used: %d reads, want 1", tr.reads.Load())
	}
}

func TestChecksumCacheConcurrentSave(t *testing.T) {
	dir := t.TempDir()
	var files []file
	for i := range 50 {
		files = append(files, file{path: filepath.Join("f", string(rune('a'+i%26))+strings.Repeat("x", i)), content: strings.Repeat("y", i)})
	}
	mkTree(t, dir, files)
	cacheFile := filepath.Join(t.TempDir(), "ctx.json")
	done := make(chan error)
	for range 4 {
		go func() {
			tr, err := Open(dir, Options{CacheFile: cacheFile})
			if err != nil {
				done <- err
				return
			}
			tr.racyWindow = 0
			ms, _ := tr.Select([]string{"."})
			if _, err := tr.Digest(context.Background(), ms); err != nil {
				done <- err
				return
			}
			done <- tr.Close()
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	tr := openTree(t, dir, Options{CacheFile: cacheFile})
	ms, _ := tr.Select([]string{"."})
	if _, err := tr.Digest(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	if n := tr.reads.Load(); n != 0 {
		t.Errorf("after concurrent saves, %d files read, want 0", n)
	}
}

// TestReadIgnoreBadPattern: a pattern that does not parse is an error that
// names the file and its line.
func TestReadIgnoreBadPattern(t *testing.T) {
	p := filepath.Join(t.TempDir(), ".dockerignore")
	os.WriteFile(p, []byte("# comment\n.git\n\nsrc/[a-\nok\n"), 0o644)
	_, err := ReadIgnore(p)
	if err == nil || !strings.Contains(err.Error(), ".dockerignore:4:") || !strings.Contains(err.Error(), "src/[a-") {
		t.Errorf("ReadIgnore of a bad pattern on line 4: got %v, want an error naming line 4", err)
	}
}

// TestSelectAsNamesTheSource: a missing source is named by what it is.
func TestSelectAsNamesTheSource(t *testing.T) {
	tr := openTree(t, t.TempDir(), Options{})
	_, err := tr.SelectAs("RUN --mount=type=bind source", []string{"nothere"})
	if err == nil || !strings.HasPrefix(err.Error(), `RUN --mount=type=bind source "nothere"`) {
		t.Errorf("got %v, want it to name the bind source", err)
	}
	if _, err := tr.Select([]string{"nothere"}); err == nil || !strings.HasPrefix(err.Error(), `COPY source "nothere"`) {
		t.Errorf("Select: got %v, want a COPY source error", err)
	}
}
