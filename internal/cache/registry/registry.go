package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/remote"
)

// repo is one cache reference in a registry.
type repo struct {
	client func() (*remote.Client, error)
	ref    string
	repo   string
}

var (
	_ cache.BlobStore    = (*repo)(nil)
	_ cache.LayerPutter  = (*repo)(nil)
	_ cache.LayerFetcher = (*repo)(nil)
	_ cache.Mounter      = verifying{}
	_ cache.Importer     = (*importer)(nil)
)

func newRepo(ref string, client func() (*remote.Client, error)) *repo {
	r := &repo{client: client, ref: ref}
	if n, err := name.ParseReference(ref); err == nil {
		r.repo = n.Context().Name()
	}
	return r
}

// NewImporter returns the importer of a type=registry cache. It reads a
// kiln cache manifest, or the inline cache of an image. A ref that does not
// exist yet (the first build) is cache.ErrNotFound. It counts its requests
// (cache.RequestCounter), the later reads of its fetcher included.
func NewImporter(c ImportConfig, client func() (*remote.Client, error)) cache.Importer {
	return cache.CountedImporter(&importer{r: newRepo(c.Ref, client)})
}

// NewExporter returns the exporter of a type=registry cache; it counts its
// requests (cache.RequestCounter).
func NewExporter(c ExportConfig, client func() (*remote.Client, error)) cache.Exporter {
	return cache.CountedExporter(cache.NewExporter(newRepo(c.Ref, client)))
}

func mapNotFound(err error) error {
	if errors.Is(err, remote.ErrNotFound) {
		return fmt.Errorf("%w (%v)", cache.ErrNotFound, err)
	}
	return err
}

func (r *repo) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	rc, err := c.Blob(ctx, r.repo, desc.Digest)
	return rc, mapNotFound(err)
}

// FetchLayer returns the blob as a registry layer: lazy, and mountable into
// other repositories of the same registry.
func (r *repo) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	return c.Layer(ctx, r.repo, desc.Digest)
}

func (r *repo) Has(ctx context.Context, desc v1.Descriptor) (bool, error) {
	c, err := r.client()
	if err != nil {
		return false, err
	}
	return c.BlobExists(ctx, r.repo, desc.Digest)
}

// streamLayer is a blob of known descriptor read from a stream. An upload
// that is retried (a 503 on the PATCH, a dropped connection) asks for the
// bytes again: a stream that can seek starts over; any other stream can be
// read once, and a second read is an error rather than a short body.
type streamLayer struct {
	desc v1.Descriptor
	r    io.Reader
	mu   *sync.Mutex
	read *bool
}

func (l streamLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l streamLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l streamLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l streamLayer) Compressed() (io.ReadCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if *l.read {
		s, ok := l.r.(io.Seeker)
		if !ok {
			return nil, fmt.Errorf("blob %s: cannot send it again after a failed upload", l.desc.Digest)
		}
		if _, err := s.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("blob %s: rewinding for another upload: %w", l.desc.Digest, err)
		}
	}
	*l.read = true
	return io.NopCloser(l.r), nil
}

func (r *repo) Put(ctx context.Context, desc v1.Descriptor, rd io.Reader) error {
	l, err := partial.CompressedToLayer(streamLayer{desc: desc, r: rd, mu: new(sync.Mutex), read: new(bool)})
	if err != nil {
		return err
	}
	return r.PutLayer(ctx, l)
}

func (r *repo) PutLayer(ctx context.Context, l v1.Layer) error {
	c, err := r.client()
	if err != nil {
		return err
	}
	return c.WriteLayer(ctx, r.repo, l)
}

// Root is the manifest at the ref. An export asks for it only to learn
// whether it would publish what is there already; when this process has
// just read the ref (the import of the same ref) or written it, that answer
// is used and the registry is not asked again.
func (r *repo) Root(ctx context.Context) ([]byte, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	if raw, mt, found, ok := c.HeldManifest(r.ref); ok && !mt.IsIndex() {
		if !found {
			return nil, fmt.Errorf("%s: %w", r.ref, cache.ErrNotFound)
		}
		return raw, nil
	}
	raw, _, err := r.manifest(ctx)
	return raw, err
}

