package ghacache

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/kiln-build/kiln/internal/atomicfile"
)

// maxBlock is Azure's limit on one block (x-ms-version 2019-12-12 and later).
const maxBlock = 4000 << 20

// maxBlocks is Azure's limit on the blocks of one blob.
const maxBlocks = 50000

// beginChunk claims [sp.start, sp.end] of reservation id for a v1 chunk
// write. It refuses a range that is out of bounds or overlaps one written or
// being written.
func (s *store) beginChunk(id int64, sp span) (*pending, error) {
	if sp.start < 0 || sp.end < sp.start {
		return nil, errBadRange
	}
	if sp.end >= s.max || sp.end-sp.start >= maxBlock {
		return nil, fmt.Errorf("chunk %d-%d: over the limit of %d bytes per entry and %d per chunk: %w", sp.start, sp.end, s.max, maxBlock, errTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.uploads[id]
	if p == nil || p.committing {
		return nil, errNotFound
	}
	if p.Reserved > 0 && sp.end >= p.Reserved {
		return nil, fmt.Errorf("chunk ends at byte %d, past the reserved size %d: %w", sp.end, p.Reserved, errBadRange)
	}
	for _, o := range append(p.done[:len(p.done):len(p.done)], p.inflight...) {
		if sp.start <= o.end && o.start <= sp.end {
			return nil, fmt.Errorf("chunk %d-%d overlaps %d-%d: %w", sp.start, sp.end, o.start, o.end, errBadRange)
		}
	}
	p.inflight = append(p.inflight, sp)
	p.active = s.now()
	return p, nil
}

// endChunk releases a claimed range; ok adds it to the written ones.
func (s *store) endChunk(p *pending, sp span, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range p.inflight {
		if o == sp {
			p.inflight = append(p.inflight[:i], p.inflight[i+1:]...)
			break
		}
	}
	if ok {
		p.done = append(p.done, sp)
		sort.Slice(p.done, func(i, j int) bool { return p.done[i].start < p.done[j].start })
	}
	p.active = s.now()
}

// writeChunk writes a v1 chunk: exactly sp's length from body at sp.start.
// The chunk counts only once it is synced (its marker file says so after a
// restart).
func (s *store) writeChunk(id int64, sp span, body io.Reader) (err error) {
	p, err := s.beginChunk(id, sp)
	if err != nil {
		return err
	}
	defer func() { s.endChunk(p, sp, err == nil) }()
	f, err := os.OpenFile(s.uploadPath(id, "chunks"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("writing chunk: %w", err)
	}
	defer f.Close()
	want := sp.end - sp.start + 1
	n, err := io.Copy(io.NewOffsetWriter(f, sp.start), io.LimitReader(body, want+1))
	if err != nil {
		return fmt.Errorf("writing chunk: %w", err)
	}
	if n != want {
		return fmt.Errorf("chunk %d-%d carried %d bytes: %w", sp.start, sp.end, n, errBadRange)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing chunk: %w", err)
	}
	marker := s.uploadPath(id, fmt.Sprintf("r-%016x-%016x", sp.start, sp.end))
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return fmt.Errorf("writing chunk: %w", err)
	}
	return nil
}

// beginBlob claims reservation name for a v2 blob write.
func (s *store) beginBlob(name string) (*pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.upName[name]
	if p == nil || p.committing {
		if s.byName[name] != nil {
			return nil, errExists
		}
		return nil, errNotFound
	}
	p.writers++
	p.active = s.now()
	return p, nil
}

func (s *store) endBlob(p *pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.writers--
	p.active = s.now()
}

// copyLimited writes body to a new file at path through a synced temporary
// file, refusing more than limit bytes. It returns the bytes written.
func copyLimited(path string, body io.Reader, limit int64) (int64, error) {
	var n int64
	err := atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, io.LimitReader(body, limit+1))
		if err != nil {
			return fmt.Errorf("receiving blob: %w", err)
		}
		if n > limit {
			return fmt.Errorf("blob over %d bytes: %w", limit, errTooLarge)
		}
		return nil
	})
	return n, err
}

