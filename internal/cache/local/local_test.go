package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

func factory(t *testing.T) cachetest.Location {
	d := filepath.Join(t.TempDir(), "cache")
	return cachetest.Location{
		Table:  cache.NewTable(cache.Deps{}, Backend()),
		Import: "type=local,src=" + d,
		Export: "type=local,dest=" + d,
		Corrupt: func(t *testing.T, h v1.Hash) {
			p := filepath.Join(d, "blobs", "sha256", h.Hex)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestConformance(t *testing.T) { cachetest.Run(t, factory) }

func TestParse(t *testing.T) {
	cachetest.RunParse(t, cachetest.ImportParser(Backend()),
		[]map[string]string{
			{"src": "/c"},
			{"src": "/c", "tag": "main", "ignore-error": "true"},
			{"src": "/c", "digest": "sha256:" + strings.Repeat("ab", 32)},
		},
		[]cachetest.BadAttrs{
			{Attrs: map[string]string{}, Want: "src"},
			{Attrs: map[string]string{"src": "/c", "colour": "blue"}, Want: `"colour"`},
			{Attrs: map[string]string{"src": "/c", "dest": "/d"}, Want: "dest"},
			{Attrs: map[string]string{"src": "/c", "digest": "nope"}, Want: "digest"},
			{Attrs: map[string]string{"src": "/c", "mode": "max"}, Want: "mode"},
		})
	cachetest.RunParse(t, cachetest.ExportParser(Backend()),
		[]map[string]string{
			{"dest": "/c"},
			{"dest": "/c", "mode": "max", "tag": "x", "compression": "zstd", "compression-level": "19", "force-compression": ""},
			{"dest": "/c", "ignore-error": "true", "oci-mediatypes": "true", "image-manifest": "true"},
		},
		[]cachetest.BadAttrs{
			{Attrs: map[string]string{"mode": "max"}, Want: "dest"},
			{Attrs: map[string]string{"dest": "/c", "mode": "maximum"}, Want: "mode"},
			{Attrs: map[string]string{"dest": "/c", "compression": "lz4"}, Want: "compression"},
			{Attrs: map[string]string{"dest": "/c", "compression-level": "30"}, Want: "compression-level"},
			{Attrs: map[string]string{"dest": "/c", "ignore-error": "maybe"}, Want: "ignore-error"},
			{Attrs: map[string]string{"dest": "/c", "src": "/d"}, Want: "src"},
			{Attrs: map[string]string{"dest": "/c", "bogus": "1"}, Want: `"bogus"`},
		})
}

// TestNoGrowth exports five caches in turn and checks that only the last
// one's blobs remain, while other tags' blobs are kept.
func TestNoGrowth(t *testing.T) {
	ctx := context.Background()
	d := filepath.Join(t.TempDir(), "cache")
	src := cachetest.NewBlobs()
	other := cachetest.RandomManifest(src, 100, 2)
	if err := NewExporter(ExportConfig{Dest: d, Tag: "other"}).Export(ctx, other, src); err != nil {
		t.Fatal(err)
	}
	var last *cache.Manifest
	for i := 0; i < 5; i++ {
		last = cachetest.RandomManifest(src, int64(i), 3)
		if err := NewExporter(ExportConfig{Dest: d, Tag: DefaultTag}).Export(ctx, last, src); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(d, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	// Each tag: its layers, its config and its manifest.
	want := (len(last.Layers()) + 2) + (len(other.Layers()) + 2)
	if len(entries) != want {
		t.Errorf("%d blobs after 5 exports, want %d (only live caches)", len(entries), want)
	}
	got, _, err := NewImporter(ImportConfig{Src: d, Tag: "other"}).Import(ctx)
	if err != nil {
		t.Fatalf("importing the other tag after GC: %v", err)
	}
	if len(got.Records) != len(other.Records) {
		t.Errorf("other tag has %d records, want %d", len(got.Records), len(other.Records))
	}
}

func TestUnwritableDestFails(t *testing.T) {
	// root writes anywhere, so the unwritable place is a path under a
	// regular file.
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := cachetest.NewBlobs()
	m := cachetest.RandomManifest(src, 1, 1)
	err := NewExporter(ExportConfig{Dest: filepath.Join(f, "cache"), Tag: DefaultTag}).Export(context.Background(), m, src)
	if err == nil {
		t.Fatal("export under a regular file succeeded")
	}
}

// TestIdenticalExportIsANoOp: exporting the manifest the directory already
// holds checks and rewrites nothing.
func TestIdenticalExportIsANoOp(t *testing.T) {
	ctx := context.Background()
	d := filepath.Join(t.TempDir(), "cache")
	src := cachetest.NewBlobs()
	m := cachetest.RandomManifest(src, 9, 3)
	if err := NewExporter(ExportConfig{Dest: d, Tag: DefaultTag}).Export(ctx, m, src); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(filepath.Join(d, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	// A source that fails every fetch proves no blob is copied.
	empty := cachetest.NewBlobs()
	if err := NewExporter(ExportConfig{Dest: d, Tag: DefaultTag}).Export(ctx, m, empty); err != nil {
		t.Fatalf("re-export of the same manifest: %v", err)
	}
	after, _ := os.Stat(filepath.Join(d, "index.json"))
	if !os.SameFile(before, after) {
		t.Errorf("index.json was rewritten for an identical export")
	}
}
