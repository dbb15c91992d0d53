package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/stream"
)

// tmpPrefix starts the name of every file being written; Prune removes
// leftovers of interrupted writes by it.
const tmpPrefix = ".tmp-"

// HasBlob reports whether the blob with digest h is in the store. Only
// sha256 digests can be stored; any other algorithm reports false.
func (s *Store) HasBlob(h v1.Hash) bool {
	if !validHash(h) {
		return false
	}
	fi, err := os.Stat(s.BlobPath(h))
	return err == nil && fi.Mode().IsRegular()
}

// BlobPath returns where the blob with digest h is (or would be) stored.
// The file, when present, is complete and must not be written to.
func (s *Store) BlobPath(h v1.Hash) string {
	return filepath.Join(s.root, blobsDir, h.Hex)
}

// OpenBlob opens the blob with digest h for reading; the caller closes it.
// It returns ErrNotFound when the blob is absent. The content is not
// re-verified, since BlobWriter verified it when it was stored, unless
// the file has another name too (a local cache export hard-links the
// blobs it exports): what is written through that name, say a copy over
// the cache's blob in place, changes this one, so a linked blob is hashed
// as it is read and a wrong one ends in cache.ErrDigestMismatch.
func (s *Store) OpenBlob(h v1.Hash) (io.ReadCloser, error) {
	f, err := s.openBlob(h)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening blob %s: %w", h, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return cache.VerifyReader(f, h, fi.Size()), nil
	}
	return f, nil
}

func (s *Store) openBlob(h v1.Hash) (*os.File, error) {
	if !validHash(h) {
		return nil, fmt.Errorf("opening blob %s: %w", h, ErrNotFound)
	}
	f, err := os.Open(s.BlobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", h, err)
	}
	return f, nil
}

// OpenBlobFile is OpenBlob as a file, with whether its bytes are known to
// hash to h without being read again: verified is true only when this
// Store committed the blob (a BlobWriter hashed every byte as it wrote
// them and named the file by that digest) and the file opened is still the
// one it wrote: the same inode, size and modification time. A blob an
// earlier process stored, or one written to or replaced since, is not
// verified, and a caller that hands its bytes on must hash them.
//
// What this trusts: that nothing wrote into the file without moving its
// mtime. The state dir is 0700, so only its owner could, and a write in
// place within one kernel timestamp tick of the commit, keeping the size,
// is the one change it cannot see; unpacking a layer still checks its diff
// ID whatever this says. The caller closes the file.
func (s *Store) OpenBlobFile(h v1.Hash) (f *os.File, verified bool, err error) {
	f, err = s.openBlob(h)
	if err != nil {
		return nil, false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("opening blob %s: %w", h, err)
	}
	s.mu.Lock()
	id, ok := s.committed[h.Hex]
	s.mu.Unlock()
	return f, ok && id == fileIDOf(fi), nil
}

// fileID is what tells a blob file this Store wrote from one changed or
// replaced since.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func fileIDOf(fi fs.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}

// remember records that this Store committed the blob h as the file fi.
func (s *Store) remember(h v1.Hash, fi fs.FileInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed == nil {
		s.committed = map[string]fileID{}
	}
	s.committed[h.Hex] = fileIDOf(fi)
}

// WriteBlob stores what r yields as the blob with digest want. If the
// content does not hash to want, nothing is stored and an error is returned.
// If the blob is already present, r is not read. Concurrent writers of the
// same blob, in this process or others, all succeed.
func (s *Store) WriteBlob(ctx context.Context, r io.Reader, want v1.Hash) error {
	if !validHash(want) {
		return fmt.Errorf("writing blob %s: unsupported digest", want)
	}
	if s.HasBlob(want) {
		return nil
	}
	w, err := s.NewBlobWriter()
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := io.Copy(w, stream.Reader(ctx, r)); err != nil {
		return fmt.Errorf("writing blob %s: %w", want, err)
	}
	_, err = w.CommitAs(want)
	return err
}