// stageBlock writes a block to path through a temporary file and a
// rename, refusing more than limit bytes. Unlike a blob it is not synced:
// it survives a kill of the server (the page cache keeps it), the blob a
// block list makes of it is synced, and a block lost to a power cut leaves
// a blob of the wrong size, which finalize refuses. Syncing every one of
// go-actions-cache's 1 MiB blocks cost a fifth of its upload speed.
func stageBlock(path string, body io.Reader, limit int64) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".block.tmp*")
	if err != nil {
		return 0, fmt.Errorf("staging block: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	n, err := io.Copy(f, io.LimitReader(body, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("staging block: %w", err)
	case n > limit:
		return 0, fmt.Errorf("block over %d bytes: %w", limit, errTooLarge)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return 0, fmt.Errorf("staging block: %w", err)
	}
	return n, nil
}

// putBlob replaces the blob of reservation name with body (Azure Put Blob).
func (s *store) putBlob(name string, body io.Reader) error {
	p, err := s.beginBlob(name)
	if err != nil {
		return err
	}
	defer s.endBlob(p)
	p.blobMu.Lock()
	defer p.blobMu.Unlock()
	_, err = copyLimited(s.uploadPath(p.ID, "blob"), body, s.max)
	return err
}

// putBlock stages one block of reservation name (Azure Put Block). Every
// block id of a blob must have the same length, at most 64 bytes.
func (s *store) putBlock(name string, id []byte, body io.Reader) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("block id of %d bytes: %w", len(id), errBadBlock)
	}
	p, err := s.beginBlob(name)
	if err != nil {
		return err
	}
	defer s.endBlob(p)
	s.mu.Lock()
	if p.blockLen != 0 && p.blockLen != len(id) {
		s.mu.Unlock()
		return fmt.Errorf("block id of %d bytes, earlier ones have %d: %w", len(id), p.blockLen, errBadBlock)
	}
	p.blockLen = len(id)
	room := s.max - p.staged
	s.mu.Unlock()
	n, err := stageBlock(s.uploadPath(p.ID, "block-"+hex.EncodeToString(id)), body, min(room, maxBlock))
	if err != nil {
		return err
	}
	s.mu.Lock()
	p.staged += n
	s.mu.Unlock()
	return nil
}

