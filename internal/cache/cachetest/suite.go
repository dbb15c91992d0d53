package cachetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
)

// Location is one fresh place a cache can live (a new directory, a new
// repository), as a factory hands it to the suite. The suite makes its
// importers and exporters the way kiln does: it parses the specs with the
// table.
type Location struct {
	// Table holds the backend under test (and the dependencies it needs).
	Table *cache.Table
	// Import and Export are the --cache-from and --cache-to values of the
	// location, as a user types them, without mode=.
	Import, Export string
	// Corrupt replaces the stored bytes of a blob with different bytes of
	// the same length; nil skips the corruption test.
	Corrupt func(t *testing.T, digest v1.Hash)
	// Mounter says the imported Fetcher offers cache.Mounter (registry
	// caches): the suite checks that no wrapper hid it.
	Mounter bool
}

// Factory makes a fresh, empty location for each test.
type Factory func(t *testing.T) Location

// BadAttrs is one attribute set a backend must reject, and a string the
// error must contain (the offending key).
type BadAttrs struct {
	// Attrs are the spec's attributes, type= aside.
	Attrs map[string]string
	// Want is a string the error must contain.
	Want string
}

// Run runs the conformance suite against the backend f makes.
func Run(t *testing.T, f Factory) {
	t.Run("miss", func(t *testing.T) { testMiss(t, f(t)) })
	t.Run("round trip", func(t *testing.T) { testRoundTrip(t, f(t)) })
	t.Run("modes", func(t *testing.T) { testModes(t, f) })
	t.Run("replace", func(t *testing.T) { testReplace(t, f(t)) })
	t.Run("re-export is a no-op", func(t *testing.T) { testReexport(t, f(t)) })
	t.Run("corrupt blob is a miss", func(t *testing.T) { testCorrupt(t, f(t)) })
	t.Run("failed export publishes nothing", func(t *testing.T) { testFailedExport(t, f(t)) })
	t.Run("concurrent exports", func(t *testing.T) { testConcurrent(t, f(t)) })
	t.Run("unreadable source layer drops its records", func(t *testing.T) { testPartial(t, f(t)) })
	t.Run("capabilities survive wrappers", func(t *testing.T) { testCapabilities(t, f(t)) })
	t.Run("blob files as the source", func(t *testing.T) { testFileSource(t, f(t)) })
	t.Run("unverified blob file is hashed", func(t *testing.T) { testUnverifiedFile(t, f(t)) })
}

// Importer parses loc's import spec with its table.
func (loc Location) Importer(t *testing.T) cache.Importer {
	t.Helper()
	imps, err := loc.Table.ParseImports([]string{loc.Import})
	if err != nil || len(imps) != 1 {
		t.Fatalf("parsing --cache-from %s: %v (%d imports)", loc.Import, err, len(imps))
	}
	return imps[0].Importer
}

// exporter parses loc's export spec, with extra attributes appended.
func (loc Location) exporter(t *testing.T, extra string) cache.Export {
	t.Helper()
	spec := loc.Export
	if extra != "" {
		spec += "," + extra
	}
	exps, err := loc.Table.ParseExports([]string{spec})
	if err != nil || len(exps) != 1 {
		t.Fatalf("parsing --cache-to %s: %v (%d exports)", spec, err, len(exps))
	}
	return exps[0]
}

// Exporter parses loc's export spec with its table.
func (loc Location) Exporter(t *testing.T) cache.Exporter {
	t.Helper()
	return loc.exporter(t, "").Exporter
}

func (loc Location) export(t *testing.T, m *cache.Manifest, src cache.Fetcher) error {
	t.Helper()
	return loc.Exporter(t).Export(context.Background(), m, src)
}

// ImportParser returns a parse function for RunParse: b's --cache-from
// specs, through a table that holds only b.
func ImportParser(b cache.Backend) func(map[string]string) error {
	table := cache.NewTable(cache.Deps{}, b)
	return func(attrs map[string]string) error {
		_, err := table.ParseImport(cache.Spec{Type: b.Type, Attrs: attrs, Raw: "type=" + b.Type})
		return err
	}
}

// ExportParser is ImportParser for --cache-to specs.
func ExportParser(b cache.Backend) func(map[string]string) error {
	table := cache.NewTable(cache.Deps{}, b)
	return func(attrs map[string]string) error {
		_, err := table.ParseExport(cache.Spec{Type: b.Type, Attrs: attrs, Raw: "type=" + b.Type})
		return err
	}
}

