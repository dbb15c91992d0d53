package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/cache"
)

// The record index lets a build find, for a step that missed, the records
// of the same step made earlier (cache.Record's Parent and Step), without
// reading every record: one small file per parent key and one per step
// identity under ix/, each naming the keys of the last indexKeep records
// filed under it, oldest first.
//
// The index is a hint. A write that loses a race with another build's (two
// read-modify-writes of one file) drops a key; a key whose record is gone
// is skipped by Related and dropped by Prune; an index that cannot be
// written costs an explanation, never a build.
const indexKeep = 16

// indexFiles are the index files r is filed under; aliases (Canonical set)
// are filed under their canonical record's files already.
func indexFiles(r *cache.Record) []string {
	if r.Canonical != "" {
		return nil
	}
	var out []string
	if r.Parent != "" {
		out = append(out, indexName("parent", string(withPrefix(r.Parent))))
	}
	if r.Step != "" {
		out = append(out, indexName("step", r.Step))
	}
	return out
}

// indexName is the file name of one index entry: the hex sha256 of what it
// indexes, so that no value ever names a path.
func indexName(kind, value string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + value))
	return hex.EncodeToString(sum[:])
}

// index files r's key under its index files.
func (s *Store) index(r *cache.Record) {
	key := string(withPrefix(r.Key))
	for _, name := range indexFiles(r) {
		p := filepath.Join(s.root, indexDir, name)
		keys := readIndex(p)
		keys = append(deleteKey(keys, key), key)
		if n := len(keys) - indexKeep; n > 0 {
			keys = keys[n:]
		}
		_ = writeHint(p, []byte(strings.Join(keys, "\n")+"\n"))
	}
}

func readIndex(p string) []string {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var keys []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) > 0 {
			keys = append(keys, string(l))
		}
	}
	return keys
}

func deleteKey(keys []string, key string) []string {
	out := keys[:0]
	for _, k := range keys {
		if k != key {
			out = append(out, k)
		}
	}
	return out
}

// Related returns the records filed under the parent key or the step
// identity (either may be empty), most recently filed first, each once.
// Reading them does not mark them used: Prune's order stays what builds
// used. Records that are gone or corrupt are skipped.
func (s *Store) Related(parent cache.Key, step string) []*cache.Record {
	var names []string
	if parent != "" {
		names = append(names, indexName("parent", string(withPrefix(parent))))
	}
	if step != "" {
		names = append(names, indexName("step", step))
	}
	seen := map[string]bool{}
	var out []*cache.Record
	for _, name := range names {
		keys := readIndex(filepath.Join(s.root, indexDir, name))
		for i := len(keys) - 1; i >= 0; i-- {
			if seen[keys[i]] {
				continue
			}
			seen[keys[i]] = true
			if r, err := s.readRecord(cache.Key(keys[i]), false); err == nil {
				out = append(out, r)
			}
		}
	}
	return out
}

// tidyIndex drops from every index file the keys whose records are not in
// kept (hex names), and removes files left empty.
func (p *pruner) tidyIndex(kept map[string]bool) error {
	d := filepath.Join(p.root, indexDir)
	ents, err := os.ReadDir(d)
	if err != nil {
		return nil // no index yet
	}
	for _, e := range ents {
		path := filepath.Join(d, e.Name())
		keys := readIndex(path)
		var keep []string
		for _, k := range keys {
			if kept[strings.TrimPrefix(k, "sha256:")] {
				keep = append(keep, k)
			}
		}
		switch {
		case len(keep) == 0:
			fi, _ := os.Lstat(path)
			var size int64
			if fi != nil {
				size = fi.Size()
			}
			if err := p.remove(path, size); err != nil {
				return err
			}
		case len(keep) < len(keys):
			if err := writeHint(path, []byte(strings.Join(keep, "\n")+"\n")); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeHint writes b to p by atomic rename, without the fsync a record
// gets: a crash may lose an index entry, which only costs an explanation.
func writeHint(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
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
