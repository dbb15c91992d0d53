package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/layer"
)

// ErrNotFound is wrapped by errors about a chain ID that has no snapshot.
var ErrNotFound = errors.New("snapshot: not found")

// The two modes Mode reports.
const (
	ModeOverlay = "overlayfs"
	ModeCopy    = "copy"
)

// Options configure a Snapshotter. The zero value is not usable: Root is
// required.
type Options struct {
	// Root is the directory the snapshotter owns (inside the state dir). It
	// is created if missing. Keep it short: overlay mount data embeds it
	// once per layer.
	Root string
	// ForceCopy uses the copying fallback even where overlayfs works (tests,
	// debugging).
	ForceCopy bool
	// Session names the directory under Root/a that Prepare and View work
	// in (store.Store.Session: one per build), so that SweepSession can
	// remove a killed build's mounts while other builds run. "" works in
	// Root/a itself (prune, tests).
	Session string
}

// Snapshotter keeps unpacked layers under its root. Its methods may be
// called concurrently, and several processes may share one root: every
// snapshot appears by an atomic rename. Removing a snapshot that an Active
// or a view is using is the caller's to prevent (package store's lock).
type Snapshotter struct {
	root string
	// work is where Prepare and View make their directories: Root/a or
	// Root/a/<Session>.
	work string
	mode string
	// mountOpts are extra overlay options the kernel accepted in the probe.
	mountOpts string
	// volatile: writable mounts are "volatile", so unmounting one does not
	// sync the whole file system; the snapshots committed from them are
	// marked unsynced until Sync (see stale).
	volatile bool
	fallback error

	mu sync.Mutex
	// unsynced are the markers of the snapshots this Snapshotter published
	// unsynced, for Sync to remove.
	unsynced []string
}

// unsyncedFile, in a snapshot's directory, holds the boot ID of the boot
// that published it from a volatile mount whose data may not be on disk
// yet. Within that boot the page cache serves it whole (a kill -9 loses
// nothing); after a reboot it may have lost writes, so it is stale: not
// held, and replaced when its layer is unpacked again. Sync removes the
// marker once the data is on disk.
const unsyncedFile = "unsynced"