// putBlockList makes the blob of reservation name from staged blocks, in the
// order of ids (Azure Put Block List), and discards the staged blocks.
func (s *store) putBlockList(name string, ids [][]byte) error {
	if len(ids) > maxBlocks {
		return fmt.Errorf("%d blocks: %w", len(ids), errBadBlock)
	}
	p, err := s.beginBlob(name)
	if err != nil {
		return err
	}
	defer s.endBlob(p)
	p.blobMu.Lock()
	defer p.blobMu.Unlock()
	dir := s.uploadPath(p.ID)
	err = atomicfile.WriteFunc(filepath.Join(dir, "blob"), 0o600, func(w io.Writer) error {
		var total int64
		for _, id := range ids {
			f, err := os.Open(filepath.Join(dir, "block-"+hex.EncodeToString(id)))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("block %x is not staged: %w", id, errBadBlock)
			} else if err != nil {
				return fmt.Errorf("reading block: %w", err)
			}
			n, err := io.Copy(w, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("assembling blob: %w", err)
			}
			if total += n; total > s.max {
				return fmt.Errorf("blob over %d bytes: %w", s.max, errTooLarge)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.dropBlocks(p)
	return nil
}

func (s *store) dropBlocks(p *pending) {
	names, _ := readDirNames(s.uploadPath(p.ID))
	for _, n := range names {
		if len(n) > 6 && n[:6] == "block-" {
			os.Remove(s.uploadPath(p.ID, n))
		}
	}
	s.mu.Lock()
	p.staged, p.blockLen = 0, 0
	s.mu.Unlock()
}

// commitID commits v1 reservation id at size bytes.
func (s *store) commitID(id int64, size int64) (*entry, error) {
	s.mu.Lock()
	p := s.uploads[id]
	s.mu.Unlock()
	if p == nil {
		return nil, errNotFound
	}
	return s.commit(p, size)
}

// commitIdent commits the v2 reservation of key and version at size bytes.
func (s *store) commitIdent(key, version string, size int64) (*entry, error) {
	s.mu.Lock()
	p := s.upIdent[identOf(key, version)]
	e := s.byIdent[identOf(key, version)]
	s.mu.Unlock()
	if p == nil {
		if e != nil {
			return nil, errExists
		}
		return nil, errNotFound
	}
	return s.commit(p, size)
}

// commit makes reservation p an entry of size bytes, if exactly that many
// were uploaded: as a Put Blob or Block List blob, else as v1 chunks that
// cover [0, size) with no gap. On any refusal the reservation stays as it
// was and nothing becomes visible.
func (s *store) commit(p *pending, size int64) (*entry, error) {
	if size < 0 || size > s.max {
		return nil, fmt.Errorf("committing %d bytes, limit %d: %w", size, s.max, errTooLarge)
	}
	src, err := s.claimCommit(p, size)
	if err != nil {
		return nil, err
	}
	e, err := s.install(p, src, size)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		p.committing = false
		return nil, err
	}
	s.dropUploadLocked(p)
	s.addEntryLocked(e)
	s.touchLocked(e) // the mtime a restart reads back as the last use
	s.evictLocked()
	c := *e
	return &c, nil
}

// claimCommit checks that p holds exactly size bytes and marks it as
// committing, which stops further writes. It returns the file to install.
func (s *store) claimCommit(p *pending, size int64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploads[p.ID] != p || p.committing {
		return "", errNotFound
	}
	if p.writers > 0 || len(p.inflight) > 0 {
		return "", errBusy
	}
	if p.Reserved > 0 && size != p.Reserved {
		return "", fmt.Errorf("committing %d bytes of a %d-byte reservation: %w", size, p.Reserved, errSize)
	}
	blob := s.uploadPath(p.ID, "blob")
	if fi, err := os.Stat(blob); err == nil {
		if fi.Size() != size {
			return "", fmt.Errorf("committing %d bytes, %d uploaded: %w", size, fi.Size(), errSize)
		}
		p.committing = true
		return blob, nil
	}
	var next int64
	for _, sp := range p.done {
		if sp.start != next {
			return "", fmt.Errorf("committing %d bytes, a gap at byte %d: %w", size, next, errSize)
		}
		next = sp.end + 1
	}
	if next != size {
		return "", fmt.Errorf("committing %d bytes, %d uploaded: %w", size, next, errSize)
	}
	p.committing = true
	return s.uploadPath(p.ID, "chunks"), nil
}

// install moves src to blobs/<id> and writes the entry's metadata: the
// rename of the metadata file is the moment the entry becomes visible.
func (s *store) install(p *pending, src string, size int64) (*entry, error) {
	idStr := strconv.FormatInt(p.ID, 10)
	dst := s.path(blobsDir, idStr)
	if filepath.Base(src) == "chunks" {
		// A chunk that failed halfway may have written past the end.
		if err := truncateSync(src, size); err != nil {
			return nil, fmt.Errorf("committing cache entry %d: %w", p.ID, err)
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return nil, fmt.Errorf("committing cache entry %d: %w", p.ID, err)
	}
	if err := syncDir(s.path(blobsDir)); err != nil {
		return nil, err
	}
	e := &entry{ID: p.ID, Key: p.Key, Version: p.Version, Size: size, Created: s.now(), Name: p.Name}
	b, _ := json.Marshal(e)
	if err := atomicfile.Write(s.path(entriesDir, idStr+".json"), b, 0o600); err != nil {
		os.Rename(dst, src)
		return nil, err
	}
	if err := syncDir(s.path(entriesDir)); err != nil {
		return nil, err
	}
	return e, nil
}

// truncateSync makes path exactly size bytes (creating it if need be) and
// syncs it.
func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}
