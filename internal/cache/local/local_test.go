package local

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

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

// TestSymlinkedBlobsRefused: a blobs/sha256 that is a symlink (a restored
// archive can plant one) is refused, and nothing in its target is touched.
func TestSymlinkedBlobsRefused(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "precious")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(outside, "thesis.tex")
	if err := os.WriteFile(keep, []byte("years of work"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(tmp, "cache")
	if err := os.MkdirAll(filepath.Join(d, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d, "blobs", "sha256")); err != nil {
		t.Fatal(err)
	}
	src := cachetest.NewBlobs()
	m := cachetest.RandomManifest(src, 1, 2)
	err := NewExporter(ExportConfig{Dest: d, Tag: DefaultTag}).Export(ctx, m, src)
	if err == nil || !strings.Contains(err.Error(), "blobs/sha256") || strings.Contains(err.Error(), "\n") {
		t.Errorf("export into a symlinked blobs dir: got %v, want one line naming blobs/sha256", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file outside the cache is gone: %v", err)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("%d files in the symlink's target, want the 1 that was there", len(ents))
	}
}

// TestGCFollowsIndexes: an OCI image index stored beside the cache under
// another tag keeps its child manifests, their configs and layers.
func TestGCFollowsIndexes(t *testing.T) {
	ctx := context.Background()
	d := filepath.Join(t.TempDir(), "cache")
	blobs := filepath.Join(d, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) v1.Descriptor {
		h, n, err := v1.SHA256(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(blobs, h.Hex), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: h, Size: n}
	}
	var children []v1.Descriptor
	var want []string
	for _, arch := range []string{"amd64", "arm64"} {
		cfg := put([]byte(`{"architecture":"` + arch + `","os":"linux"}`))
		cfg.MediaType = types.OCIConfigJSON
		l := put([]byte("layer of " + arch))
		l.MediaType = types.OCILayer
		mb, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: []v1.Descriptor{l}})
		md := put(mb)
		md.MediaType = types.OCIManifestSchema1
		md.Platform = &v1.Platform{OS: "linux", Architecture: arch}
		children = append(children, md)
		want = append(want, cfg.Digest.Hex, l.Digest.Hex, md.Digest.Hex)
	}
	ib, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: children})
	id := put(ib)
	id.MediaType = types.OCIImageIndex
	id.Annotations = map[string]string{refNameAnnotation: "app"}
	want = append(want, id.Digest.Hex)
	top, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{id}})
	if err := os.WriteFile(filepath.Join(d, indexFile), top, 0o644); err != nil {
		t.Fatal(err)
	}

	src := cachetest.NewBlobs()
	if err := NewExporter(ExportConfig{Dest: d, Tag: DefaultTag}).Export(ctx, cachetest.RandomManifest(src, 3, 2), src); err != nil {
		t.Fatal(err)
	}
	for _, h := range want {
		if _, err := os.Stat(filepath.Join(blobs, h)); err != nil {
			t.Errorf("blob %s of the multi-platform image: %v", h[:12], err)
		}
	}
}
