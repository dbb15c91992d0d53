package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/local"
)

// summary is the part of --metadata-file the cache tests read.
type summary struct {
	Digest  string `json:"containerimage.digest"`
	Summary struct {
		Steps, Cached, Ran int
		Caches             []struct {
			Source       string
			Hits         int
			BytesRead    int64
			BytesWritten int64
			Skipped      string
		}
	} `json:"kiln.summary"`
}

func readSummary(t *testing.T, path string) summary {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	return s
}

// cacheBuild runs a build with the given cache flags in a fresh state dir
// and returns its stderr and summary.
func cacheBuild(t *testing.T, ctxDir string, env []string, args ...string) (result, summary) {
	t.Helper()
	md := filepath.Join(t.TempDir(), "md.json")
	state := filepath.Join(t.TempDir(), "state")
	all := append([]string{"build", "--progress", "plain", "--metadata-file", md}, args...)
	r := mustKiln(t, state, env, append(all, ctxDir)...)
	return r, readSummary(t, md)
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLocalCacheModes: a mode=max export lets a brand-new state dir rebuild
// with every step cached, earlier stages included; mode=min gives hits for
// the final stage's steps.
func TestLocalCacheModes(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	maxDir := filepath.Join(t.TempDir(), "max")
	minDir := filepath.Join(t.TempDir(), "min")

	cold, s0 := cacheBuild(t, ctxDir, nil,
		"--cache-to", "type=local,dest="+maxDir+",mode=max",
		"--cache-to", "type=local,dest="+minDir)
	if s0.Summary.Ran != 5 {
		t.Fatalf("cold build ran %d steps, want 5\n%s", s0.Summary.Ran, cold.stderr)
	}

	warm, s1 := cacheBuild(t, ctxDir, nil, "--cache-from", "type=local,src="+maxDir)
	if got := ranSteps(warm.stderr); len(got) != 0 {
		t.Errorf("warm build from mode=max ran steps %v, want none\n%s", got, warm.stderr)
	}
	if s1.Digest != s0.Digest {
		t.Errorf("warm build digest %s, cold %s", s1.Digest, s0.Digest)
	}
	if len(s1.Summary.Caches) == 0 || s1.Summary.Caches[0].Hits != 5 {
		t.Errorf("summary caches = %+v, want 5 hits from the local cache", s1.Summary.Caches)
	}

	// mode=min holds only the final image's lineage: the build stage's two
	// RUNs and its COPY run again, the final stage's COPY --from hits.
	mm, s2 := cacheBuild(t, ctxDir, nil, "--cache-from", "type=local,src="+minDir)
	if s2.Summary.Cached != 1 || s2.Summary.Ran != 4 {
		t.Errorf("build from mode=min: %d cached, %d ran; want 1 cached (final stage COPY), 4 ran\n%s",
			s2.Summary.Cached, s2.Summary.Ran, mm.stderr)
	}
	if s2.Digest != s0.Digest {
		t.Errorf("build from mode=min digest %s, cold %s", s2.Digest, s0.Digest)
	}
	if !strings.Contains(mm.stderr, "COPY --from=build") || !strings.Contains(mm.stderr, "CACHED (type=local,src=") {
		t.Errorf("the final COPY was not a hit from the min cache\n%s", mm.stderr)
	}
	if dirSize(t, minDir) >= dirSize(t, maxDir) {
		t.Errorf("min cache (%d bytes) is not smaller than max cache (%d)", dirSize(t, minDir), dirSize(t, maxDir))
	}
}

// TestLocalCacheRoundTripSameDir is the CI recipe: import from and export
// to one directory, each build in a brand-new state dir.
func TestLocalCacheRoundTripSameDir(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	dir := filepath.Join(t.TempDir(), "cache")
	flags := []string{"--cache-from", "type=local,src=" + dir, "--cache-to", "type=local,dest=" + dir + ",mode=max"}

	first, s1 := cacheBuild(t, ctxDir, nil, flags...)
	if !strings.Contains(first.stderr, "nothing to import yet") {
		t.Errorf("a missing cache dir gave no warning\n%s", first.stderr)
	}
	size1 := dirSize(t, dir)
	second, s2 := cacheBuild(t, ctxDir, nil, flags...)
	if got := ranSteps(second.stderr); len(got) != 0 {
		t.Errorf("second build ran %v\n%s", got, second.stderr)
	}
	if s1.Digest != s2.Digest {
		t.Errorf("digests differ: %s vs %s", s1.Digest, s2.Digest)
	}
	// Nothing was fetched: no step needed layer bytes and there is no
	// output; the export found every blob already there.
	for _, c := range s2.Summary.Caches {
		if c.BytesRead != 0 || c.BytesWritten != 0 {
			t.Errorf("fully cached build moved bytes: %+v", c)
		}
	}

	// Five rebuilds that each change one file: the directory stays the
	// size of one build's cache.
	for i := 0; i < 5; i++ {
		writeFiles(t, ctxDir, map[string]string{"src/b.txt": strings.Repeat("x", i+1) + "\n"})
		cacheBuild(t, ctxDir, nil, flags...)
	}
	if size := dirSize(t, dir); float64(size) > 1.1*float64(size1) {
		t.Errorf("cache dir grew from %d to %d bytes after 5 rebuilds (limit 1.1x)", size1, size)
	}
	assertValidCacheDir(t, dir)
}

// assertValidCacheDir checks the directory is an OCI layout whose tag
// imports and whose every blob verifies.
func assertValidCacheDir(t *testing.T, dir string) *cache.Manifest {
	t.Helper()
	if _, err := layout.ImageIndexFromPath(dir); err != nil {
		t.Fatalf("%s is not an OCI layout: %v", dir, err)
	}
	ctx := t.Context()
	m, f, err := local.NewImporter(local.ImportConfig{Src: dir, Tag: local.DefaultTag}).Import(ctx)
	if err != nil {
		t.Fatalf("importing %s: %v", dir, err)
	}
	for _, l := range m.Layers() {
		rc, err := f.Fetch(ctx, l.Descriptor())
		if err != nil {
			t.Fatalf("blob %s: %v", l.Digest, err)
		}
		_, err = readAllClose(rc)
		if err != nil {
			t.Fatalf("blob %s: %v", l.Digest, err)
		}
	}
	return m
}

func TestConcurrentExportsSameDir(t *testing.T) {
	_, base := setup(t)
	dir := filepath.Join(t.TempDir(), "cache")
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		ctxDir := appContext(t, base)
		writeFiles(t, ctxDir, map[string]string{"src/a.txt": strings.Repeat("z", i+3)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain",
				"--cache-to", "type=local,dest="+dir+",mode=max", ctxDir)
			if r.code != 0 {
				t.Errorf("concurrent export failed: %s", r.stderr)
			}
		}()
	}
	wg.Wait()
	m := assertValidCacheDir(t, dir)
	steps := map[string]bool{}
	for _, r := range m.Records {
		steps[r.CreatedBy] = true
	}
	// Five steps; the COPY --from is recorded under two keys (the source
	// stage's key and the content key).
	if len(steps) != 5 || len(m.Records) != 6 {
		t.Errorf("cache holds %d records of %d steps, want 6 records of the 5 steps of one build", len(m.Records), len(steps))
	}
}

