package source

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// TestChecksumCacheOldVersionsIgnored: a checksum cache of an earlier
// version is not used, even for a file whose stat matches: the file is read
// again. Versions 1 to 3 were JSON (1 without xattrs, 2 with their binary
// values turned to U+FFFD); the current one is binary.
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
	k := statKeyOf(&st)
	cacheFile := filepath.Join(t.TempDir(), "sums")
	files := map[string][]byte{
		"current": encodeSums(abs, map[string]sumEntry{"f": {statKey: k, Sum: sha256.Sum256([]byte("not the content"))}}),
	}
	for _, version := range []int{1, 2, 3} {
		// The JSON form those versions had.
		b, err := json.Marshal(map[string]any{"version": version, "root": abs, "entries": map[string]any{
			"f": map[string]any{"s": k.Size, "m": k.Mtime, "c": k.Ctime, "i": k.Ino, "d": k.Dev, "h": "not the content's sum"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		files["json version "+string(rune('0'+version))] = b
	}
	for name, b := range files {
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
		if name == "current" {
			want = 0
		}
		if got := tr.Hashed(); got != want {
			t.Errorf("cache file of %s: %d files read, want %d", name, got, want)
		}
	}
}

// TestSumFileRoundTrip: the binary checksum cache decodes to what was
// encoded, negative times and binary xattrs included, and a file cut short,
// with any bit flipped, with bytes after its end or for another root is
// not taken (an empty cache), so that no damage can make a wrong sum.
func TestSumFileRoundTrip(t *testing.T) {
	entries := map[string]sumEntry{
		"a": {statKey: statKey{Size: 5, Mtime: 1700000000123456789, Ctime: -1, Ino: 42, Dev: 1 << 40}, Sum: sha256.Sum256([]byte("a"))},
		"dir/b\xff": {statKey: statKey{Size: 1 << 33}, Sum: sha256.Sum256([]byte("b")),
			Xattrs: []xattrPair{{Name: []byte("security.capability"), Value: []byte{1, 0, 0, 2, 0x80, 0}}, {Name: []byte("user.e"), Value: []byte{}}}},
	}
	b := encodeSums("/ctx", entries)
	got, err := decodeSums(b, "/ctx")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, entries) {
		t.Errorf("decoded %+v, want %+v", got, entries)
	}
	if _, err := decodeSums(b, "/other"); err == nil {
		t.Error("a cache of /ctx decodes for /other")
	}
	for n := range len(b) {
		if _, err := decodeSums(b[:n], "/ctx"); err == nil {
			t.Errorf("the first %d of %d bytes decode", n, len(b))
		}
	}
	if _, err := decodeSums(append(append([]byte(nil), b...), 0), "/ctx"); err == nil {
		t.Error("a byte after the end decodes")
	}
	for i := range len(b) * 8 {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		if _, err := decodeSums(c, "/ctx"); err == nil {
			t.Errorf("bit %d flipped decodes", i)
		}
	}
	if got, err := decodeSums(encodeSums("/ctx", nil), "/ctx"); err != nil || len(got) != 0 {
		t.Errorf("empty cache: %v, %v", got, err)
	}
}

// FuzzDecodeSums: no input makes decodeSums panic, and what it takes
// encodes back to a file that decodes the same.
func FuzzDecodeSums(f *testing.F) {
	f.Add(encodeSums("/r", map[string]sumEntry{"x": {Xattrs: []xattrPair{{Name: []byte("n"), Value: []byte("v")}}}}))
	f.Add([]byte(sumFileMagic + "\x02/r\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeSums(b, "/r")
		if err != nil {
			return
		}
		again, err := decodeSums(encodeSums("/r", got), "/r")
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("re-encoded: %v, %v; want %v", again, err, got)
		}
	})
}
