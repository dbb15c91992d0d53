package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/cache"
)

// SnapshotSet is the snapshotter's side of Prune: the unpacked layers it
// keeps under SnapshotRoot, by chain ID.
type SnapshotSet interface {
	// Usage lists every snapshot.
	Usage(ctx context.Context) ([]SnapshotInfo, error)
	// Remove deletes the snapshot with the given chain ID.
	Remove(ctx context.Context, chainID v1.Hash) error
}

// Sweeper is an optional SnapshotSet capability: remove what killed builds
// left behind (mounts, working dirs). Prune calls it while it holds the
// state dir exclusively, the only time that is safe.
type Sweeper interface {
	Sweep(ctx context.Context) error
}

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	// ChainID names the snapshot.
	ChainID v1.Hash
	// Size is its size on disk in bytes.
	Size int64
	// LastUsed is when a step last used it.
	LastUsed time.Time
}

// PruneOptions says what Prune removes. The zero value removes only what no
// record needs: leftover temporary files, and blobs and snapshots that no
// record references.
type PruneOptions struct {
	// All removes every record, blob, snapshot, context checksum cache and
	// lock file.
	All bool
	// KeepBytes, when positive, removes least recently used records until
	// the blobs and snapshots the remaining records reference fit in it.
	// 0 means no size target.
	KeepBytes int64
	// Snapshots is the snapshotter's view of SnapshotRoot; nil leaves
	// snapshots alone (they are then neither removed nor counted).
	Snapshots SnapshotSet
	// Hooks stop what killed builds left running (their containers), before
	// their scratch space and snapshots are removed; see SweepDead.
	Hooks SweepHooks
}

// PruneReport says what Prune did.
type PruneReport struct {
	// Records, Blobs and Snapshots count what was removed.
	Records, Blobs, Snapshots int
	// Freed is how many bytes fewer the state dir's files hold than
	// before: measured, not summed from the sizes of what was removed, so
	// a file with several links counts once and a mount a killed build
	// left counts as nothing (it held no bytes of the state dir).
	Freed int64
	// Kept is the number of bytes of blobs, snapshots and records left.
	Kept int64
}

// Prune shrinks the state directory at root as opts says. It does not need
// an open Store: it takes the exclusive lock on root/lock itself, and fails
// at once with ErrInUse if any Store is open on root (a build is running)
// instead of waiting, so `kiln prune` never hangs behind a long build. While
// it runs, Open waits. A missing root is an empty store.
//
// Whatever else it does, Prune removes leftover temporary directories and
// interrupted writes. A record is referenced by its layers' blobs and by the
// snapshots of every prefix of its chain (by chain ID).
func Prune(ctx context.Context, root string, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return rep, nil
	}
	f, err := openLockFile(filepath.Join(root, lockFile))
	if err != nil {
		return rep, err
	}
	defer f.Close()
	ok, err := tryFlock(f, unix.LOCK_EX)
	if err != nil {
		return rep, fmt.Errorf("locking state dir %s: %w", root, err)
	}
	if !ok {
		return rep, fmt.Errorf("pruning %s: %w", root, ErrInUse)
	}
	p := pruner{root: root, opts: opts, rep: &rep}
	// A killed build's mounts are not measured (allocated stays on the
	// state dir's file system), so measuring before the sweep is right.
	before, berr := allocated(root)
	if err := p.sweep(ctx); err != nil {
		return rep, fmt.Errorf("pruning %s: %w", root, err)
	}
	if err := p.run(ctx); err != nil {
		return rep, fmt.Errorf("pruning %s: %w", root, err)
	}
	after, aerr := allocated(root)
	if berr == nil && aerr == nil {
		rep.Freed = max(before-after, 0)
	}
	return rep, nil
}