// TestLazyLayers: a cache hit reads no layer bytes unless something needs
// them; an OCI output reads exactly the layers that go into it.
func TestLazyLayers(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	dir := filepath.Join(t.TempDir(), "cache")
	cacheBuild(t, ctxDir, nil, "--cache-to", "type=local,dest="+dir+",mode=max")

	_, s := cacheBuild(t, ctxDir, nil, "--cache-from", "type=local,src="+dir)
	if c := s.Summary.Caches[0]; c.Hits != 5 || c.BytesRead != 0 {
		t.Errorf("fully cached build without output: %+v, want 5 hits and 0 bytes read", c)
	}

	tar := filepath.Join(t.TempDir(), "img.tar")
	_, s = cacheBuild(t, ctxDir, nil, "--cache-from", "type=local,src="+dir, "-o", "type=oci,dest="+tar)
	// The final image is the base layer (from the registry) plus the one
	// COPY --from layer: only that layer comes out of the cache.
	m := assertValidCacheDir(t, dir)
	var want int64
	for _, r := range m.Records {
		if strings.HasPrefix(r.CreatedBy, "COPY --from=build") {
			want = r.Layers[len(r.Layers)-1].Size
		}
	}
	if got := s.Summary.Caches[0].BytesRead; got != want {
		t.Errorf("OCI output read %d bytes from the cache, want %d (the final COPY layer only)", got, want)
	}
}

