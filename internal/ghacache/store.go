package ghacache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/atomicfile"
)

// Errors of the store; the API handlers map them to their wire shapes.
var (
	errExists    = errors.New("ghacache: cache entry with the same key, version, and scope already exists")
	errNotFound  = errors.New("ghacache: not found")
	errTooLarge  = errors.New("ghacache: over the size limit")
	errBadRange  = errors.New("ghacache: chunk out of range or overlapping")
	errSize      = errors.New("ghacache: size does not match the bytes uploaded")
	errBusy      = errors.New("ghacache: upload still in progress")
	errBadBlock  = errors.New("ghacache: invalid block")
	errDirLocked = errors.New("ghacache: directory is in use by another server")
)

// pendingTTL is how long a reservation with no upload activity holds its key
// and version; after it the reservation is abandoned and removed.
const pendingTTL = time.Hour

// Layout of Options.Dir.
const (
	entriesDir = "entries" // <id>.json: a committed entry; its mtime is its last use
	blobsDir   = "blobs"   // <id>: the bytes of a committed entry
	uploadsDir = "uploads" // <id>/: a reservation (meta.json, chunks, blocks, blob)
	tmpDir     = "tmp"     // scratch, emptied on start
	secretFile = "secret"  // the HMAC key of signed blob URLs
	lockFile   = "lock"    // flock: one server per directory
)

// ident is the identity of an entry: GitHub's key + version. Keys match
// without regard to case, as on github.com (a key keeps the case it was
// saved with).
type ident struct{ key, version string }

func identOf(key, version string) ident { return ident{strings.ToLower(key), version} }