// sweep stops and removes what killed builds left: with the exclusive lock
// held no build is running, so every session is a dead one. A directory in
// tmp/ that is no session (an older kiln's) may be a bundle too.
func (p *pruner) sweep(ctx context.Context) error {
	dir := filepath.Join(p.root, tmpDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		switch {
		case !e.IsDir():
		case strings.HasPrefix(e.Name(), sessionPrefix):
			if err := sweepSession(ctx, path, e.Name(), p.opts.Hooks); err != nil {
				return fmt.Errorf("sweeping session %s: %w", e.Name(), err)
			}
		case p.opts.Hooks.Reap != nil:
			if err := p.opts.Hooks.Reap(ctx, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// allocated is the bytes of the regular files under root, as Usage counts
// them (each inode once), but not descending into other file systems: a
// mount left under the root is not the root's. Sizes are apparent sizes,
// the unit of Kept and KeepBytes.
func allocated(root string) (int64, error) {
	var rootDev uint64
	if st, err := os.Lstat(root); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			rootDev = uint64(sys.Dev)
		}
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while we walked
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if uint64(st.Dev) != rootDev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		k := inode{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		total += fi.Size()
		return nil
	})
	return total, err
}

// isTemp reports whether name is a file being written: the store's own
// temporary files and atomicfile's (both hidden, "."-prefixed).
func isTemp(name string) bool { return strings.HasPrefix(name, ".") }

// storedRecord is what prune needs of a record file.
type storedRecord struct {
	// name is the file name less ".json": the key's hex digest.
	name     string
	layers   []cache.Layer
	lastUsed time.Time
}

type pruner struct {
	root string
	opts PruneOptions
	rep  *PruneReport

	records []*storedRecord
	recSize map[string]int64 // record key → file size
	blobs   map[string]int64 // hex digest → size
	snaps   map[v1.Hash]int64
}

func (p *pruner) run(ctx context.Context) error {
	if err := p.clearDir(tmpDir); err != nil {
		return err
	}
	if sw, ok := p.opts.Snapshots.(Sweeper); ok {
		if err := sw.Sweep(ctx); err != nil {
			return err
		}
	}
	if err := p.clearOldSums(); err != nil {
		return err
	}
	if p.opts.All {
		for _, d := range []string{contextDir, locksDir, mountsDir} {
			if err := p.clearDir(d); err != nil {
				return err
			}
		}
	}
	if err := p.load(ctx); err != nil {
		return err
	}
	keep := p.records
	if p.opts.All {
		keep = nil
	} else if p.opts.KeepBytes > 0 {
		keep = p.trim()
	}
	kept := make(map[string]bool, len(keep))
	for _, r := range keep {
		kept[r.name] = true
	}
	for _, r := range p.records {
		if kept[r.name] {
			p.rep.Kept += p.recSize[r.name]
			continue
		}
		if err := p.removeRecord(r.name); err != nil {
			return err
		}
	}
	if err := p.tidyIndex(kept); err != nil {
		return err
	}
	return p.collect(ctx, keep)
}

// load reads the records, blob sizes and snapshot list. Corrupt records and
// interrupted writes are removed on the way.
func (p *pruner) load(ctx context.Context) error {
	p.recSize = map[string]int64{}
	ents, err := os.ReadDir(filepath.Join(p.root, recordsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing records: %w", err)
	}
	for _, e := range ents {
		path := filepath.Join(p.root, recordsDir, e.Name())
		fi, err := os.Lstat(path)
		if err != nil {
			continue
		}
		b, rerr := os.ReadFile(path)
		var rec *cache.Record
		if rerr == nil && strings.HasSuffix(e.Name(), ".json") {
			rec, rerr = decodeRecord(b)
		}
		if rerr != nil || rec == nil || rec.Key == "" {
			// An interrupted write, a corrupt record, or a stranger.
			if err := p.remove(path, fi.Size()); err != nil {
				return err
			}
			if !isTemp(e.Name()) {
				p.rep.Records++
			}
			continue
		}
		// The file name is authoritative.
		r := &storedRecord{name: strings.TrimSuffix(e.Name(), ".json"), layers: rec.Layers, lastUsed: fi.ModTime()}
		p.records = append(p.records, r)
		p.recSize[r.name] = fi.Size()
	}

	p.blobs = map[string]int64{}
	ents, err = os.ReadDir(filepath.Join(p.root, blobsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing blobs: %w", err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := p.remove(filepath.Join(p.root, blobsDir, e.Name()), fi.Size()); err != nil {
				return err
			}
			continue
		}
		p.blobs[e.Name()] = fi.Size()
	}

	p.snaps = map[v1.Hash]int64{}
	if p.opts.Snapshots != nil {
		infos, err := p.opts.Snapshots.Usage(ctx)
		if err != nil {
			return fmt.Errorf("listing snapshots: %w", err)
		}
		for _, s := range infos {
			p.snaps[s.ChainID] = s.Size
		}
	}
	return nil
}

// refs is what one record keeps alive.
func refs(r *storedRecord) (blobs []string, snaps []v1.Hash) {
	var chain v1.Hash
	for i, l := range r.layers {
		blobs = append(blobs, l.Digest.Hex)
		chain = ChainID(chain, l.DiffID, i == 0)
		snaps = append(snaps, chain)
	}
	return blobs, snaps
}

// ChainID extends the chain ID parent with the layer diffID, as the OCI
// image spec defines it; first says diffID is the bottom layer (whose chain
// ID is its diff ID).
func ChainID(parent, diffID v1.Hash, first bool) v1.Hash {
	if first {
		return diffID
	}
	sum := sha256.Sum256([]byte(parent.String() + " " + diffID.String()))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// trim drops least recently used records until what the rest reference
// fits in KeepBytes, and returns the rest.
func (p *pruner) trim() []*storedRecord {
	blobRefs := map[string]int{}
	snapRefs := map[v1.Hash]int{}
	var total int64
	for _, r := range p.records {
		bs, ss := refs(r)
		for _, b := range bs {
			if blobRefs[b]++; blobRefs[b] == 1 {
				total += p.blobs[b]
			}
		}
		for _, s := range ss {
			if snapRefs[s]++; snapRefs[s] == 1 {
				total += p.snaps[s]
			}
		}
	}
	recs := append([]*storedRecord(nil), p.records...)
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].lastUsed.Equal(recs[j].lastUsed) {
			return recs[i].lastUsed.Before(recs[j].lastUsed)
		}
		return recs[i].name < recs[j].name
	})
	for len(recs) > 0 && total > p.opts.KeepBytes {
		bs, ss := refs(recs[0])
		for _, b := range bs {
			if blobRefs[b]--; blobRefs[b] == 0 {
				total -= p.blobs[b]
			}
		}
		for _, s := range ss {
			if snapRefs[s]--; snapRefs[s] == 0 {
				total -= p.snaps[s]
			}
		}
		recs = recs[1:]
	}
	return recs
}

