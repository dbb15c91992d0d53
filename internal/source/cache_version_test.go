package source

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestChecksumCacheOldVersionsIgnored: a checksum cache written before xattrs
// were kept with the sums (version 1) holds none, one of version 2 holds
// binary values turned to U+FFFD, so their entries must
// not be used, even for a file whose stat matches: the file is read again.
func TestChecksumCacheOldVersionsIgnored(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	cacheFile := filepath.Join(t.TempDir(), "sums.json")
	for _, version := range []int{1, 2, sumFileVersion} {
		b, err := json.Marshal(sumFile{Version: version, Root: abs, Entries: map[string]sumEntry{
			"f": {statKey: statKeyOf(&st), Sum: "not the content's sum"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cacheFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := Open(root, Options{CacheFile: cacheFile})
		if err != nil {
			t.Fatal(err)
		}
		tr.racyWindow, tr.fineRacyWindow = 0, 0
		ms, err := tr.Select([]string{"f"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Digest(context.Background(), ms); err != nil {
			t.Fatal(err)
		}
		// The current version's entry is trusted (no read), which shows
		// the entry written here matches the file's stat.
		want := int64(1)
		if version == sumFileVersion {
			want = 0
		}
		if got := tr.Hashed(); got != want {
			t.Errorf("cache file of version %d: %d files read, want %d", version, got, want)
		}
	}
}