// RunParse checks that parse rejects each bad attribute set with an error
// naming the key, and accepts each good one.
func RunParse(t *testing.T, parse func(map[string]string) error, good []map[string]string, bad []BadAttrs) {
	for i, attrs := range good {
		t.Run(fmt.Sprintf("good/%d", i), func(t *testing.T) {
			if err := parse(attrs); err != nil {
				t.Errorf("parse(%v) = %v, want no error", attrs, err)
			}
		})
	}
	for i, b := range bad {
		t.Run(fmt.Sprintf("bad/%d", i), func(t *testing.T) {
			err := parse(b.Attrs)
			if err == nil || !strings.Contains(err.Error(), b.Want) {
				t.Errorf("parse(%v) = %v, want an error containing %q", b.Attrs, err, b.Want)
			}
		})
	}
}

// Blobs is an in-memory blob source, the Fetcher an export reads from.
type Blobs struct {
	mu sync.Mutex
	m  map[v1.Hash][]byte
	// FailAfter, if > 0, makes every fetch after that many fail.
	FailAfter int
	fetches   int
}

// NewBlobs returns an empty source.
func NewBlobs() *Blobs { return &Blobs{m: map[v1.Hash][]byte{}} }

// Fetch implements cache.Fetcher.
func (b *Blobs) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetches++
	if b.FailAfter > 0 && b.fetches > b.FailAfter {
		return nil, errors.New("cachetest: injected source failure")
	}
	data, ok := b.m[desc.Digest]
	if !ok {
		return nil, cache.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Add stores data and returns its layer (its diff ID is made up).
func (b *Blobs) Add(data []byte) cache.Layer {
	sum := sha256.Sum256(data)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	b.mu.Lock()
	b.m[h] = data
	b.mu.Unlock()
	diff := sha256.Sum256(append([]byte("diff"), data...))
	return cache.Layer{
		MediaType: types.OCILayer, Digest: h, Size: int64(len(data)),
		DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff[:])},
	}
}

// RandomManifest makes a manifest of n layers of random bytes (stored in
// b) with one record per layer prefix.
func RandomManifest(b *Blobs, seed int64, n int) *cache.Manifest {
	rng := rand.New(rand.NewSource(seed))
	var layers []cache.Layer
	var records []cache.Record
	for i := 0; i < n; i++ {
		data := make([]byte, 1000+rng.Intn(5000))
		rng.Read(data)
		layers = append(layers, b.Add(data))
		records = append(records, cache.Record{
			Key:       cache.Key(fmt.Sprintf("sha256:%064x", rng.Int63())),
			Layers:    append([]cache.Layer(nil), layers...),
			CreatedBy: fmt.Sprintf("RUN step %d", i),
			Stage:     "build",
			Created:   time.Unix(1700000000+int64(i), 0).UTC(),
		})
	}
	return cache.NewManifest(records)
}

func testMiss(t *testing.T, loc Location) {
	m, f, err := loc.Importer(t).Import(context.Background())
	if !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Import of an empty location = (%v, %v, %v), want cache.ErrNotFound", m, f, err)
	}
}

// checkImport imports and compares with want, and reads every blob back.
func checkImport(t *testing.T, loc Location, want *cache.Manifest, src *Blobs) {
	t.Helper()
	ctx := context.Background()
	got, f, err := loc.Importer(t).Import(ctx)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("imported manifest differs (-want +got):\n%s", diff)
	}
	for _, l := range got.Layers() {
		rc, err := f.Fetch(ctx, l.Descriptor())
		if err != nil {
			t.Fatalf("Fetch %s: %v", l.Digest, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading %s: %v", l.Digest, err)
		}
		if !bytes.Equal(data, src.m[l.Digest]) {
			t.Errorf("blob %s: bytes differ", l.Digest)
		}
	}
}

func testRoundTrip(t *testing.T, loc Location) {
	src := NewBlobs()
	m := RandomManifest(src, 1, 3)
	if err := loc.export(t, m, src); err != nil {
		t.Fatalf("Export: %v", err)
	}
	checkImport(t, loc, m, src)
}

func testReplace(t *testing.T, loc Location) {
	src := NewBlobs()
	first := RandomManifest(src, 2, 3)
	if err := loc.export(t, first, src); err != nil {
		t.Fatalf("first Export: %v", err)
	}
	second := RandomManifest(src, 3, 2)
	if err := loc.export(t, second, src); err != nil {
		t.Fatalf("second Export: %v", err)
	}
	checkImport(t, loc, second, src)
}