// TestCorruptBlobIsAMiss: a blob that fails its digest check is a miss
// with a warning, and the build still gives the right image.
func TestCorruptBlobIsAMiss(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	dir := filepath.Join(t.TempDir(), "cache")
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	_, s0 := cacheBuild(t, ctxDir, env, "--cache-to", "type=local,dest="+dir+",mode=max")

	// Corrupt the layer of the final COPY --from, which the OCI output
	// must read.
	m := assertValidCacheDir(t, dir)
	for _, r := range m.Records {
		if strings.HasPrefix(r.CreatedBy, "COPY --from=build") {
			l := r.Layers[len(r.Layers)-1]
			p := filepath.Join(dir, "blobs", "sha256", l.Digest.Hex)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			break // the step has two records (quick and content key), one layer
		}
	}
	r, s := cacheBuild(t, ctxDir, env, "--cache-from", "type=local,src="+dir, "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "x.tar"))
	if !strings.Contains(r.stderr, "digest mismatch") || !strings.Contains(r.stderr, "WARNING") {
		t.Errorf("no warning about the corrupt blob\n%s", r.stderr)
	}
	if s.Digest != s0.Digest {
		t.Errorf("build with a corrupt cache gave %s, want %s", s.Digest, s0.Digest)
	}
	if s.Summary.Ran == 0 {
		t.Errorf("nothing was rebuilt after the corrupt blob")
	}
}

func TestUnwritableCacheDir(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(file, "cache")
	r := kiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain",
		"--cache-to", "type=local,dest="+dest, ctxDir)
	if r.code != 1 || !strings.Contains(r.stderr, "exporting cache to type=local") {
		t.Errorf("unwritable cache: exit %d, want 1 with a clear line\n%s", r.code, r.stderr)
	}
	r = kiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain",
		"--cache-to", "type=local,dest="+dest+",ignore-error=true", ctxDir)
	if r.code != 0 || !strings.Contains(r.stderr, "ignore-error=true") {
		t.Errorf("unwritable cache with ignore-error: exit %d, want 0 and a warning\n%s", r.code, r.stderr)
	}
}

// TestNoCacheStillExports: --no-cache ignores imported caches but still
// exports.
func TestNoCacheStillExports(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	dir := filepath.Join(t.TempDir(), "cache")
	fresh := filepath.Join(t.TempDir(), "fresh")
	cacheBuild(t, ctxDir, nil, "--cache-to", "type=local,dest="+dir+",mode=max")
	r, s := cacheBuild(t, ctxDir, nil, "--no-cache",
		"--cache-from", "type=local,src="+dir, "--cache-to", "type=local,dest="+fresh+",mode=max")
	if s.Summary.Cached != 0 || s.Summary.Ran != 5 {
		t.Errorf("--no-cache: %d cached, %d ran; want 0 and 5\n%s", s.Summary.Cached, s.Summary.Ran, r.stderr)
	}
	m := assertValidCacheDir(t, fresh)
	if len(m.Records) == 0 {
		t.Errorf("--no-cache exported no records")
	}
}

func TestCacheSpecErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n"})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--cache-to", "type=local,dest=/x,colour=red"}, `unknown attribute "colour"`},
		{[]string{"--cache-to", "type=local"}, "dest: required"},
		{[]string{"--cache-from", "type=ftp,src=/x"}, `unknown cache type "ftp"`},
		{[]string{"--cache-to", "type=local,dest=/x,mode=maximal"}, "mode"},
		{[]string{"--cache-to", "type=s3,bucket=b"}, "not supported yet"},
	}
	for _, tt := range tests {
		args := append([]string{"build"}, tt.args...)
		r := kiln(t, filepath.Join(t.TempDir(), "state"), nil, append(args, dir)...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("kiln %v: exit %d, stderr %q; want exit 2 and %q", tt.args, r.code, r.stderr, tt.want)
		}
		if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
			t.Errorf("kiln %v: %d lines of error, want one:\n%s", tt.args, n+1, r.stderr)
		}
	}
}

// TestCacheCompressionZstd: compression=zstd makes the new layers zstd, in
// the cache and in the image, and they import back.
func TestCacheCompressionZstd(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	dir := filepath.Join(t.TempDir(), "cache")
	_, s0 := cacheBuild(t, ctxDir, nil, "--cache-to", "type=local,dest="+dir+",mode=max,compression=zstd,compression-level=3")
	m := assertValidCacheDir(t, dir)
	zstd := 0
	for _, l := range m.Layers() {
		if l.MediaType == "application/vnd.oci.image.layer.v1.tar+zstd" {
			zstd++
		}
	}
	if zstd != 5 {
		t.Errorf("%d zstd layers in the cache, want the 5 built ones", zstd)
	}
	r, s := cacheBuild(t, ctxDir, nil, "--cache-from", "type=local,src="+dir, "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "i.tar"))
	if s.Summary.Cached != 5 || s.Digest != s0.Digest {
		t.Errorf("warm build from a zstd cache: %d cached, digest %s (cold %s)\n%s", s.Summary.Cached, s.Digest, s0.Digest, r.stderr)
	}
}
