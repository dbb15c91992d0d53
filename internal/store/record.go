package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer is one layer of a record's chain.
type Layer struct {
	// Digest is the digest of the compressed blob.
	Digest v1.Hash `json:"digest"`
	// DiffID is the digest of the uncompressed tar.
	DiffID v1.Hash `json:"diffID"`
	// Size is the compressed size in bytes.
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

// Record is the result of one build step, found by its cache key.
type Record struct {
	// Key is the step's cache key: 64 hex digits, optionally prefixed
	// "sha256:".
	Key string `json:"key"`
	// Layers is the whole layer chain of the filesystem after the step,
	// bottom first.
	Layers    []Layer   `json:"layers"`
	CreatedBy string    `json:"createdBy,omitempty"`
	Created   time.Time `json:"created"`
	Stage     string    `json:"stage,omitempty"`
	// Canonical, when set, is the key the result is canonically known by:
	// Key is then an alias (a COPY --from found by its source stage's key
	// rather than by content), and the state after a hit carries Canonical,
	// so later steps get the same keys however this one was found.
	Canonical string `json:"canonical,omitempty"`
	// LastUsed is when the record was last written or read; it comes from
	// the record file's mtime and is what Prune's LRU order uses. PutRecord
	// ignores the value.
	LastUsed time.Time `json:"-"`
}

// Record returns the record for key and marks it used now. It returns
// ErrNotFound when there is none, or when the record file is unreadable or
// corrupt (the step is then simply built again).
func (s *Store) Record(key string) (*Record, error) {
	name, err := recordFile(key)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(s.root, recordsDir, name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading record %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading record %s: %w", key, err)
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("reading record %s: corrupt (%v): %w", key, err, ErrNotFound)
	}
	now := time.Now()
	// Touching the mtime is the cheap LRU stamp; a failure only makes the
	// record look older to Prune.
	_ = os.Chtimes(p, now, now)
	r.LastUsed = now
	return r, nil
}

// PutRecord stores r under r.Key, replacing any record with that key. The
// write is atomic, so concurrent PutRecords of the same key (from any
// process) leave one of them whole.
func (s *Store) PutRecord(r *Record) error {
	name, err := recordFile(r.Key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding record %s: %w", r.Key, err)
	}
	if err := writeFileAtomic(filepath.Join(s.root, recordsDir, name), b); err != nil {
		return fmt.Errorf("writing record %s: %w", r.Key, err)
	}
	return nil
}

func decodeRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	for _, l := range r.Layers {
		if !validHash(l.Digest) || !validHash(l.DiffID) {
			return nil, fmt.Errorf("bad layer digest %q", l.Digest)
		}
	}
	if r.Canonical != "" {
		if _, err := recordFile(r.Canonical); err != nil {
			return nil, fmt.Errorf("bad canonical key: %w", err)
		}
	}
	return &r, nil
}

// recordFile maps a cache key to its file name, refusing anything that is
// not a sha256 hex digest so that a key can never name a path.
func recordFile(key string) (string, error) {
	hexKey := strings.TrimPrefix(key, "sha256:")
	if !validHash(v1.Hash{Algorithm: "sha256", Hex: hexKey}) {
		return "", fmt.Errorf("record key %q: not a sha256 digest", key)
	}
	return hexKey + ".json", nil
}

// writeFileAtomic writes b to a temporary file beside p and renames it to p.
func writeFileAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