func testCorrupt(t *testing.T, loc Location) {
	if loc.Corrupt == nil {
		t.Skip("backend cannot corrupt blobs in tests")
	}
	ctx := context.Background()
	src := NewBlobs()
	m := RandomManifest(src, 4, 2)
	if err := loc.export(t, m, src); err != nil {
		t.Fatalf("Export: %v", err)
	}
	bad := m.Layers()[1]
	loc.Corrupt(t, bad.Digest)
	_, f, err := loc.Importer(t).Import(ctx)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	rc, err := f.Fetch(ctx, bad.Descriptor())
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !cache.IsMiss(err) {
		t.Errorf("reading a corrupt blob gave %v, want a miss (ErrDigestMismatch or ErrNotFound)", err)
	}
	// The intact blob still reads.
	rc, err = f.Fetch(ctx, m.Layers()[0].Descriptor())
	if err != nil {
		t.Fatalf("Fetch intact blob: %v", err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err != nil {
		t.Errorf("reading intact blob: %v", err)
	}
}

func testFailedExport(t *testing.T, loc Location) {
	src := NewBlobs()
	first := RandomManifest(src, 5, 2)
	if err := loc.export(t, first, src); err != nil {
		t.Fatalf("Export: %v", err)
	}
	src2 := NewBlobs()
	second := RandomManifest(src2, 6, 4)
	src2.FailAfter = 2
	if err := loc.export(t, second, src2); err == nil {
		t.Fatalf("Export with a failing source succeeded")
	}
	checkImport(t, loc, first, src)
}

func testConcurrent(t *testing.T, loc Location) {
	ctx := context.Background()
	src := NewBlobs()
	ms := []*cache.Manifest{RandomManifest(src, 7, 3), RandomManifest(src, 8, 3)}
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		exp := loc.exporter(t, "").Exporter
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = exp.Export(ctx, m, src)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Export %d: %v", i, err)
		}
	}
	got, _, err := loc.Importer(t).Import(ctx)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	for _, m := range ms {
		if cmp.Equal(m, got) {
			checkImport(t, loc, m, src)
			return
		}
	}
	t.Fatalf("after two concurrent exports the location holds neither manifest: %+v", got)
}

func testPartial(t *testing.T, loc Location) {
	src := NewBlobs()
	m := RandomManifest(src, 10, 3)
	// The top layer is gone from the source (evicted from the cache it
	// was imported from): the record that needs it is dropped, the others
	// are published.
	src.mu.Lock()
	delete(src.m, m.Layers()[2].Digest)
	src.mu.Unlock()
	err := loc.export(t, m, src)
	var partial *cache.PartialError
	if !errors.As(err, &partial) || partial.Dropped != 1 {
		t.Fatalf("Export with a missing source layer = %v, want a PartialError dropping 1 record", err)
	}
	want := m.Without(map[v1.Hash]bool{m.Layers()[2].Digest: true})
	checkImport(t, loc, want, src)
}

// testModes checks that mode= parses to the mode asked for, min by
// default, and that a location exported in either mode imports whole.
func testModes(t *testing.T, f Factory) {
	for _, tc := range []struct {
		extra string
		want  cache.Mode
	}{{"", cache.ModeMin}, {"mode=min", cache.ModeMin}, {"mode=max", cache.ModeMax}} {
		loc := f(t)
		exp := loc.exporter(t, tc.extra)
		if exp.Options.Mode != tc.want {
			t.Errorf("--cache-to %s,%s: mode %q, want %q", loc.Export, tc.extra, exp.Options.Mode, tc.want)
		}
		src := NewBlobs()
		m := RandomManifest(src, 11, 3)
		if err := exp.Exporter.Export(context.Background(), m, src); err != nil {
			t.Fatalf("Export (%s): %v", tc.extra, err)
		}
		checkImport(t, loc, m, src)
	}
}

// testReexport: exporting the manifest the location already holds (a
// fully cached build) reads no blob and leaves the cache as it was.
func testReexport(t *testing.T, loc Location) {
	src := NewBlobs()
	m := RandomManifest(src, 12, 3)
	if err := loc.export(t, m, src); err != nil {
		t.Fatalf("Export: %v", err)
	}
	src.mu.Lock()
	before := src.fetches
	src.mu.Unlock()
	if err := loc.export(t, m, src); err != nil {
		t.Fatalf("second Export: %v", err)
	}
	src.mu.Lock()
	n := src.fetches - before
	src.mu.Unlock()
	if n != 0 {
		t.Errorf("re-exporting the same manifest read %d blobs, want 0", n)
	}
	checkImport(t, loc, m, src)
}

// layerBlobs is a Blobs that also offers its blobs as v1.Layers.
type layerBlobs struct {
	*Blobs
	layers int
}

