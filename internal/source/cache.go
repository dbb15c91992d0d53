package source

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
)

// statKey is what must be unchanged for a cached checksum to be reused.
type statKey struct {
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Ctime int64  `json:"c"`
	Ino   uint64 `json:"i"`
	Dev   uint64 `json:"d"`
}

type sumEntry struct {
	statKey
	Sum string `json:"h"`
	// Xattrs are kept as bytes (base64 in JSON): a value such as a file
	// capability is binary, and a JSON string would turn its invalid UTF-8
	// into U+FFFD.
	Xattrs []xattrPair `json:"x,omitempty"`
}

// xattrPair is one extended attribute in the checksum cache.
type xattrPair struct {
	Name  []byte `json:"n"`
	Value []byte `json:"v"`
}

// sumFile is the on-disk form of the checksum cache.
type sumFile struct {
	Version int                 `json:"version"`
	Root    string              `json:"root"`
	Entries map[string]sumEntry `json:"entries"`
}

const sumFileVersion = 3

// sumCache maps a path relative to the tree root to its content checksum.
// Entries are never dropped, so entries of deleted files linger; they are
// harmless (a lookup checks the stat first) and cost only file size.
type sumCache struct {
	path, root string

	mu      sync.Mutex
	entries map[string]sumEntry
	dirty   map[string]bool
}

func loadSumCache(path, root string) *sumCache {
	return &sumCache{path: path, root: root, entries: readSumFile(path, root), dirty: map[string]bool{}}
}

// readSumFile returns the entries saved for root, or an empty map when the
// file is missing, corrupt, of another version or for another root.
func readSumFile(path, root string) map[string]sumEntry {
	var f sumFile
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &f) != nil || f.Version != sumFileVersion || f.Root != root || f.Entries == nil {
		return map[string]sumEntry{}
	}
	return f.Entries
}

func (c *sumCache) get(rel string, st statKey) (content, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[rel]
	if !ok || e.statKey != st {
		return content{}, false
	}
	var x map[string]string
	for _, p := range e.Xattrs {
		if x == nil {
			x = map[string]string{}
		}
		x[string(p.Name)] = string(p.Value)
	}
	return content{sum: e.Sum, xattrs: x}, true
}

func (c *sumCache) put(rel string, st statKey, v content) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := sumEntry{statKey: st, Sum: v.sum}
	for n, val := range v.xattrs {
		e.Xattrs = append(e.Xattrs, xattrPair{Name: []byte(n), Value: []byte(val)})
	}
	c.entries[rel] = e
	c.dirty[rel] = true
}

// save merges this cache's new entries into what is on disk now (another
// build may have saved meanwhile) and writes the result atomically.
func (c *sumCache) save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dirty) == 0 {
		return nil
	}
	merged := readSumFile(c.path, c.root)
	for rel := range c.dirty {
		merged[rel] = c.entries[rel]
	}
	b, err := json.Marshal(sumFile{Version: sumFileVersion, Root: c.root, Entries: merged})
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	c.dirty = map[string]bool{}
	return nil
}
