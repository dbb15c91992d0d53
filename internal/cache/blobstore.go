package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/internal/stream"
)

// BlobStore is the small core of a backend that keeps a cache as "one OCI
// image manifest plus blobs by digest" (local directory, registry). The
// package turns it into an Importer and an Exporter with NewImporter and
// NewExporter; a backend implements only transport.
//
// Methods may be called concurrently.
type BlobStore interface {
	// Fetch opens a blob. A missing blob is ErrNotFound. It need not check
	// the digest; the caller does. The caller closes the reader.
	Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error)
	// Has reports whether the blob is stored.
	Has(ctx context.Context, desc v1.Descriptor) (bool, error)
	// Put stores a blob read from r, which yields exactly desc's bytes
	// (the caller verifies them). It is not called for blobs Has reports.
	Put(ctx context.Context, desc v1.Descriptor, r io.Reader) error
	// Root returns the raw OCI image manifest that is the cache's entry
	// point, ErrNotFound when the location holds none.
	Root(ctx context.Context) ([]byte, error)
	// SetRoot publishes manifest as the entry point. Every blob it refers
	// to has been Put (or was there) before SetRoot is called.
	SetRoot(ctx context.Context, manifest []byte) error
}

// Locker is an optional BlobStore capability: an export holds the lock from
// its first Put to its SetRoot, so that a store that collects garbage at
// SetRoot never deletes another export's fresh blobs.
type Locker interface {
	Lock(ctx context.Context) (unlock func(), err error)
}

// LayerFetcher is an optional Fetcher capability: the blob as a v1.Layer,
// which may carry where it lives (a registry layer can be cross-repo
// mounted instead of copied).
type LayerFetcher interface {
	FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error)
}

// Mounter is an optional Fetcher capability of registry-backed caches:
// Mountable marks l (a layer whose bytes this cache holds) so that pushing
// it to another repository of the same registry mounts it instead of
// uploading it. l keeps its own descriptors and readers.
type Mounter interface {
	Mountable(l v1.Layer) (v1.Layer, error)
}

// LayerPutter is an optional BlobStore capability: store a blob given as a
// v1.Layer, so the store can mount it from where it already is.
type LayerPutter interface {
	PutLayer(ctx context.Context, l v1.Layer) error
}

// Caps on the JSON documents read from a cache on import, so a corrupt or
// hostile cache cannot make kiln read gigabytes as JSON.
const (
	// MaxManifestSize caps a cache manifest (the config blob that holds
	// the records) and an image config read for inline cache.
	MaxManifestSize = 16 << 20
	// MaxRootSize caps the OCI image manifest that is a cache's entry
	// point (Root) and an OCI layout's index.json.
	MaxRootSize = 4 << 20
)

// ReadAllLimited is stream.ReadAllLimited for backends, which import only
// cache, their transport and ggcr: it reads r whole but fails with a "too
// large" error (matching stream.ErrTooLarge) naming what and the cap once
// more than limit bytes arrive.
func ReadAllLimited(r io.Reader, what string, limit int64) ([]byte, error) {
	return stream.ReadAllLimited(r, what, limit)
}

// NewImporter returns an Importer over a BlobStore.
func NewImporter(s BlobStore) Importer { return blobImporter{s} }

// NewExporter returns an Exporter over a BlobStore.
func NewExporter(s BlobStore) Exporter { return blobExporter{s} }

type blobImporter struct{ s BlobStore }

var _ Importer = blobImporter{}

func (b blobImporter) Import(ctx context.Context) (*Manifest, Fetcher, error) {
	raw, err := b.s.Root(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := DecodeImageManifest(ctx, raw, b.s)
	if err != nil {
		return nil, nil, err
	}
	return m, VerifyingFetcher(b.s), nil
}

// DecodeImageManifest reads the cache manifest that an OCI image manifest
// (raw) carries as its config blob, fetched from f.
func DecodeImageManifest(ctx context.Context, raw []byte, f Fetcher) (*Manifest, error) {
	var im v1.Manifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, fmt.Errorf("decoding cache image manifest: %w", err)
	}
	if im.Config.MediaType != MediaType {
		return nil, fmt.Errorf("not a kiln cache: config media type %q: %w", im.Config.MediaType, ErrNotFound)
	}
	if im.Config.Size > MaxManifestSize {
		return nil, &stream.TooLargeError{What: "cache manifest " + im.Config.Digest.String(), Limit: MaxManifestSize}
	}
	data, err := readConfig(ctx, im.Config, f)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding cache manifest: %w", err)
	}
	return &m, nil
}

