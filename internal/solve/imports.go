package solve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
)

// Import is an imported cache: its manifest and where its blobs are.
type Import struct {
	// Name is the source as the user knows it ("type=local,src=…").
	Name string
	// Manifest holds the cache's records.
	Manifest *cache.Manifest
	// Fetcher reads the cache's blobs; it may offer cache.Mounter.
	Fetcher cache.Fetcher
}

// importSource is an Import with its counters.
type importSource struct {
	Import
	hits      atomic.Int64
	bytesRead atomic.Int64
}

// candidate is one imported record that may satisfy a key.
type candidate struct {
	src *importSource
	rec cache.Record
}

// BadBlobError is an imported layer that could not be read: missing, or
// failing its digest check. The build treats it as a miss: it marks the
// blob bad (Solver.MarkBad) and solves again, which rebuilds the step.
type BadBlobError struct {
	// Digest is the blob's digest.
	Digest v1.Hash
	// Source is the name of the cache it came from.
	Source string
	// Err is why it could not be read.
	Err error
}

// Error is the message: one line.
func (e *BadBlobError) Error() string {
	return fmt.Sprintf("cache blob %s from %s: %v", e.Digest, e.Source, e.Err)
}

// Unwrap returns the cause.
func (e *BadBlobError) Unwrap() error { return e.Err }

// imports indexes every imported record by key, and (to explain misses)
// by parent key and step identity.
type imports struct {
	sources  []*importSource
	byKey    map[cache.Key][]candidate
	byParent map[cache.Key][]candidate
	byStep   map[string][]candidate
	mu       sync.Mutex
	bad      map[v1.Hash]bool
}

func newImports(in []Import) *imports {
	im := &imports{byKey: map[cache.Key][]candidate{}, byParent: map[cache.Key][]candidate{},
		byStep: map[string][]candidate{}, bad: map[v1.Hash]bool{}}
	for _, i := range in {
		src := &importSource{Import: i}
		im.sources = append(im.sources, src)
		for _, r := range i.Manifest.Records {
			c := candidate{src: src, rec: r}
			im.byKey[r.Key] = append(im.byKey[r.Key], c)
			if r.Canonical != "" {
				continue // an alias: its canonical record is indexed
			}
			if r.Parent != "" {
				im.byParent[r.Parent] = append(im.byParent[r.Parent], c)
			}
			if r.Step != "" {
				im.byStep[r.Step] = append(im.byStep[r.Step], c)
			}
		}
	}
	return im
}

func (im *imports) isBad(h v1.Hash) bool {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.bad[h]
}

// MarkBad excludes a blob from every later lookup: records whose new layer
// it is become misses.
func (s *Solver) MarkBad(h v1.Hash) {
	s.imports.mu.Lock()
	defer s.imports.mu.Unlock()
	s.imports.bad[h] = true
}

// lookupImported finds key in the imported caches: a record whose chain
// extends cur's by one layer. The layer stays lazy; the local store gets a
// record so that, once its blob is fetched, later builds hit locally.
func (s *Solver) lookupImported(step *plan.Step, cur *state, key cache.Key) (*state, *importSource, bool) {
	for _, c := range s.imports.byKey[key] {
		chain := c.rec.Layers
		n := len(cur.layers)
		if len(chain) != n+1 {
			continue
		}
		ok := true
		for i, l := range cur.layers {
			if chain[i].DiffID != l.desc.DiffID {
				ok = false
				break
			}
		}
		top := chain[n]
		if !ok || s.imports.isBad(top.Digest) {
			continue
		}
		if err := usableLayer(top); err != nil {
			s.emit(progress.Event{Kind: progress.Warning, Step: step.Number, Message: fmt.Sprintf(
				"cache %s: %v: treating it as a cache miss", c.src.Name, err)})
			continue
		}
		desc := top
		il := &importedLayer{s: s, src: c.src, d: desc}
		l, err := partial.CompressedToLayer(il)
		if err != nil {
			continue
		}
		s.imported.Store(desc.Digest, il)
		rec := c.rec
		rec.Layers = append(cur.descs(), desc)
		if rec.Key == rec.Canonical {
			rec.Canonical = ""
		}
		if s.opts.SourceDateEpoch != nil {
			rec.Created = *s.opts.SourceDateEpoch
		}
		// Best effort: a failure only costs a local hit next time.
		layers := append(append([]layerRef(nil), cur.layers...), layerRef{desc: desc, layer: l})
		s.putRecords(layers, rec)
		c.src.hits.Add(1)
		result := rec
		result.Key = rec.ResultKey()
		return cur.withLayers(step, result, []cache.Key{key}, layers), c.src, true
	}
	return nil, nil, false
}

// usableLayer checks what a cache record says of its layer before it is
// trusted as a hit: a descriptor kiln could not write into an image (no
// size, a media type that is no layer) would only fail the outputs later.
func usableLayer(l cache.Layer) error {
	if l.Size <= 0 {
		return fmt.Errorf("layer %s has size %d", l.Digest, l.Size)
	}
	if _, ok := layer.CompressionOf(l.MediaType); !ok {
		return fmt.Errorf("layer %s has media type %q, not a layer kiln can use", l.Digest, l.MediaType)
	}
	if l.Digest.Algorithm != "sha256" || l.DiffID.Algorithm != "sha256" {
		return fmt.Errorf("layer %s has diff ID %q, want sha256 digests", l.Digest, l.DiffID)
	}
	return nil
}

