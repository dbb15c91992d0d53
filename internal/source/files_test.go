package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDigestFiles: DigestFiles gives Digest's digest, one entry per path
// it covers, and a changed file changes its own entry only.
func TestDigestFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkTree(t, dir, []file{{path: "src/a.go", content: "a"}, {path: "src/b.go", content: "b"}, {path: "other", content: "o"}})
	ctx := context.Background()
	sums := func() (string, map[string]string) {
		tr, err := Open(dir, Options{IgnoreOwners: true})
		if err != nil {
			t.Fatal(err)
		}
		ms, err := tr.Select([]string{"src/"})
		if err != nil {
			t.Fatal(err)
		}
		d, files, err := tr.DigestFiles(ctx, ms)
		if err != nil {
			t.Fatal(err)
		}
		if want, err := tr.Digest(ctx, ms); err != nil || d != want {
			t.Errorf("DigestFiles digest %s, Digest %s (%v): want equal", d, want, err)
		}
		out := map[string]string{}
		for _, f := range files {
			out[f.Path] = f.Digest
		}
		return d, out
	}
	d1, f1 := sums()
	if got, want := len(f1), 3; got != want {
		t.Fatalf("got %d paths %v, want %d (src, src/a.go, src/b.go)", got, f1, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "src/b.go"), []byte("B"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2, f2 := sums()
	if d1 == d2 {
		t.Error("digest did not change with src/b.go")
	}
	var changed []string
	for p, d := range f2 {
		if f1[p] != d {
			changed = append(changed, p)
		}
	}
	if diff := cmp.Diff([]string{"src/b.go"}, changed); diff != "" {
		t.Errorf("changed paths (-want +got):\n%s", diff)
	}
}

// BenchmarkDigestFiles compares Digest with DigestFiles on a tree of 20,000
// small files whose checksums are cached (a warm context).
func BenchmarkDigestFiles(b *testing.B) {
	dir := b.TempDir()
	for d := range 100 {
		sub := filepath.Join(dir, "src", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 200 {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.go", f)), []byte("package x\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	tr, err := Open(dir, Options{IgnoreOwners: true, CacheFile: filepath.Join(b.TempDir(), "cc")})
	if err != nil {
		b.Fatal(err)
	}
	tr.racyWindow = 0
	ms, err := tr.Select([]string{"src/"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := tr.Digest(ctx, ms); err != nil {
		b.Fatal(err)
	}
	b.Run("Digest", func(b *testing.B) {
		for b.Loop() {
			if _, err := tr.Digest(ctx, ms); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DigestFiles", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := tr.DigestFiles(ctx, ms); err != nil {
				b.Fatal(err)
			}
		}
	})
}
