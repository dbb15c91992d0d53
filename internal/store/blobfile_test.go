package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
)

// TestOpenBlobFile: a blob is verified (its bytes need no second hash)
// only while it is the very file this Store's BlobWriter wrote and hashed;
// one an earlier Store (process) stored, one written to since, and one
// replaced since are not, and read the same otherwise.
func TestOpenBlobFile(t *testing.T) {
	content := []byte("layer bytes, hashed as they were written")
	h := digestOf(content)
	commit := func(t *testing.T, s *Store) {
		t.Helper()
		w, err := s.NewBlobWriter()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.Write(content)
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// prepare stores the blob and returns the Store to open it from.
		prepare      func(t *testing.T, root string) *Store
		wantVerified bool
	}{
		{"committed by this Store", func(t *testing.T, root string) *Store {
			s := openStore(t, root)
			commit(t, s)
			return s
		}, true},
		{"committed by an earlier Store", func(t *testing.T, root string) *Store {
			commit(t, openStore(t, root))
			return openStore(t, root)
		}, false},
		{"present already: WriteBlob did not write it", func(t *testing.T, root string) *Store {
			commit(t, openStore(t, root))
			s := openStore(t, root)
			if err := s.WriteBlob(context.Background(), bytes.NewReader(content), h); err != nil {
				t.Fatal(err)
			}
			return s
		}, false},
		{"written in place since", func(t *testing.T, root string) *Store {
			s := openStore(t, root)
			commit(t, s)
			p := s.BlobPath(h)
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("L"), 0) // same size, other bytes
			f.Close()
			// The write moved the mtime; make sure it is not within the
			// commit's timestamp tick (the one change this cannot see).
			later := time.Now().Add(time.Hour)
			os.Chtimes(p, later, later)
			return s
		}, false},
		{"replaced since", func(t *testing.T, root string) *Store {
			s := openStore(t, root)
			commit(t, s)
			p := s.BlobPath(h)
			fi, _ := os.Stat(p)
			other := filepath.Join(filepath.Dir(p), tmpPrefix+"other")
			os.WriteFile(other, content, 0o644)
			os.Chtimes(other, fi.ModTime(), fi.ModTime()) // same size and mtime, another inode
			if err := os.Rename(other, p); err != nil {
				t.Fatal(err)
			}
			return s
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.prepare(t, t.TempDir())
			f, verified, err := s.OpenBlobFile(h)
			if err != nil {
				t.Fatalf("OpenBlobFile: %v", err)
			}
			defer f.Close()
			if verified != tt.wantVerified {
				t.Errorf("OpenBlobFile: verified %v, want %v", verified, tt.wantVerified)
			}
			if b, _ := io.ReadAll(f); len(b) != len(content) {
				t.Errorf("OpenBlobFile read %d bytes, want %d", len(b), len(content))
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		s := openStore(t, t.TempDir())
		if _, _, err := s.OpenBlobFile(h); !errors.Is(err, ErrNotFound) {
			t.Errorf("OpenBlobFile of a missing blob: %v, want ErrNotFound", err)
		}
	})
}

// TestCheckedBlobWriter: a writer whose caller checks the bytes commits
// them under the digest it is given (hashing nothing itself), and refuses
// to commit without one.
func TestCheckedBlobWriter(t *testing.T) {
	content := []byte("bytes the caller checked as they went by")
	h := digestOf(content)
	s := openStore(t, t.TempDir())
	w, err := s.NewCheckedBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if d := w.Digest(); d != (v1.Hash{}) {
		t.Errorf("Digest of a checked writer = %s, want the zero Hash", d)
	}
	if _, err := w.Commit(); err == nil {
		t.Errorf("Commit of a checked blob without its digest succeeded")
	}
	if s.HasBlob(h) {
		t.Errorf("a refused commit stored the blob")
	}

	w, err = s.NewCheckedBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(content)
	got, err := w.CommitAs(h)
	if err != nil || got != h {
		t.Fatalf("CommitAs = %s, %v; want %s", got, err, h)
	}
	b, err := os.ReadFile(s.BlobPath(h))
	if err != nil || !bytes.Equal(b, content) {
		t.Errorf("stored blob = %q (%v), want %q", b, err, content)
	}
	if f, verified, err := s.OpenBlobFile(h); err != nil || !verified {
		t.Errorf("OpenBlobFile of a checked blob: verified %v, %v; want true", verified, err)
	} else {
		f.Close()
	}
}

// TestOpenBlobLinked: a blob whose file has another name (a local cache
// export hard-links blobs) is hashed as OpenBlob's reader reads it, so a
// write in place through the other name ends in ErrDigestMismatch rather
// than in wrong bytes; an unlinked blob reads as it is.
func TestOpenBlobLinked(t *testing.T) {
	content := []byte("layer bytes that a cache dir also links")
	h := digestOf(content)
	s := openStore(t, t.TempDir())
	w, err := s.NewBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	read := func() ([]byte, error) {
		rc, err := s.OpenBlob(h)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if got, err := read(); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("unlinked blob: %q, %v", got, err)
	}
	other := filepath.Join(t.TempDir(), "cache-blob")
	if err := os.Link(s.BlobPath(h), other); err != nil {
		t.Fatal(err)
	}
	if got, err := read(); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("linked, unchanged blob: %q, %v", got, err)
	}
	f, err := os.OpenFile(other, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := read(); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Errorf("linked blob written in place through its other name: err = %v, want ErrDigestMismatch", err)
	}
}
