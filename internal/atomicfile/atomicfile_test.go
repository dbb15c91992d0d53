package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "two" || fi.Mode().Perm() != 0o644 {
		t.Errorf("got %q mode %v", b, fi.Mode())
	}
	boom := errors.New("boom")
	err := WriteFunc(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("WriteFunc error = %v, want boom", err)
	}
	b, _ = os.ReadFile(p)
	entries, _ := os.ReadDir(dir)
	if string(b) != "two" || len(entries) != 1 {
		t.Errorf("after a failed write: content %q, %d files (want the old content, no temp file)", b, len(entries))
	}
}

// TestWriteUnsynced: WriteUnsynced replaces the file as Write does, but
// never syncs it; Write syncs once.
func TestWriteUnsynced(t *testing.T) {
	syncs := 0
	orig := syncFile
	syncFile = func(f *os.File) error { syncs++; return orig(f) }
	t.Cleanup(func() { syncFile = orig })
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	if err := WriteUnsynced(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteUnsynced(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	entries, _ := os.ReadDir(dir)
	if string(b) != "two" || fi.Mode().Perm() != 0o644 || len(entries) != 1 {
		t.Errorf("got %q mode %v, %d files; want \"two\", 0644, no temp file", b, fi.Mode(), len(entries))
	}
	if syncs != 0 {
		t.Errorf("WriteUnsynced synced %d times", syncs)
	}
	if err := Write(p, []byte("three"), 0o644); err != nil {
		t.Fatal(err)
	}
	if syncs != 1 {
		t.Errorf("Write synced %d times, want 1", syncs)
	}
}
