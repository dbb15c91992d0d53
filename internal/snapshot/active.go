package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/layer"
)

// Active is a writable root filesystem on top of a chain of snapshots. Its
// methods are safe for concurrent use, but the intended order is: change
// files under Root, WriteDiff, Commit (optional), WriteDiff again
// (optional), Release.
type Active struct {
	s    *Snapshotter
	dir  string // a/[<session>/]<n>: everything this Active owns
	root string
	// overlay mode: the upper dir and whether root is mounted.
	upper   string
	mounted bool
	// copy mode: the merged tree of the parent chain, to diff against,
	// and when root was copied from it.
	parent string
	copied time.Time

	mu        sync.Mutex
	committed bool
	released  bool
	// kept, once committed, is where the changed tree (the upper dir, or
	// in copy mode the changed copy) is now, for WriteDiff after Commit:
	// the published snapshot's, or this Active's own when Commit discarded
	// it (a snapshot of the chain was there first), until Release.
	kept string
}

// Prepare makes a writable root filesystem on top of chain (chain IDs
// bottom first, each already unpacked or committed; an empty chain is
// scratch). Each Active has its own directory, so concurrent builds on the
// same chain do not clash. The caller must call Release.
func (s *Snapshotter) Prepare(ctx context.Context, chain []v1.Hash) (*Active, error) {
	dir, err := os.MkdirTemp(s.work, "")
	if err != nil {
		return nil, fmt.Errorf("preparing rootfs: %w", err)
	}
	a := &Active{s: s, dir: dir}
	if err := a.prepare(ctx, chain); err != nil {
		return nil, errors.Join(fmt.Errorf("preparing rootfs: %w", err), a.Release())
	}
	for _, id := range chain {
		s.touch(id)
	}
	return a, nil
}

func (a *Active) prepare(ctx context.Context, chain []v1.Hash) error {
	if a.s.mode == ModeCopy {
		parent, err := a.s.merged(ctx, chain)
		if err != nil {
			return err
		}
		a.parent, a.root = parent, filepath.Join(a.dir, "r")
		if err := os.Mkdir(a.root, 0o755); err != nil {
			return err
		}
		if err := layer.Copy(ctx, a.root, parent); err != nil {
			return err
		}
		// The kernel stamps ctimes with its coarse clock: take "now" from
		// that clock too, through a file made after the copy.
		stamp := filepath.Join(a.dir, "copied")
		if err := os.WriteFile(stamp, nil, 0o600); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Stat(stamp, &st); err != nil {
			return err
		}
		a.copied = time.Unix(st.Ctim.Unix())
		return nil
	}
	a.upper, a.root = filepath.Join(a.dir, "u"), filepath.Join(a.dir, "m")
	work := filepath.Join(a.dir, "w")
	for _, d := range []string{a.upper, work, a.root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := a.s.mountOverlay(ctx, chain, a.root, a.upper, work); err != nil {
		return err
	}
	a.mounted = true
	return nil
}

// Root returns the path of the writable root filesystem.
func (a *Active) Root() string { return a.root }

// WriteDiff writes to w the OCI layer tar of what changed under Root since
// Prepare (see layer.WriteUpper and layer.WriteDiff for the format). Call
// it while nothing is writing under Root. After Commit it may be called
// again, until Release, and writes the same tar: the tree is read where
// Commit moved it (a committed snapshot is never written to), and the tar
// depends only on the tree. It does not close w.
func (a *Active) WriteDiff(ctx context.Context, w io.Writer, opts layer.TarOptions) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		return errors.New("writing diff: rootfs already released")
	}
	if a.s.mode == ModeCopy {
		tree := a.root
		if a.committed {
			tree = a.kept
		}
		opts.ChangedSince = a.copied
		return layer.WriteDiff(ctx, w, a.parent, tree, opts)
	}
	upper := a.upper
	if a.committed {
		upper = a.kept
	}
	// Reading the upper dir while the overlay is mounted is fine: overlayfs
	// writes through to it, and nothing else writes there.
	return layer.WriteUpper(ctx, w, upper, opts)
}

