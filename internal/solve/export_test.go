package solve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/local"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/snapshot"
	"github.com/kiln-build/kiln/internal/store"
)

// TestExportFromStore: a local cache export links the blobs this build's
// store wrote and checked, without reading them; a store blob whose bytes
// are wrong is never exported, whether an earlier process stored it or it
// changed since this one did: those are hashed on the way, and the records
// that need the bad one are dropped.
func TestExportFromStore(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctx := context.Background()
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n"})
	epoch := testEpoch
	e := newEnv(t)
	cold, _ := e.solveOnce(ctxDir, twoCopies, Options{SourceDateEpoch: &epoch})
	m := cache.NewManifest(cold.Records(cache.ModeMax))
	export := func(res *Result, dest string) error {
		return local.NewExporter(local.ExportConfig{Dest: dest, Tag: "latest"}).Export(ctx, m, res.Fetcher())
	}
	blobIn := func(dir string, h v1.Hash) string { return filepath.Join(dir, "blobs", "sha256", h.Hex) }

	linked := filepath.Join(t.TempDir(), "cache")
	if err := export(cold, linked); err != nil {
		t.Fatalf("Export: %v", err)
	}
	for _, l := range m.Layers() {
		sfi, err1 := os.Stat(e.st.BlobPath(l.Digest))
		cfi, err2 := os.Stat(blobIn(linked, l.Digest))
		if err1 != nil || err2 != nil || !os.SameFile(sfi, cfi) {
			t.Errorf("cache blob %s is not a hard link of the store's (%v, %v)", l.Digest, err1, err2)
		}
	}

	// Corrupt the top layer's blob in the store in place, keeping its size
	// and mtime: only what the store remembers of its own writes changes.
	layers := m.Layers()
	top := layers[len(layers)-1]
	p := e.st.BlobPath(top.Digest)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0, 0, 0, 0}, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	checkDropped := func(t *testing.T, err error, dest string) {
		t.Helper()
		var partial *cache.PartialError
		if !errors.As(err, &partial) || !errors.Is(err, cache.ErrDigestMismatch) {
			t.Fatalf("Export of a corrupt store blob = %v, want a *cache.PartialError for a digest mismatch", err)
		}
		if _, err := os.Stat(blobIn(dest, top.Digest)); err == nil {
			t.Errorf("the corrupt blob %s was exported", top.Digest)
		}
		for _, l := range layers[:len(layers)-1] {
			if _, err := os.Stat(blobIn(dest, l.Digest)); err != nil {
				t.Errorf("intact blob %s not exported: %v", l.Digest, err)
			}
		}
	}

	t.Run("stored by an earlier process", func(t *testing.T) {
		st, err := store.Open(e.st.Root())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		snap, err := snapshot.New(snapshot.Options{Root: st.SnapshotRoot(), Session: st.Session()})
		if err != nil {
			t.Fatal(err)
		}
		warm, _ := (&env{t: t, st: st, snap: snap}).solveOnce(ctxDir, twoCopies, Options{SourceDateEpoch: &epoch})
		dest := filepath.Join(t.TempDir(), "cache")
		checkDropped(t, export(warm, dest), dest)
	})
	t.Run("changed since this process stored it", func(t *testing.T) {
		later := fi.ModTime().Add(time.Second)
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(t.TempDir(), "cache")
		checkDropped(t, export(cold, dest), dest)
	})
}