// collect removes every blob and snapshot that no record in keep references.
func (p *pruner) collect(ctx context.Context, keep []*storedRecord) error {
	liveBlobs := map[string]bool{}
	liveSnaps := map[v1.Hash]bool{}
	for _, r := range keep {
		bs, ss := refs(r)
		for _, b := range bs {
			liveBlobs[b] = true
		}
		for _, s := range ss {
			liveSnaps[s] = true
		}
	}
	for _, name := range sortedKeys(p.blobs) {
		if err := ctx.Err(); err != nil {
			return err
		}
		size := p.blobs[name]
		if liveBlobs[name] {
			p.rep.Kept += size
			continue
		}
		if err := p.remove(filepath.Join(p.root, blobsDir, name), size); err != nil {
			return err
		}
		p.rep.Blobs++
	}
	for id, size := range p.snaps {
		if liveSnaps[id] {
			p.rep.Kept += size
			continue
		}
		if err := p.opts.Snapshots.Remove(ctx, id); err != nil {
			return fmt.Errorf("removing snapshot %s: %w", id, err)
		}
		p.rep.Snapshots++
		p.rep.Freed += size
	}
	return nil
}

func (p *pruner) removeRecord(key string) error {
	if err := p.remove(filepath.Join(p.root, recordsDir, key+".json"), p.recSize[key]); err != nil {
		return err
	}
	p.rep.Records++
	return nil
}

func (p *pruner) remove(path string, size int64) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	p.rep.Freed += size
	return nil
}

// clearDir removes everything inside root/dir.
// clearOldSums removes the checksum caches that kiln before the binary
// format (version 4) wrote, as JSON beside the current ones: nothing reads
// them any more.
func (p *pruner) clearOldSums() error {
	old, err := filepath.Glob(filepath.Join(p.root, contextDir, "*.json"))
	if err != nil {
		return err
	}
	for _, path := range old {
		n, _ := Usage(path)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", path, err)
		}
		p.rep.Freed += n
	}
	return nil
}

func (p *pruner) clearDir(dir string) error {
	d := filepath.Join(p.root, dir)
	ents, err := os.ReadDir(d)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", d, err)
	}
	for _, e := range ents {
		path := filepath.Join(d, e.Name())
		n, _ := Usage(path)
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("removing %s: %w", path, err)
		}
		p.rep.Freed += n
	}
	return nil
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PrunableUsage is the part of Usage that Prune can free: blobs, records
// and snapshots (not cache mounts, which only --all removes).
func PrunableUsage(root string) (int64, error) {
	var total int64
	for _, d := range []string{blobsDir, recordsDir, snapshotDir, indexDir} {
		n, err := Usage(filepath.Join(root, d))
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// Usage returns the bytes used by regular files under root (a file with
// several hard links counts once). A missing root uses 0 bytes. It takes no
// lock, so the figure is approximate while a build runs.
func Usage(root string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while we walked
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += fi.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring %s: %w", root, err)
	}
	return total, nil
}