// Commit keeps the changes as the snapshot of chainID (the chain ID of the
// parent chain plus the diff WriteDiff wrote), so that Prepare on the
// parent chain plus chainID needs no unpack. If chainID already exists,
// the changes are discarded (WriteDiff still reads them until Release).
// After Commit, Root is gone: only WriteDiff and Release may follow.
func (a *Active) Commit(ctx context.Context, chainID v1.Hash) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.committed || a.released {
		return errors.New("committing snapshot: rootfs already committed or released")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.committed = true
	a.kept = a.upper
	if a.s.mode == ModeCopy {
		a.kept = a.root
	}
	if a.s.Has(chainID) {
		a.s.touch(chainID)
		return nil
	}
	stage := filepath.Join(a.dir, "c")
	if err := os.Mkdir(stage, 0o700); err != nil {
		return fmt.Errorf("committing snapshot %s: %w", chainID, err)
	}
	tree := filepath.Join(stage, "fs")
	if a.s.mode == ModeCopy {
		// The changed copy is the merged tree of the new chain.
		tree = filepath.Join(stage, "m")
		if err := os.Rename(a.root, tree); err != nil {
			return fmt.Errorf("committing snapshot %s: %w", chainID, err)
		}
	} else {
		// A volatile mount's unmount does not sync the upper file system
		// (a plain one syncs all of it, every other writer's data too).
		if err := unmount(a.root); err != nil {
			return fmt.Errorf("committing snapshot %s: %w", chainID, err)
		}
		a.mounted = false
		if err := os.Rename(a.upper, tree); err != nil {
			return fmt.Errorf("committing snapshot %s: %w", chainID, err)
		}
	}
	a.kept = tree
	// A volatile upper's data may still be only in the page cache: the
	// snapshot is marked so (see unsyncedFile) until Sync.
	published, err := a.s.publish(stage, chainID, a.s.mode == ModeOverlay && a.s.volatile)
	if published {
		a.kept = filepath.Join(a.s.dir(chainID), filepath.Base(tree))
	}
	return err
}

// Release unmounts the rootfs and removes everything Commit did not keep.
// It is safe to call more than once, and after Commit.
func (a *Active) Release() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		return nil
	}
	if a.mounted {
		if err := unmount(a.root); err != nil {
			return fmt.Errorf("releasing rootfs: %w", err)
		}
		a.mounted = false
	}
	if err := os.RemoveAll(a.dir); err != nil {
		return fmt.Errorf("releasing rootfs: %w", err)
	}
	a.released = true
	return nil
}

// View gives a read-only view of chain's merged filesystem at root (for
// COPY --from and content hashing). The caller must call release, once,
// when done. In overlayfs mode root is a read-only mount; in copy mode it
// is the stored merged tree itself, which the caller must not modify.
func (s *Snapshotter) View(ctx context.Context, chain []v1.Hash) (root string, release func() error, err error) {
	for _, id := range chain {
		s.touch(id)
	}
	if s.mode == ModeCopy {
		root, err := s.merged(ctx, chain)
		if err != nil {
			return "", nil, fmt.Errorf("viewing chain of %d layers: %w", len(chain), err)
		}
		return root, func() error { return nil }, nil
	}
	dir, err := os.MkdirTemp(s.work, "")
	if err != nil {
		return "", nil, fmt.Errorf("viewing chain of %d layers: %w", len(chain), err)
	}
	root = filepath.Join(dir, "m")
	if err := os.Mkdir(root, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("viewing chain of %d layers: %w", len(chain), err)
	}
	if len(chain) == 0 {
		// Scratch: an empty directory is the view, nothing to mount.
		return root, func() error { return os.RemoveAll(dir) }, nil
	}
	if err := s.mountOverlay(ctx, chain, root, "", ""); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("viewing chain of %d layers: %w", len(chain), err)
	}
	var once sync.Once
	var rerr error
	release = func() error {
		once.Do(func() {
			if err := unmount(root); err != nil {
				rerr = fmt.Errorf("releasing view: %w", err)
				return
			}
			if err := os.RemoveAll(dir); err != nil {
				rerr = fmt.Errorf("releasing view: %w", err)
			}
		})
		return rerr
	}
	return root, release, nil
}
