package cache

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound is a miss: no cache at the location, or no such blob.
	ErrNotFound = errors.New("cache: not found")
	// ErrDigestMismatch is a blob whose bytes do not hash to its digest. It
	// is a miss, never a wrong image.
	ErrDigestMismatch = errors.New("cache: blob digest mismatch")
	// ErrSkipped is an import or export that the location's policy turns
	// off (the GitHub cache's ACTIONS_CACHE_MODE, a read-only token). It is
	// neither a failure nor a miss: the build shows one line saying why
	// and goes on, whatever ignore-error says.
	ErrSkipped = errors.New("cache: skipped")
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

// Error is the message: one line.
func (e *PartialError) Error() string {
	return fmt.Sprintf("exported without %d records whose layers could not be read: %v", e.Dropped, e.Err)
}

// Unwrap returns the cause.
func (e *PartialError) Unwrap() error { return e.Err }

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

// ImageExporter is an optional Exporter capability: the cache goes into
// the image itself (inline cache). The build calls AttachTo on the image
// before any output is written, with the records of the export's mode;
// Export is then called like any other and has nothing left to do.
type ImageExporter interface {
	AttachTo(img v1.Image, records []Record) (v1.Image, error)
}