// readConfig returns the bytes of the cache manifest desc names: embedded
// in desc (ConfigEmbedder stores), or fetched from f; either way checked
// against desc's digest and size. A download whose bytes are wrong or stop
// short is fetched again, maxConfigAttempts times in all.
func readConfig(ctx context.Context, desc v1.Descriptor, f Fetcher) ([]byte, error) {
	what := "cache manifest " + desc.Digest.String()
	if desc.Data != nil {
		data, err := ReadAllLimited(VerifyReader(io.NopCloser(bytes.NewReader(desc.Data)), desc.Digest, desc.Size), what, MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
		return data, nil
	}
	var err error
	for attempt := 0; attempt < maxConfigAttempts; attempt++ {
		var rc io.ReadCloser
		if rc, err = f.Fetch(ctx, desc); err != nil {
			return nil, fmt.Errorf("fetching %s: %w", what, err)
		}
		var data []byte
		data, err = ReadAllLimited(VerifyReader(rc, desc.Digest, desc.Size), what, MaxManifestSize)
		rc.Close()
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil || errors.Is(err, stream.ErrTooLarge) {
			break
		}
	}
	return nil, fmt.Errorf("reading %s: %w", what, err)
}

// maxConfigAttempts bounds the downloads of one cache manifest.
const maxConfigAttempts = 4

// VerifyingFetcher wraps f so every blob it returns is checked against its
// descriptor's digest and size. It keeps f's Mounter capability, and
// Unwrap returns f.
func VerifyingFetcher(f Fetcher) Fetcher {
	v := verifying{f}
	if m, ok := f.(Mounter); ok {
		return verifyingMounter{v, m}
	}
	return v
}

type verifying struct{ f Fetcher }

func (v verifying) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	rc, err := v.f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return VerifyReader(rc, desc.Digest, desc.Size), nil
}

// Unwrap returns the wrapped Fetcher.
func (v verifying) Unwrap() Fetcher { return v.f }

type verifyingMounter struct {
	verifying
	Mounter
}

var _ Mounter = verifyingMounter{}

// ConfigEmbedder is an optional BlobStore capability: the store wants the
// cache manifest embedded in the root manifest's config descriptor (its
// data field) instead of stored as a blob, so that an import costs one
// read of the root. Stores whose roots are entries of a key-value service
// (the GitHub Actions cache) use it.
type ConfigEmbedder interface {
	EmbedsConfig() bool
}

// RootTruster is an optional BlobStore capability: a store whose every
// request costs a round trip, and which keeps the blobs its root lists as
// long as the root, says so, and Export then does not ask it about them
// (Has). The trade-off is candid: a blob lost behind the store's back stays
// lost until the next export that no longer lists it.
type RootTruster interface {
	TrustsRoot() bool
}

func embedsConfig(s BlobStore) bool {
	e, ok := s.(ConfigEmbedder)
	return ok && e.EmbedsConfig()
}

type blobExporter struct{ s BlobStore }

var _ Exporter = blobExporter{}

// exportParallelism bounds concurrent blob copies.
const exportParallelism = 4