// BlobWriter writes one blob: bytes go to a temporary file in the blob
// directory while their sha256 is computed, and Commit renames the file into
// place under its digest. A BlobWriter is not safe for concurrent use.
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	size int64
	done bool
}

// NewBlobWriter starts a new blob. The caller must call Close, which
// discards the bytes unless Commit or CommitAs succeeded.
func (s *Store) NewBlobWriter() (*BlobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, blobsDir), tmpPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating blob file: %w", err)
	}
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

// NewCheckedBlobWriter is NewBlobWriter for a caller that checks the bytes
// itself as it writes them: one that reads them through a digest check
// (cache.VerifyReader) to its end, without error, before it commits. The
// writer then does not hash them a second time: Digest is not available,
// and CommitAs takes want, which must be given, as the digest. Everything
// else (the temporary file, the sync, the atomic rename) is the same.
func (s *Store) NewCheckedBlobWriter() (*BlobWriter, error) {
	w, err := s.NewBlobWriter()
	if err != nil {
		return nil, err
	}
	w.h = nil
	return w, nil
}

// Write implements io.Writer.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("writing blob: writer already closed")
	}
	n, err := w.f.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.size += int64(n)
	return n, err
}

// Digest returns the digest of the bytes written so far; the zero Hash
// for a writer from NewCheckedBlobWriter, which does not hash.
func (w *BlobWriter) Digest() v1.Hash {
	if w.h == nil {
		return v1.Hash{}
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

// Size returns the number of bytes written so far.
func (w *BlobWriter) Size() int64 { return w.size }

// Commit stores the blob under the digest of what was written and returns
// that digest.
func (w *BlobWriter) Commit() (v1.Hash, error) { return w.CommitAs(v1.Hash{}) }

// CommitAs is Commit with an expected digest: when want is not the zero
// Hash and the content does not match it, nothing is stored and an error is
// returned. Either way the writer is finished afterwards.
func (w *BlobWriter) CommitAs(want v1.Hash) (v1.Hash, error) {
	if w.done {
		return v1.Hash{}, errors.New("committing blob: writer already closed")
	}
	got := w.Digest()
	if w.h == nil {
		// The caller checked the bytes (NewCheckedBlobWriter).
		if !validHash(want) {
			w.Close()
			return v1.Hash{}, fmt.Errorf("committing blob: a checked blob needs its digest, got %q", want)
		}
		got = want
	}
	if want != (v1.Hash{}) && want != got {
		w.Close()
		return v1.Hash{}, fmt.Errorf("committing blob: digest mismatch: got %s, want %s", got, want)
	}
	if err := w.f.Sync(); err != nil {
		w.Close()
		return v1.Hash{}, fmt.Errorf("committing blob %s: %w", got, err)
	}
	// The file's identity, taken from the descriptor that wrote it: the
	// name may be another writer's file by the time it is looked up.
	fi, err := w.f.Stat()
	if err != nil {
		w.Close()
		return v1.Hash{}, fmt.Errorf("committing blob %s: %w", got, err)
	}
	if err := w.f.Close(); err != nil {
		w.Close()
		return v1.Hash{}, fmt.Errorf("committing blob %s: %w", got, err)
	}
	w.done = true
	tmp := w.f.Name()
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return v1.Hash{}, fmt.Errorf("committing blob %s: %w", got, err)
	}
	// Renaming over an existing blob is fine: it has the same content.
	if err := os.Rename(tmp, w.s.BlobPath(got)); err != nil {
		os.Remove(tmp)
		return v1.Hash{}, fmt.Errorf("committing blob %s: %w", got, err)
	}
	w.s.remember(got, fi)
	return got, nil
}

// Close discards the blob unless it was committed. It is safe to call more
// than once, and after Commit.
func (w *BlobWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("discarding blob file: %w", err)
	}
	return nil
}

func validHash(h v1.Hash) bool {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return false
	}
	for i := 0; i < len(h.Hex); i++ {
		if c := h.Hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
