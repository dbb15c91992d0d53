package cache

import (
	"context"
	"errors"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFile is FileFetcher's answer for a blob that is not a file on this
// machine: not a miss, the caller reads it with Fetch instead.
var ErrNotFile = errors.New("cache: blob is not a local file")

// FileFetcher is an optional Fetcher capability: a blob that is a file on
// this machine, opened, so that a store on the same file system can link
// it and another can copy it in the kernel instead of reading it through.
//
// verified reports that the fetcher itself knows the file's bytes to be
// desc's without reading them again (kiln's state dir says so of the
// blobs it wrote and checked in this process: store.OpenBlobFile); when it
// is false the caller checks the bytes as it would a Fetch's. A blob the
// fetcher does not hold is ErrNotFound, one it holds elsewhere than in a
// file ErrNotFile. The caller closes the file. FetchFile may be called
// from several goroutines at once.
type FileFetcher interface {
	FetchFile(ctx context.Context, desc v1.Descriptor) (f *os.File, verified bool, err error)
}

// FilePutter is an optional BlobStore capability: store a blob from f, an
// open file whose bytes the caller knows to be desc's (its size is still
// the store's to check). The store may hard-link f's file instead of
// copying it, so it must, like kiln's state dir, never write into a blob
// file once it is in place. It is not called for blobs Has reports.
type FilePutter interface {
	PutFile(ctx context.Context, desc v1.Descriptor, f *os.File) error
}

// fetchFile returns src's file for desc, when src has one: ok is false
// when src is no FileFetcher or answers ErrNotFile.
func fetchFile(ctx context.Context, src Fetcher, desc v1.Descriptor) (f *os.File, verified, ok bool, err error) {
	ff, is := src.(FileFetcher)
	if !is {
		return nil, false, false, nil
	}
	f, verified, err = ff.FetchFile(ctx, desc)
	if errors.Is(err, ErrNotFile) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, err
	}
	return f, verified, true, nil
}

// copyFile stores desc from f. The guarantee that no wrong blob is
// exported is f's verified flag: true only for a file whose bytes were
// hashed as they were written, in this process, and which has not changed
// since (store.OpenBlobFile). Anything else is hashed on its way, like a
// Fetch, and a mismatch stores nothing.
func (b blobExporter) copyFile(ctx context.Context, desc v1.Descriptor, f *os.File, verified bool) error {
	if !verified {
		if err := b.s.Put(ctx, desc, VerifyReader(f, desc.Digest, desc.Size)); err != nil {
			return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
		}
		return nil
	}
	var err error
	if fp, ok := b.s.(FilePutter); ok {
		err = fp.PutFile(ctx, desc, f)
	} else {
		err = b.s.Put(ctx, desc, f)
	}
	if err != nil {
		return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
	}
	return nil
}