// entry is a committed, visible cache entry.
type entry struct {
	ID      int64     `json:"id"`
	Key     string    `json:"key"`
	Version string    `json:"version"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	Name    string    `json:"name"`

	used time.Time // last lookup or download (the metadata file's mtime on disk)
}

// uploadMeta is what a reservation writes to uploads/<id>/meta.json.
type uploadMeta struct {
	ID       int64     `json:"id"`
	Key      string    `json:"key"`
	Version  string    `json:"version"`
	Name     string    `json:"name"`
	Reserved int64     `json:"reserved,omitempty"` // v1 cacheSize, 0 when not given
	Created  time.Time `json:"created"`
}

// span is an inclusive byte range [start, end] of a v1 chunk.
type span struct{ start, end int64 }

// pending is a reservation being uploaded. Its fields are guarded by
// store.mu; blobMu serialises Put Blob and Put Block List on it.
type pending struct {
	uploadMeta
	done       []span // v1 chunks written and synced
	inflight   []span // v1 chunks being written
	writers    int    // v2 blob writes in progress
	blockLen   int    // decoded length of this blob's block ids, 0 before the first
	staged     int64  // bytes in staged blocks
	active     time.Time
	committing bool
	blobMu     sync.Mutex
}

// store is the directory behind a Handler.
type store struct {
	dir string
	max int64
	now func() time.Time
	lf  *os.File

	mu      sync.Mutex
	next    int64
	total   int64
	entries map[int64]*entry
	byIdent map[ident]*entry
	byName  map[string]*entry
	uploads map[int64]*pending
	upIdent map[ident]*pending
	upName  map[string]*pending
}

func openStore(dir string, max int64, now func() time.Time) (*store, error) {
	for _, d := range []string{"", entriesDir, blobsDir, uploadsDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("creating cache dir: %w", err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening cache dir lock: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, errDirLocked)
	}
	s := &store{
		dir: dir, max: max, now: now, lf: lf, next: 1,
		entries: map[int64]*entry{}, byIdent: map[ident]*entry{}, byName: map[string]*entry{},
		uploads: map[int64]*pending{}, upIdent: map[ident]*pending{}, upName: map[string]*pending{},
	}
	if err := s.load(); err != nil {
		lf.Close()
		return nil, err
	}
	s.mu.Lock()
	s.evictLocked()
	s.mu.Unlock()
	return s, nil
}

func (s *store) close() error { return s.lf.Close() }

func (s *store) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

// load rebuilds the index from the directory: committed entries whose blob
// is whole, reservations with their synced chunks; everything else (orphan
// blobs, scratch files) is removed.
func (s *store) load() error {
	if err := emptyDir(s.path(tmpDir)); err != nil {
		return err
	}
	if err := s.loadEntries(); err != nil {
		return err
	}
	names, err := readDirNames(s.path(blobsDir))
	if err != nil {
		return err
	}
	for _, n := range names {
		id, err := strconv.ParseInt(n, 10, 64)
		if err != nil || s.entries[id] == nil {
			os.Remove(s.path(blobsDir, n))
		}
	}
	return s.loadUploads()
}

func (s *store) loadEntries() error {
	names, err := readDirNames(s.path(entriesDir))
	if err != nil {
		return err
	}
	for _, n := range names {
		p := s.path(entriesDir, n)
		e, fi, err := readEntry(p)
		if err != nil || !strings.HasSuffix(n, ".json") || n != strconv.FormatInt(e.ID, 10)+".json" {
			os.Remove(p) // a scratch file of an interrupted write, or garbage
			continue
		}
		if bi, err := os.Stat(s.path(blobsDir, strconv.FormatInt(e.ID, 10))); err != nil || bi.Size() != e.Size {
			os.Remove(p)
			continue
		}
		e.used = fi.ModTime()
		s.addEntryLocked(e)
	}
	return nil
}

func readEntry(p string) (*entry, os.FileInfo, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, nil, err
	}
	e := &entry{}
	if err := json.Unmarshal(b, e); err != nil || e.ID <= 0 || e.Name == "" {
		return nil, nil, fmt.Errorf("reading %s: bad entry", p)
	}
	return e, fi, nil
}

func (s *store) loadUploads() error {
	names, err := readDirNames(s.path(uploadsDir))
	if err != nil {
		return err
	}
	for _, n := range names {
		dir := s.path(uploadsDir, n)
		b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
		var m uploadMeta
		if err != nil || json.Unmarshal(b, &m) != nil || strconv.FormatInt(m.ID, 10) != n || s.entries[m.ID] != nil {
			os.RemoveAll(dir) // a reservation interrupted before it was made, or garbage
			continue
		}
		p := &pending{uploadMeta: m, active: s.now()}
		p.done = loadSpans(dir)
		p.blockLen, p.staged = loadBlocks(dir)
		if m.ID >= s.next {
			s.next = m.ID + 1
		}
		s.uploads[m.ID], s.upIdent[identOf(m.Key, m.Version)], s.upName[m.Name] = p, p, p
	}
	return nil
}

// loadSpans reads the markers of synced v1 chunks, keeping only those the
// chunk file really holds.
func loadSpans(dir string) []span {
	names, _ := readDirNames(dir)
	var size int64
	if fi, err := os.Stat(filepath.Join(dir, "chunks")); err == nil {
		size = fi.Size()
	}
	var out []span
	for _, n := range names {
		var sp span
		if _, err := fmt.Sscanf(n, "r-%016x-%016x", &sp.start, &sp.end); err != nil || sp.end >= size {
			continue
		}
		out = append(out, sp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// loadBlocks reads the id length and total size of a reservation's
// staged blocks.
func loadBlocks(dir string) (int, int64) {
	des, _ := os.ReadDir(dir)
	var idLen int
	var staged int64
	for _, d := range des {
		hexID, ok := strings.CutPrefix(d.Name(), "block-")
		if !ok {
			continue
		}
		if fi, err := d.Info(); err == nil {
			idLen, staged = len(hexID)/2, staged+fi.Size()
		}
	}
	return idLen, staged
}

func (s *store) addEntryLocked(e *entry) {
	s.entries[e.ID], s.byIdent[identOf(e.Key, e.Version)], s.byName[e.Name] = e, e, e
	s.total += e.Size
	if e.ID >= s.next {
		s.next = e.ID + 1
	}
}

func (s *store) removeEntryLocked(e *entry) {
	id := strconv.FormatInt(e.ID, 10)
	// The metadata goes first: from then on the entry is invisible, even if
	// the blob's removal is interrupted (load removes the orphan).
	os.Remove(s.path(entriesDir, id+".json"))
	os.Remove(s.path(blobsDir, id))
	delete(s.entries, e.ID)
	delete(s.byIdent, identOf(e.Key, e.Version))
	delete(s.byName, e.Name)
	s.total -= e.Size
}

// evictLocked removes least recently used entries until the total fits.
func (s *store) evictLocked() {
	for s.total > s.max && len(s.entries) > 0 {
		var lru *entry
		for _, e := range s.entries {
			if lru == nil || e.used.Before(lru.used) || (e.used.Equal(lru.used) && e.ID < lru.ID) {
				lru = e
			}
		}
		s.removeEntryLocked(lru)
	}
}

// touchLocked records a use of e, in memory and as the mtime of its
// metadata file (which load reads back).
func (s *store) touchLocked(e *entry) {
	e.used = s.now()
	os.Chtimes(s.path(entriesDir, strconv.FormatInt(e.ID, 10)+".json"), e.used, e.used)
}

// reserve makes a reservation for key and version. reserved is the size the
// client announced (0: unknown).
func (s *store) reserve(key, version string, reserved int64) (*pending, error) {
	if reserved > s.max {
		return nil, fmt.Errorf("reserving %d bytes, over the limit of %d: %w", reserved, s.max, errTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	id := identOf(key, version)
	if s.byIdent[id] != nil || s.upIdent[id] != nil {
		return nil, errExists
	}
	name, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	m := uploadMeta{ID: s.next, Key: key, Version: version, Name: name, Reserved: reserved, Created: s.now()}
	if err := s.writeUploadDir(m); err != nil {
		return nil, err
	}
	s.next++
	p := &pending{uploadMeta: m, active: m.Created}
	s.uploads[m.ID], s.upIdent[id], s.upName[name] = p, p, p
	return p, nil
}

// writeUploadDir makes uploads/<id>/ with its meta.json in one rename, so a
// reservation either exists whole or not at all.
func (s *store) writeUploadDir(m uploadMeta) error {
	tmp, err := os.MkdirTemp(s.path(tmpDir), "upload-")
	if err != nil {
		return fmt.Errorf("reserving cache entry: %w", err)
	}
	b, _ := json.Marshal(m)
	if err := atomicfile.Write(filepath.Join(tmp, "meta.json"), b, 0o600); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("reserving cache entry: %w", err)
	}
	if err := os.Rename(tmp, s.uploadPath(m.ID)); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("reserving cache entry: %w", err)
	}
	return syncDir(s.path(uploadsDir))
}

func (s *store) uploadPath(id int64, parts ...string) string {
	return filepath.Join(append([]string{s.dir, uploadsDir, strconv.FormatInt(id, 10)}, parts...)...)
}

// expireLocked drops reservations idle for longer than pendingTTL.
func (s *store) expireLocked() {
	now := s.now()
	for _, p := range s.uploads {
		if !p.committing && p.writers == 0 && len(p.inflight) == 0 && now.Sub(p.active) > pendingTTL {
			s.dropUploadLocked(p)
		}
	}
}

func (s *store) dropUploadLocked(p *pending) {
	os.RemoveAll(s.uploadPath(p.ID))
	delete(s.uploads, p.ID)
	delete(s.upIdent, identOf(p.Key, p.Version))
	delete(s.upName, p.Name)
}

// lookup finds the entry GitHub would restore for keys (the primary key
// first, then restore keys) and version: the primary key exactly, then the
// newest entry the primary key is a prefix of, then for each restore key the
// newest entry it is a prefix of, all without regard to case. A hit counts
// as a use.
func (s *store) lookup(keys []string, version string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	e := s.byIdent[identOf(keys[0], version)]
	for _, k := range keys {
		if e != nil {
			break
		}
		e = s.newestWithPrefixLocked(k, version)
	}
	if e != nil {
		s.touchLocked(e)
	}
	return e
}

func (s *store) newestWithPrefixLocked(prefix, version string) *entry {
	var best *entry
	prefix = strings.ToLower(prefix)
	for _, e := range s.entries {
		if e.Version != version || !strings.HasPrefix(strings.ToLower(e.Key), prefix) {
			continue
		}
		if best == nil || e.Created.After(best.Created) || (e.Created.Equal(best.Created) && e.ID > best.ID) {
			best = e
		}
	}
	return best
}

// list returns the entries with exactly key, any version, newest first.
func (s *store) list(key string) []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []entry
	for _, e := range s.entries {
		if e.Key == key {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out
}

// open opens the bytes of the committed entry called name. A download
// counts as a use. The caller closes the file; an eviction meanwhile does
// not disturb a download in progress.
func (s *store) open(name string) (*os.File, *entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byName[name]
	if e == nil {
		return nil, nil, errNotFound
	}
	f, err := os.Open(s.path(blobsDir, strconv.FormatInt(e.ID, 10)))
	if err != nil {
		return nil, nil, fmt.Errorf("opening cache entry %d: %w", e.ID, err)
	}
	s.touchLocked(e)
	c := *e
	return f, &c, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := cryptoRead(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return fmt.Sprintf("%x", b), nil
}

func readDirNames(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	out := make([]string, 0, len(des))
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out, nil
}

func emptyDir(dir string) error {
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("cleaning %s: %w", dir, err)
		}
	}
	return nil
}

// syncDir makes the renames into dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