func (b blobExporter) Export(ctx context.Context, m *Manifest, src Fetcher) error {
	if l, ok := b.s.(Locker); ok {
		unlock, err := l.Lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	embed := embedsConfig(b.s)
	config, raw, err := encodeRoot(m, embed)
	if err != nil {
		return err
	}
	// A fully cached build exports the cache it imported: when the
	// location already holds this very manifest, its blobs are there too
	// (a manifest is only ever published after its blobs), so there is
	// nothing to check or send. A store that trusts its root also skips
	// asking about every other layer the current root lists.
	cur, err := b.s.Root(ctx)
	if err == nil && bytes.Equal(cur, raw) {
		return nil
	}
	var known map[v1.Hash]bool
	if t, ok := b.s.(RootTruster); ok && t.TrustsRoot() {
		known = rootLayers(cur)
	}
	missing, firstMiss, err := b.copyBlobs(ctx, m, src, known)
	if err != nil {
		return err
	}
	var partial *PartialError
	if len(missing) > 0 {
		pruned := m.Without(missing)
		partial = &PartialError{Dropped: len(m.Records) - len(pruned.Records), Err: firstMiss}
		if len(pruned.Records) == 0 {
			return partial // nothing left worth publishing; keep what is there
		}
		if config, raw, err = encodeRoot(pruned, embed); err != nil {
			return err
		}
	}
	if !embed {
		if err := b.putConfig(ctx, config); err != nil {
			return err
		}
	}
	if err := b.s.SetRoot(ctx, raw); err != nil {
		return fmt.Errorf("publishing cache: %w", err)
	}
	if partial != nil {
		return partial
	}
	return nil
}

// encodeRoot returns the cache manifest's bytes and the raw root manifest
// that points at (or embeds) them.
func encodeRoot(m *Manifest, embed bool) (config, raw []byte, err error) {
	config, im, err := EncodeImageManifest(m)
	if err != nil {
		return nil, nil, err
	}
	if embed {
		im.Config.Data = config
	}
	raw, err = json.Marshal(im)
	return config, raw, err
}

func (b blobExporter) putConfig(ctx context.Context, config []byte) error {
	desc := configDescriptor(config)
	ok, err := b.s.Has(ctx, desc)
	if err != nil || ok {
		return err
	}
	if err := b.s.Put(ctx, desc, bytes.NewReader(config)); err != nil {
		return fmt.Errorf("writing cache manifest: %w", err)
	}
	return nil
}

// rootLayers lists the layer digests of a raw root manifest; nil when raw
// is not one.
func rootLayers(raw []byte) map[v1.Hash]bool {
	if raw == nil {
		return nil
	}
	var im v1.Manifest
	if json.Unmarshal(raw, &im) != nil || im.Config.MediaType != MediaType {
		return nil
	}
	out := make(map[v1.Hash]bool, len(im.Layers))
	for _, l := range im.Layers {
		out[l.Digest] = true
	}
	return out
}

// copyBlobs copies every layer of m that the store lacks, in parallel. A
// layer src cannot read (a miss) is collected, not fatal; any other error
// is.
func (b blobExporter) copyBlobs(ctx context.Context, m *Manifest, src Fetcher, known map[v1.Hash]bool) (missing map[v1.Hash]bool, firstMiss, err error) {
	var mu sync.Mutex
	missing = map[v1.Hash]bool{}
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(exportParallelism)
	for _, l := range m.Layers() {
		if known[l.Digest] {
			continue
		}
		desc := l.Descriptor()
		eg.Go(func() error {
			err := b.copyBlob(gctx, desc, src)
			if err != nil && IsMiss(err) && gctx.Err() == nil {
				mu.Lock()
				missing[desc.Digest] = true
				if firstMiss == nil {
					firstMiss = err
				}
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, nil, err
	}
	return missing, firstMiss, nil
}

func (b blobExporter) copyBlob(ctx context.Context, desc v1.Descriptor, src Fetcher) error {
	ok, err := b.s.Has(ctx, desc)
	if err != nil {
		return err // stores name the blob in their errors
	}
	if ok {
		return nil
	}
	lp, canPut := b.s.(LayerPutter)
	lf, canFetch := src.(LayerFetcher)
	if canPut && canFetch {
		l, err := lf.FetchLayer(ctx, desc)
		if err != nil {
			return fmt.Errorf("reading blob %s: %w", desc.Digest, err)
		}
		if err := lp.PutLayer(ctx, l); err != nil {
			return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
		}
		return nil
	}
	f, verified, isFile, err := fetchFile(ctx, src, desc)
	if err != nil {
		return fmt.Errorf("reading blob %s: %w", desc.Digest, err)
	}
	if isFile {
		defer f.Close()
		return b.copyFile(ctx, desc, f, verified)
	}
	rc, err := VerifyingFetcher(src).Fetch(ctx, desc)
	if err != nil {
		return fmt.Errorf("reading blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	if err := b.s.Put(ctx, desc, rc); err != nil {
		return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
	}
	return nil
}

// EncodeImageManifest packs m as an OCI image manifest: the cache manifest
// is the config blob, the cache layers are the layers. Every registry that
// takes images takes it. It returns the config bytes and the manifest.
func EncodeImageManifest(m *Manifest) ([]byte, *v1.Manifest, error) {
	config, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding cache manifest: %w", err)
	}
	im := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        configDescriptor(config),
		Layers:        []v1.Descriptor{},
	}
	for _, l := range m.Layers() {
		im.Layers = append(im.Layers, l.Descriptor())
	}
	return config, im, nil
}

func configDescriptor(config []byte) v1.Descriptor {
	sum := sha256.Sum256(config)
	return v1.Descriptor{
		MediaType: MediaType,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Size:      int64(len(config)),
	}
}

// IsMiss reports whether err means "no usable cache here" rather than a
// failure worth more than a warning.
func IsMiss(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrDigestMismatch)
}
