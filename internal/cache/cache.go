package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound is a miss: no cache at the location, or no such blob.
	ErrNotFound = errors.New("cache: not found")
	// ErrDigestMismatch is a blob whose bytes do not hash to its digest. It
	// is a miss, never a wrong image.
	ErrDigestMismatch = errors.New("cache: blob digest mismatch")
)

// PartialError is what Export returns when it published the cache without
// the records whose layers its source could not read (gone from the cache
// they were imported from, or corrupt). The export itself succeeded.
type PartialError struct {
	// Dropped is how many records were left out.
	Dropped int
	// Err is one of the read errors.
	Err error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("exported without %d records whose layers could not be read: %v", e.Dropped, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// MediaType is the media type of the portable cache manifest.
const MediaType types.MediaType = "application/vnd.kiln.cache.config.v1+json"

// SchemaVersion is the version of the manifest format this kiln writes and
// reads.
const SchemaVersion = 1

// Manifest is the portable cache manifest of DESIGN.md §4: the layers a
// cache holds and the step records that refer to them. It is independent of
// where it is stored.
type Manifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	Layers        []Layer         `json:"layers"`
	Records       []Record        `json:"records"`
}

// Layer is one layer blob of a cache.
type Layer struct {
	MediaType types.MediaType `json:"mediaType"`
	Digest    v1.Hash         `json:"digest"`
	Size      int64           `json:"size"`
	DiffID    v1.Hash         `json:"diffID"`
}

// Descriptor returns the layer as an OCI descriptor.
func (l Layer) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
}

// Record is the result of one step: the whole layer chain of the filesystem
// after it, as indexes into Manifest.Layers, bottom first.
type Record struct {
	Key Key `json:"key"`
	// Canonical, when set, makes Key an alias: the step's result is
	// canonically known by Canonical, and later steps' keys build on it.
	Canonical Key       `json:"canonical,omitempty"`
	Layers    []int     `json:"layers"`
	CreatedBy string    `json:"createdBy,omitempty"`
	Stage     string    `json:"stage,omitempty"`
	Created   time.Time `json:"created,omitzero"`
}

// Validate checks the manifest's version and that every record's layer
// indexes are in range. A manifest that fails is unusable as a whole.
func (m *Manifest) Validate() error {
	if m.SchemaVersion != SchemaVersion {
		return fmt.Errorf("cache manifest schema version %d, this kiln reads %d", m.SchemaVersion, SchemaVersion)
	}
	if m.MediaType != MediaType {
		return fmt.Errorf("cache manifest media type %q, want %q", m.MediaType, MediaType)
	}
	for i, r := range m.Records {
		if r.Key == "" {
			return fmt.Errorf("cache record %d has no key", i)
		}
		for _, li := range r.Layers {
			if li < 0 || li >= len(m.Layers) {
				return fmt.Errorf("cache record %s: layer index %d out of range", r.Key, li)
			}
		}
	}
	return nil
}

// Fetcher reads cache blobs by descriptor.
//
// Fetch returns ErrNotFound for a blob the source does not hold. The reader
// checks the digest as it is read: a mismatch surfaces as an error wrapping
// ErrDigestMismatch from Read at the end of the blob, and callers treat it
// as a miss. The caller closes the reader. Fetch may be called from several
// goroutines at once.
type Fetcher interface {
	Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error)
}

// Importer reads a cache.
//
// Import returns the cache's manifest and a Fetcher for its blobs. A
// location that holds no cache yet returns an error wrapping ErrNotFound,
// never a nil manifest with a nil error. Import does not read layer blobs.
type Importer interface {
	Import(ctx context.Context) (*Manifest, Fetcher, error)
}

// Exporter writes a cache.
//
// Export makes the location hold exactly m: it copies the blobs of m's
// layers from src (skipping those already there), then publishes m last, so
// a failed export never publishes a manifest whose blobs are missing. A
// layer src cannot read (a miss) drops the records that use it, and Export
// returns a *PartialError after publishing the rest.
// Concurrent exports to one location leave it holding one of the manifests
// whole, never a mix.
type Exporter interface {
	Export(ctx context.Context, m *Manifest, src Fetcher) error
}

// FetcherFunc adapts a function to Fetcher.
type FetcherFunc func(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error)

// Fetch calls f.
func (f FetcherFunc) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	return f(ctx, desc)
}
