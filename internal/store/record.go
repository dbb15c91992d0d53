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

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/cache"
)

// Record returns the record for key and marks it used now. It returns
// ErrNotFound when there is none, or when the record file is unreadable or
// corrupt (the step is then simply built again).
func (s *Store) Record(key cache.Key) (*cache.Record, error) {
	return s.readRecord(key, true)
}

// readRecord reads the record for key; touch marks it used now.
func (s *Store) readRecord(key cache.Key, touch bool) (*cache.Record, error) {
	name, err := recordFile(string(key))
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
	if !touch {
		return r, nil
	}
	now := time.Now()
	// Touching the mtime is the cheap LRU stamp; a failure only makes the
	// record look older to Prune.
	_ = os.Chtimes(p, now, now)
	return r, nil
}

// PutRecord stores r under r.Key, replacing any record with that key, and
// files it in the record index (see Related). The write is atomic, so
// concurrent PutRecords of the same key (from any process) leave one of
// them whole.
func (s *Store) PutRecord(r *cache.Record) error {
	name, err := recordFile(string(r.Key))
	if err != nil {
		return err
	}
	rec := *r
	rec.Key = withPrefix(r.Key)
	b, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("encoding record %s: %w", r.Key, err)
	}
	// Not synced: a record lost or emptied by a power loss reads as corrupt,
	// a miss, and the step is built again (its blob, synced, comes first).
	if err := atomicfile.WriteUnsynced(filepath.Join(s.root, recordsDir, name), b, 0o644); err != nil {
		return fmt.Errorf("writing record %s: %w", r.Key, err)
	}
	s.index(&rec)
	return nil
}

// decodeRecord reads a record file. Files written before keys carried
// their "sha256:" prefix read the same.
func decodeRecord(b []byte) (*cache.Record, error) {
	var r cache.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	for _, l := range r.Layers {
		if !validHash(l.Digest) || !validHash(l.DiffID) {
			return nil, fmt.Errorf("bad layer digest %q", l.Digest)
		}
	}
	r.Key = withPrefix(r.Key)
	if r.Canonical != "" {
		if _, err := recordFile(string(r.Canonical)); err != nil {
			return nil, fmt.Errorf("bad canonical key: %w", err)
		}
		r.Canonical = withPrefix(r.Canonical)
	}
	return &r, nil
}

func withPrefix(k cache.Key) cache.Key {
	if k == "" || strings.HasPrefix(string(k), "sha256:") {
		return k
	}
	return "sha256:" + k
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