func (b *layerBlobs) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	b.mu.Lock()
	data, ok := b.m[desc.Digest]
	b.layers++
	b.mu.Unlock()
	if !ok {
		return nil, cache.ErrNotFound
	}
	return static.NewLayer(data, desc.MediaType), nil
}

// testCapabilities: the wrappers kiln puts around fetchers keep the
// optional capabilities (STYLE habit 7): the counting wrapper an export's
// source goes through keeps cache.LayerFetcher, and the imported Fetcher
// keeps cache.Mounter where the backend offers it.
func testCapabilities(t *testing.T, loc Location) {
	src := &layerBlobs{Blobs: NewBlobs()}
	var n atomic.Int64
	counted := cache.CountingFetcher(src, func(k int64) { n.Add(k) })
	if _, ok := counted.(cache.LayerFetcher); !ok {
		t.Fatalf("cache.CountingFetcher hid cache.LayerFetcher")
	}
	m := RandomManifest(src.Blobs, 13, 2)
	if err := loc.export(t, m, counted); err != nil {
		t.Fatalf("Export: %v", err)
	}
	var size int64
	for _, l := range m.Layers() {
		size += l.Size
	}
	if n.Load() != size {
		t.Errorf("counted %d bytes read, want %d (every layer once)", n.Load(), size)
	}
	_, f, err := loc.Importer(t).Import(context.Background())
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if _, ok := f.(cache.Mounter); ok != loc.Mounter {
		t.Errorf("imported Fetcher offers cache.Mounter: %v, want %v", ok, loc.Mounter)
	}
}

// fileBlobs is a Blobs that also offers its blobs as files on disk
// (cache.FileFetcher), as kiln's state dir does; FetchFile answers
// verified as set, and the files hold what files says (the blob's bytes
// unless a test put others there).
type fileBlobs struct {
	*Blobs
	dir      string
	verified bool
	opened   atomic.Int64
}

func newFileBlobs(t *testing.T, verified bool) *fileBlobs {
	return &fileBlobs{Blobs: NewBlobs(), dir: t.TempDir(), verified: verified}
}

// write puts every blob's bytes in its file.
func (b *fileBlobs) write(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for h, data := range b.m {
		if err := os.WriteFile(filepath.Join(b.dir, h.Hex), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *fileBlobs) FetchFile(ctx context.Context, desc v1.Descriptor) (*os.File, bool, error) {
	f, err := os.Open(filepath.Join(b.dir, desc.Digest.Hex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, cache.ErrNotFound
	}
	if err != nil {
		return nil, false, err
	}
	b.opened.Add(1)
	return f, b.verified, nil
}

// testFileSource: a source that offers its blobs as files, verified, is
// exported through them (through the counting wrapper, which keeps the
// capability and counts each file whole) and imports whole.
func testFileSource(t *testing.T, loc Location) {
	src := newFileBlobs(t, true)
	m := RandomManifest(src.Blobs, 14, 3)
	src.write(t)
	var n atomic.Int64
	counted := cache.CountingFetcher(src, func(k int64) { n.Add(k) })
	if _, ok := counted.(cache.FileFetcher); !ok {
		t.Fatalf("cache.CountingFetcher hid cache.FileFetcher")
	}
	if err := loc.export(t, m, counted); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if got := src.opened.Load(); got != int64(len(m.Layers())) {
		t.Errorf("Export opened %d blob files, want %d (one per layer)", got, len(m.Layers()))
	}
	var size int64
	for _, l := range m.Layers() {
		size += l.Size
	}
	if n.Load() != size {
		t.Errorf("counted %d bytes, want %d (every layer once)", n.Load(), size)
	}
	checkImport(t, loc, m, src.Blobs)
}

// testUnverifiedFile: a blob file the source does not vouch for is hashed
// on its way out, so one whose bytes are wrong is never published: the
// record that needs it is dropped, the others are exported.
func testUnverifiedFile(t *testing.T, loc Location) {
	src := newFileBlobs(t, false)
	m := RandomManifest(src.Blobs, 15, 3)
	src.write(t)
	bad := m.Layers()[2]
	p := filepath.Join(src.dir, bad.Digest.Hex)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = loc.export(t, m, src)
	var partial *cache.PartialError
	if !errors.As(err, &partial) || partial.Dropped != 1 || !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("Export with a corrupt unverified blob file = %v, want a PartialError dropping 1 record for a digest mismatch", err)
	}
	checkImport(t, loc, m.Without(map[v1.Hash]bool{bad.Digest: true}), src.Blobs)
}