// manifest fetches the ref's manifest; an index resolves to the manifest
// of this platform.
func (r *repo) manifest(ctx context.Context) ([]byte, types.MediaType, error) {
	c, err := r.client()
	if err != nil {
		return nil, "", err
	}
	raw, mt, _, err := c.Manifest(ctx, r.ref)
	if err != nil {
		return nil, "", mapNotFound(err)
	}
	if !mt.IsIndex() {
		return raw, mt, nil
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, "", fmt.Errorf("decoding index %s: %w", r.ref, err)
	}
	for _, m := range idx.Manifests {
		if m.Platform == nil || (m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH) {
			raw, mt, _, err = c.Manifest(ctx, r.repo+"@"+m.Digest.String())
			return raw, mt, mapNotFound(err)
		}
	}
	return nil, "", fmt.Errorf("%s has no linux/%s image: %w", r.ref, runtime.GOARCH, cache.ErrNotFound)
}

func (r *repo) SetRoot(ctx context.Context, manifest []byte) error {
	c, err := r.client()
	if err != nil {
		return err
	}
	return c.PutManifest(ctx, r.ref, manifest, types.OCIManifestSchema1)
}

type importer struct{ r *repo }

// Import reads a kiln cache manifest at the ref, or, when the ref is an
// image, the inline cache in its config.
//
// An image index (a multi-platform image) gives the inline cache of every
// platform's image, merged.
func (i *importer) Import(ctx context.Context) (*cache.Manifest, cache.Fetcher, error) {
	c, err := i.r.client()
	if err != nil {
		return nil, nil, err
	}
	raw, mt, _, err := c.Manifest(ctx, i.r.ref)
	if err != nil {
		return nil, nil, mapNotFound(err)
	}
	if mt.IsIndex() {
		return i.importIndex(ctx, c, raw)
	}
	return i.importManifest(ctx, raw)
}

// importManifest imports from one image manifest: a kiln cache manifest
// or an image with inline cache.
func (i *importer) importManifest(ctx context.Context, raw []byte) (*cache.Manifest, cache.Fetcher, error) {
	var im v1.Manifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, nil, fmt.Errorf("decoding manifest %s: %w", i.r.ref, err)
	}
	f := verifying{i.r}
	if im.Config.MediaType == cache.MediaType {
		m, err := cache.DecodeImageManifest(ctx, raw, i.r)
		if err != nil {
			return nil, nil, err
		}
		return m, f, nil
	}
	what := "image config of " + i.r.ref
	if im.Config.Size > cache.MaxManifestSize {
		return nil, nil, fmt.Errorf("%s is too large: %d bytes, more than the %d allowed", what, im.Config.Size, cache.MaxManifestSize)
	}
	rc, err := f.Fetch(ctx, im.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("fetching image config of %s: %w", i.r.ref, err)
	}
	defer rc.Close()
	config, err := cache.ReadAllLimited(rc, what, cache.MaxManifestSize)
	if err != nil {
		return nil, nil, fmt.Errorf("reading image config of %s: %w", i.r.ref, err)
	}
	m, err := cache.DecodeInline(config, &im)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", i.r.ref, err)
	}
	return m, f, nil
}

// verifying checks every blob it fetches against its digest and still
// offers the repo's layers for mounting.
type verifying struct{ r *repo }

func (v verifying) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	return cache.VerifyingFetcher(v.r).Fetch(ctx, desc)
}

func (v verifying) FetchLayer(ctx context.Context, desc v1.Descriptor) (v1.Layer, error) {
	return v.r.FetchLayer(ctx, desc)
}

func (v verifying) Mountable(l v1.Layer) (v1.Layer, error) {
	c, err := v.r.client()
	if err != nil {
		return nil, err
	}
	return c.Mountable(l, v.r.repo)
}
