package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
	"github.com/kiln-build/kiln/internal/stream"
)

// TestHugeDocumentsRefused: an index.json or a top manifest over its cap
// is a "too large" error naming the file and the cap, not a read of the
// whole file.
func TestHugeDocumentsRefused(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat(" ", cache.MaxRootSize)
	t.Run("index.json", func(t *testing.T) {
		t.Parallel()
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`+pad), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := NewImporter(ImportConfig{Src: d, Tag: DefaultTag}).Import(context.Background())
		if !errors.Is(err, stream.ErrTooLarge) || !strings.Contains(err.Error(), "index.json") || !strings.Contains(err.Error(), "4 MiB") {
			t.Fatalf("got %v, want a too-large error naming index.json and 4 MiB", err)
		}
	})
	t.Run("top manifest", func(t *testing.T) {
		t.Parallel()
		d := filepath.Join(t.TempDir(), "cache")
		src := cachetest.NewBlobs()
		m := cachetest.RandomManifest(src, 1, 1)
		if err := NewExporter(ExportConfig{Dest: d, Tag: DefaultTag}).Export(context.Background(), m, src); err != nil {
			t.Fatal(err)
		}
		idx, err := readIndex(d)
		if err != nil {
			t.Fatal(err)
		}
		top := idx.Manifests[0].Digest
		p := filepath.Join(d, "blobs", "sha256", top.Hex)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(b, pad...), 0o644); err != nil {
			t.Fatal(err)
		}
		// With the size unknown (a digest= import), only the cap stops it.
		_, _, err = NewImporter(ImportConfig{Src: d, Digest: &top}).Import(context.Background())
		if !errors.Is(err, stream.ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(top)) {
			t.Fatalf("got %v, want a too-large error naming %s", err, top)
		}
	})
}