// checkCompression reports a blob whose bytes are not compressed as its
// media type says: written into an image with that media type, it would
// be unreadable.
func checkCompression(l cache.Layer, got layer.Compression) error {
	if want, _ := layer.CompressionOf(l.MediaType); want != got {
		return fmt.Errorf("layer %s is declared %s (%s) but its bytes are %s: %w", l.Digest, want, l.MediaType, got, cache.ErrDigestMismatch)
	}
	return nil
}

// importedLayer is a layer from an imported cache. Its bytes are fetched
// on first read, checked against the digest, and kept in the local store,
// so it is fetched at most once per state dir.
type importedLayer struct {
	s    *Solver
	src  *importSource
	d    cache.Layer
	once sync.Mutex
}

func (l *importedLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *importedLayer) DiffID() (v1.Hash, error)            { return l.d.DiffID, nil }
func (l *importedLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *importedLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }

// Compressed fetches the blob into the store if needed and opens it there.
// v1.Layer has no context: solve calls ensure with the step's context
// before it needs the bytes, so this fetch only happens for outputs.
func (l *importedLayer) Compressed() (io.ReadCloser, error) {
	if err := l.ensure(context.Background()); err != nil {
		return nil, err
	}
	return l.s.opts.Store.OpenBlob(l.d.Digest)
}

// ensure puts the blob in the local store, checked against both its digest
// and its diff ID, fetching it at most once. A blob that cannot be had is a
// *BadBlobError (a miss); a cancelled ctx is just that.
func (l *importedLayer) ensure(ctx context.Context) error {
	l.once.Lock()
	defer l.once.Unlock()
	if l.s.opts.Store.HasBlob(l.d.Digest) {
		// The same bytes may have come in under another record: this
		// record's media type must still be theirs.
		if err := l.checkStored(); err != nil {
			return &BadBlobError{Digest: l.d.Digest, Source: l.src.Name, Err: err}
		}
		return nil
	}
	if err := l.fetch(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &BadBlobError{Digest: l.d.Digest, Source: l.src.Name, Err: err}
	}
	return nil
}

// checkStored checks the compression of the stored blob against the
// record's media type.
func (l *importedLayer) checkStored() error {
	rc, err := l.s.opts.Store.OpenBlob(l.d.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	magic := make([]byte, 4)
	n, _ := io.ReadFull(rc, magic)
	return checkCompression(l.d, layer.Sniff(magic[:n]))
}

// fetch downloads the blob into the store (see Solver.fetchBlob).
func (l *importedLayer) fetch(ctx context.Context) error {
	desc := v1.Descriptor{MediaType: l.d.MediaType, Digest: l.d.Digest, Size: l.d.Size}
	open := func(ctx context.Context) (io.ReadCloser, error) { return l.src.Fetcher.Fetch(ctx, desc) }
	return l.s.fetchBlob(ctx, l.d, open, func(n int64) { l.src.bytesRead.Add(n) })
}

type diffResult struct {
	h           v1.Hash
	compression layer.Compression // what the bytes are, sniffed
	err         error
}

// hashUncompressed returns the sha256 of r's decompressed bytes and the
// compression it found. It reads r to the end whatever happens, so the
// writer never blocks.
func hashUncompressed(r io.Reader) diffResult {
	defer io.Copy(io.Discard, r)
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	c := layer.Sniff(magic)
	d, err := layer.Decompress(br)
	if err != nil {
		return diffResult{err: err}
	}
	defer d.Close()
	h, _, err := v1.SHA256(d)
	return diffResult{h: h, compression: c, err: err}
}

// mountable returns, for a layer that came from an imported registry
// cache, that layer marked as living in the cache's repository: pushing it
// to the same registry mounts it instead of downloading and uploading it.
// Its descriptors stay the cache's, and its bytes, if ever read, still go
// through the local store with their digest checked. Otherwise it returns
// nil.
func (s *Solver) mountable(h v1.Hash) v1.Layer {
	v, ok := s.imported.Load(h)
	if !ok {
		return nil
	}
	if s.imports.isBad(h) {
		return nil
	}
	il := v.(*importedLayer)
	m, ok := il.src.Fetcher.(cache.Mounter)
	if !ok {
		return nil
	}
	l, err := partial.CompressedToLayer(il)
	if err != nil {
		return nil
	}
	ml, err := m.Mountable(l)
	if err != nil {
		return nil
	}
	return ml
}

// ImportStats returns, per imported cache, how many steps hit and how many
// bytes were read.
func (s *Solver) ImportStats() []progress.CacheStat {
	var out []progress.CacheStat
	for _, src := range s.imports.sources {
		out = append(out, progress.CacheStat{
			Source: src.Name, Hits: int(src.hits.Load()), BytesRead: src.bytesRead.Load(),
			Direction: progress.DirectionImport,
		})
	}
	return out
}