// bootID is this boot's ID, "" if the kernel does not tell it (then no
// mount is volatile).
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// New creates opts.Root if needed and picks the mode: unless opts.ForceCopy,
// it mounts a tiny overlay there (checking that whiteouts and opaque
// directories work) and uses overlayfs if that succeeds, the copying
// fallback otherwise (Fallback says why).
func New(opts Options) (*Snapshotter, error) {
	if opts.Root == "" {
		return nil, errors.New("creating snapshotter: no root directory given")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("creating snapshotter in %s: %w", opts.Root, err)
	}
	for _, d := range []string{root, filepath.Join(root, modeDir(ModeOverlay)), filepath.Join(root, modeDir(ModeCopy)), filepath.Join(root, "a"), filepath.Join(root, "tmp"), filepath.Join(root, "empty")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating snapshotter in %s: %w", root, err)
		}
	}
	work := filepath.Join(root, "a")
	if opts.Session != "" {
		if strings.ContainsAny(opts.Session, `/\`) || strings.HasPrefix(opts.Session, ".") {
			return nil, fmt.Errorf("creating snapshotter: bad session name %q", opts.Session)
		}
		work = filepath.Join(work, opts.Session)
		if err := os.MkdirAll(work, 0o700); err != nil {
			return nil, fmt.Errorf("creating snapshotter in %s: %w", root, err)
		}
	}
	s := &Snapshotter{root: root, work: work, mode: ModeCopy}
	if !opts.ForceCopy {
		if mountOpts, volatile, err := probeOverlay(root); err != nil {
			s.fallback = err
		} else {
			s.mode, s.mountOpts, s.volatile = ModeOverlay, mountOpts, volatile && bootID() != ""
		}
	}
	return s, nil
}

// modeDir is where the snapshots of a mode live. The two modes store a
// snapshot differently, so each has its own directory: a state dir used in
// both (a host without overlayfs, --copy-snapshots) keeps both, and a
// switch never serves or deletes the other mode's snapshots.
func modeDir(mode string) string {
	if mode == ModeCopy {
		return "sc"
	}
	return "sn"
}

// Mode returns ModeOverlay ("overlayfs") or ModeCopy ("copy").
func (s *Snapshotter) Mode() string { return s.mode }

// Fallback returns why New chose the copying fallback although ForceCopy
// was not set, or nil.
func (s *Snapshotter) Fallback() error { return s.fallback }

func shortID(chainID v1.Hash) string {
	h := chainID.Hex
	if len(h) > 16 {
		h = h[:16]
	}
	return h
}

// dir is the snapshot directory of chainID.
func (s *Snapshotter) dir(chainID v1.Hash) string {
	return filepath.Join(s.root, modeDir(s.mode), shortID(chainID))
}

// Has reports whether chainID has been unpacked or committed.
func (s *Snapshotter) Has(chainID v1.Hash) bool {
	return s.holds(chainID)
}

// holds reports whether the directory of chainID holds that very chain:
// directories are named by a prefix of the chain ID, so the full ID in the
// chain file decides.
func (s *Snapshotter) holds(chainID v1.Hash) bool {
	dir := s.dir(chainID)
	b, err := os.ReadFile(filepath.Join(dir, "chain"))
	return err == nil && strings.TrimSpace(string(b)) == chainID.String() && !stale(dir)
}

// stale reports whether the snapshot in dir was published unsynced in an
// earlier boot (see unsyncedFile).
func stale(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, unsyncedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return err != nil || bootID() == "" || strings.TrimSpace(string(b)) != bootID()
}

// removeStale removes chainID's directory if it holds that chain but is
// stale, and reports whether it did.
func (s *Snapshotter) removeStale(chainID v1.Hash) bool {
	dir := s.dir(chainID)
	b, err := os.ReadFile(filepath.Join(dir, "chain"))
	if err != nil || strings.TrimSpace(string(b)) != chainID.String() || !stale(dir) {
		return false
	}
	stage, err := s.stage()
	if err != nil {
		return false
	}
	defer os.RemoveAll(stage)
	return os.Rename(dir, filepath.Join(stage, "x")) == nil
}

// Sync makes the snapshots this Snapshotter published unsynced durable:
// one syncfs of the file system under Root, then their markers go. Call it
// when a build ends; until then (and if it is never called) they serve
// this boot and are rebuilt after a reboot.
func (s *Snapshotter) Sync() error {
	s.mu.Lock()
	markers := s.unsynced
	s.unsynced = nil
	s.mu.Unlock()
	if len(markers) == 0 {
		return nil
	}
	f, err := os.Open(s.root)
	if err != nil {
		return fmt.Errorf("syncing snapshots: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing snapshots: %w", err)
	}
	for _, m := range markers {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("syncing snapshots: %w", err)
		}
	}
	return nil
}

// touch records a use of chainID for Usage.
func (s *Snapshotter) touch(chainID v1.Hash) {
	now := time.Now()
	_ = os.Chtimes(filepath.Join(s.dir(chainID), "chain"), now, now) // best effort: only prune order depends on it
}

// stage makes a fresh staging directory under tmp/.
func (s *Snapshotter) stage() (string, error) {
	d, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "")
	if err != nil {
		return "", fmt.Errorf("creating staging directory: %w", err)
	}
	return d, nil
}

// publish renames the complete snapshot directory staged at dir into place
// as chainID's, after writing its chain file (and, when unsynced, its
// unsynced marker), and reports whether dir became chainID's. If another
// process or goroutine published chainID first, dir is left as it is (for
// the caller to remove) and publish succeeds; a stale snapshot of chainID
// is replaced.
func (s *Snapshotter) publish(dir string, chainID v1.Hash, unsynced bool) (bool, error) {
	if unsynced {
		if err := os.WriteFile(filepath.Join(dir, unsyncedFile), []byte(bootID()+"\n"), 0o600); err != nil {
			return false, fmt.Errorf("marking snapshot %s unsynced: %w", chainID, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "chain"), []byte(chainID.String()+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("writing chain ID of %s: %w", chainID, err)
	}
	for replaced := false; ; replaced = true {
		err := os.Rename(dir, s.dir(chainID))
		if err == nil {
			if unsynced {
				s.mu.Lock()
				s.unsynced = append(s.unsynced, filepath.Join(s.dir(chainID), unsyncedFile))
				s.mu.Unlock()
			}
			return true, nil
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return false, fmt.Errorf("storing snapshot %s: %w", chainID, err)
		}
		if s.holds(chainID) {
			return false, nil
		}
		if replaced || !s.removeStale(chainID) {
			return false, fmt.Errorf("storing snapshot %s: its directory holds another chain", chainID)
		}
	}
}

// Unpack stores the uncompressed layer tar r as the snapshot of chainID
// (whose parent chain is the caller's to know). It is idempotent: if
// chainID is already there, r is not read. It is atomic: the layer is
// unpacked in a staging directory and renamed into place, so a crash leaves
// no half snapshot and two concurrent Unpacks of one chainID both succeed
// with one copy kept. Unpack refuses unsafe tars (see layer.Apply).
func (s *Snapshotter) Unpack(ctx context.Context, chainID v1.Hash, r io.Reader) error {
	return s.UnpackChecked(ctx, chainID, v1.Hash{}, nil, r)
}

// UnpackChecked is Unpack that also reads r to its end (so a verifying
// reader underneath sees EOF and checks its digest) and checks that the
// bytes hash to diffID before publishing; a zero diffID skips the check.
// parents is the chain below (bottom first, already unpacked): a
// directory the tar does not list but needs is then made as it is there.
func (s *Snapshotter) UnpackChecked(ctx context.Context, chainID, diffID v1.Hash, parents []v1.Hash, r io.Reader) error {
	if s.Has(chainID) {
		return nil
	}
	var applyOpts layer.ApplyOptions
	if s.mode == ModeOverlay && len(parents) > 0 {
		below, release, err := s.View(ctx, parents)
		if err != nil {
			return fmt.Errorf("unpacking %s: viewing its parent: %w", chainID, err)
		}
		defer release()
		applyOpts.Parent = below
	}
	h := sha256.New()
	r = io.TeeReader(r, h)
	finish := func() error {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("unpacking %s: reading to the end: %w", chainID, err)
		}
		if diffID.Hex != "" {
			if got := hex.EncodeToString(h.Sum(nil)); diffID.Algorithm != "sha256" || got != diffID.Hex {
				return fmt.Errorf("unpacking %s: the layer's contents hash to sha256:%s, not its diff ID %s", chainID, got, diffID)
			}
		}
		return nil
	}
	stage, err := s.stage()
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage) // a no-op once published
	if s.mode == ModeOverlay {
		fsDir := filepath.Join(stage, "fs")
		if err := os.Mkdir(fsDir, 0o755); err != nil {
			return fmt.Errorf("unpacking %s: %w", chainID, err)
		}
		if err := layer.ApplyWith(ctx, r, fsDir, layer.ApplyOverlay, applyOpts); err != nil {
			return fmt.Errorf("unpacking %s: %w", chainID, err)
		}
	} else if err := storeFile(filepath.Join(stage, "tar"), r); err != nil {
		return fmt.Errorf("unpacking %s: %w", chainID, err)
	}
	if err := finish(); err != nil {
		return err
	}
	_, err = s.publish(stage, chainID, false)
	return err
}

func storeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Info describes one stored snapshot for `kiln prune`.
type Info struct {
	// ChainID is the OCI chain ID of the layer chain whose top layer the
	// snapshot holds, the ID Remove takes. A chain kept in both modes is
	// listed twice, once per mode.
	ChainID v1.Hash
	// Size is the disk space the snapshot uses, in bytes (allocated blocks;
	// a file linked several times counts once).
	Size int64
	// LastUsed is when it was last unpacked, committed, prepared on or viewed.
	LastUsed time.Time
}

// Usage lists the stored snapshots, least recently used first.
func (s *Snapshotter) Usage(ctx context.Context) ([]Info, error) {
	var out []Info
	for _, mode := range []string{ModeOverlay, ModeCopy} {
		infos, err := s.usageIn(ctx, modeDir(mode))
		if err != nil {
			return nil, err
		}
		out = append(out, infos...)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastUsed.Equal(out[j].LastUsed) {
			return out[i].LastUsed.Before(out[j].LastUsed)
		}
		return out[i].ChainID.String() < out[j].ChainID.String()
	})
	return out, nil
}

// usageIn lists the snapshots under Root/sub.
func (s *Snapshotter) usageIn(ctx context.Context, sub string) ([]Info, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, sub))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	var out []Info
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dir := filepath.Join(s.root, sub, e.Name())
		chainFile := filepath.Join(dir, "chain")
		b, err := os.ReadFile(chainFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("listing snapshots: %w", err)
		}
		id, err := v1.NewHash(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("listing snapshots: reading %s: %w", chainFile, err)
		}
		fi, err := os.Stat(chainFile)
		if err != nil {
			return nil, fmt.Errorf("listing snapshots: %w", err)
		}
		size, err := diskUsage(dir)
		if err != nil {
			return nil, fmt.Errorf("listing snapshots: measuring %s: %w", id, err)
		}
		out = append(out, Info{ChainID: id, Size: size, LastUsed: fi.ModTime()})
	}
	return out, nil
}

func diskUsage(dir string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// Remove deletes the snapshot of chainID and any merged tree kept with it.
// It returns an error wrapping ErrNotFound if there is none. A longer chain
// that includes chainID cannot be prepared afterwards unless its own merged
// tree was kept, so prune from the top of chains down.
func (s *Snapshotter) Remove(ctx context.Context, chainID v1.Hash) error {
	removed := false
	for _, mode := range []string{ModeOverlay, ModeCopy} {
		dir := filepath.Join(s.root, modeDir(mode), shortID(chainID))
		b, err := os.ReadFile(filepath.Join(dir, "chain"))
		if err != nil || strings.TrimSpace(string(b)) != chainID.String() {
			continue
		}
		stage, err := s.stage()
		if err != nil {
			return err
		}
		err = os.Rename(dir, filepath.Join(stage, "x"))
		if err == nil {
			err = os.RemoveAll(stage)
		}
		os.RemoveAll(stage)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing snapshot %s: %w", chainID, err)
		}
		removed = removed || err == nil
	}
	if !removed {
		return fmt.Errorf("removing snapshot %s: %w", chainID, ErrNotFound)
	}
	return nil
}
