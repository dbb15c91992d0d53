package solve

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/stream"
	"github.com/kiln-build/kiln/internal/transport"
)

// maxFetchAttempts bounds how often one layer blob (of a base image or an
// imported cache) is downloaded when its bytes fail their digest or diff
// ID check or stop short. Answers the transport retries (429, 5xx, dropped
// connections) count once.
const maxFetchAttempts = 4

// opener opens a layer's compressed bytes for one download.
type opener func(ctx context.Context) (io.ReadCloser, error)

// fetchBlob puts the compressed blob of d into the store, checked against
// its digest, size and diff ID, downloading it again (maxFetchAttempts in
// all) when the bytes that came were wrong or stopped short. An error from
// open (no such blob, an answer the transport gave up on), a bound on time
// and a cancelled ctx end it at once: another download would not help.
func (s *Solver) fetchBlob(ctx context.Context, d cache.Layer, open opener, count func(int64)) error {
	var err error
	for attempt := 1; attempt <= maxFetchAttempts; attempt++ {
		var opened bool
		opened, err = s.fetchOnce(ctx, d, open, count)
		if err == nil || !opened || ctx.Err() != nil || errors.Is(err, transport.ErrTimeout) || errors.Is(err, stream.ErrTooLarge) {
			return err
		}
		s.log.Debug("layer download bad, fetching again", "digest", d.Digest, "attempt", attempt, "error", err)
	}
	return fmt.Errorf("%d downloads, none whole and right; the last: %w", maxFetchAttempts, err)
}

// fetchOnce is one download: it copies the blob into a store blob writer
// while a second reader decompresses and hashes it, and commits only when
// the compressed digest and the diff ID both match d (a wrong diff ID
// would otherwise publish wrong contents under a chain ID). opened reports
// whether open succeeded, so that the error is about the bytes.
func (s *Solver) fetchOnce(ctx context.Context, d cache.Layer, open opener, count func(int64)) (opened bool, err error) {
	rc, err := open(ctx)
	if err != nil {
		return false, err
	}
	rc = cache.VerifyReader(rc, d.Digest, d.Size)
	defer rc.Close()
	// The verifier hashes every byte the blob writer gets, and the copy
	// below ends without error only once it has seen them all match: the
	// writer need not hash them again.
	bw, err := s.opts.Store.NewCheckedBlobWriter()
	if err != nil {
		return false, err
	}
	defer bw.Close()
	pr, pw := io.Pipe()
	diffID := make(chan diffResult, 1)
	go func() { diffID <- hashUncompressed(pr) }()
	var src io.Reader = rc
	if count != nil {
		src = stream.Count(rc, count)
	}
	_, err = io.Copy(io.MultiWriter(bw, pw), stream.Reader(ctx, src))
	pw.CloseWithError(err)
	got := <-diffID
	if err != nil {
		return true, err
	}
	if got.err != nil {
		return true, fmt.Errorf("decompressing %s: %v: %w", d.Digest, got.err, cache.ErrDigestMismatch)
	}
	if err := checkCompression(d, got.compression); err != nil {
		return true, err
	}
	if got.h != d.DiffID {
		return true, fmt.Errorf("layer %s uncompresses to %s, want %s: %w", d.Digest, got.h, d.DiffID, cache.ErrDigestMismatch)
	}
	if _, err := bw.CommitAs(d.Digest); err != nil {
		return true, fmt.Errorf("storing %s: %w", d.Digest, err)
	}
	return true, nil
}
