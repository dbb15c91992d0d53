package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/layer"
)

// maxLowers bounds the layers of one mount. The kernel allows 500 (older
// ones fewer), but lookups get slower with every layer, and a chain this
// deep is flattened once and reused by every step on top of it.
const maxLowers = 100

// probeOverlay mounts a tiny overlay under root and returns the extra mount
// options the kernel accepted and whether it takes "volatile" on writable
// mounts, or why overlay cannot be used there.
func probeOverlay(root string) (string, bool, error) {
	if strings.ContainsAny(root, ",:\\") {
		return "", false, fmt.Errorf("probing overlayfs: root %q contains ',', ':' or '\\', which overlay mount options cannot carry", root)
	}
	dir, err := os.MkdirTemp(filepath.Join(root, "tmp"), "probe")
	if err != nil {
		return "", false, fmt.Errorf("probing overlayfs: %w", err)
	}
	defer os.RemoveAll(dir)
	// l2 holds files that l1 hides: "wh" by a whiteout, d/f by an opaque d.
	l1, l2, m := filepath.Join(dir, "l1"), filepath.Join(dir, "l2"), filepath.Join(dir, "m")
	for _, d := range []string{l1, l2, m, filepath.Join(l1, "d"), filepath.Join(l2, "d")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", false, fmt.Errorf("probing overlayfs: %w", err)
		}
	}
	for _, f := range []string{filepath.Join(l2, "d", "f"), filepath.Join(l2, "wh")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return "", false, fmt.Errorf("probing overlayfs: %w", err)
		}
	}
	if err := unix.Mknod(filepath.Join(l1, "wh"), unix.S_IFCHR, 0); err != nil {
		return "", false, fmt.Errorf("probing overlayfs: creating a whiteout device: %w", err)
	}
	if err := unix.Lsetxattr(filepath.Join(l1, "d"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return "", false, fmt.Errorf("probing overlayfs: setting trusted.overlay.opaque: %w", err)
	}
	var errs []error
	attempt := 0
	// redirect_dir and metacopy would put renames and metadata-only
	// copy-ups into xattrs that an upper dir → tar conversion cannot see.
	// "volatile" (Linux 5.10) is tried first with each: its unmount does
	// not sync the whole upper file system (see Active.Commit).
	for _, extra := range []string{"redirect_dir=off,metacopy=off", "redirect_dir=off", ""} {
		for _, volatile := range []bool{true, false} {
			attempt++
			// Fresh upper and work dirs each time: a volatile mount leaves
			// its work dir unusable for another mount.
			u, w := filepath.Join(dir, fmt.Sprintf("u%d", attempt)), filepath.Join(dir, fmt.Sprintf("w%d", attempt))
			for _, d := range []string{u, w} {
				if err := os.Mkdir(d, 0o755); err != nil {
					return "", false, fmt.Errorf("probing overlayfs: %w", err)
				}
			}
			data := fmt.Sprintf("lowerdir=%s:%s,upperdir=%s,workdir=%s", l1, l2, u, w)
			if extra != "" {
				data += "," + extra
			}
			if volatile {
				data += ",volatile"
			}
			if err := unix.Mount("overlay", m, "overlay", 0, data); err != nil {
				errs = append(errs, fmt.Errorf("mounting with %q (volatile %v): %w", extra, volatile, err))
				continue
			}
			err := checkProbe(m, u)
			if uerr := unmount(m); uerr != nil {
				err = errors.Join(err, uerr)
			}
			if err != nil {
				return "", false, fmt.Errorf("probing overlayfs: %w", err)
			}
			return extra, volatile, nil
		}
	}
	return "", false, fmt.Errorf("probing overlayfs: %w", errors.Join(errs...))
}

// checkProbe checks the probe mount: the whiteout hides, the opaque
// directory hides its lower file, and a write lands in the upper dir.
func checkProbe(m, u string) error {
	if _, err := os.Lstat(filepath.Join(m, "wh")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("whiteout not honoured (lstat: %v)", err)
	}
	if _, err := os.Lstat(filepath.Join(m, "d", "f")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("opaque directory not honoured (lstat: %v)", err)
	}
	if err := os.WriteFile(filepath.Join(m, "new"), nil, 0o644); err != nil {
		return fmt.Errorf("writing through the overlay: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(u, "new")); err != nil {
		return fmt.Errorf("write did not reach the upper dir: %w", err)
	}
	return nil
}

// unmount unmounts target, waiting a little for a busy mount and detaching
// it as a last resort. A target that is not mounted is fine.
func unmount(target string) error {
	var err error
	for i := 0; i < 20; i++ {
		err = unix.Unmount(target, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if derr := unix.Unmount(target, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
		return fmt.Errorf("unmounting %s: %w", target, errors.Join(err, derr))
	}
	return nil
}

// mountData builds overlay mount data; upper and work may be empty for a
// read-only mount.
func (s *Snapshotter) mountData(lowers []string, upper, work string) string {
	data := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		data += ",upperdir=" + upper + ",workdir=" + work
	}
	if s.mountOpts != "" {
		data += "," + s.mountOpts
	}
	return data
}

// mountOverlay mounts chain (bottom first) on target. With upper and work
// set the mount is writable, else read-only.
func (s *Snapshotter) mountOverlay(ctx context.Context, chain []v1.Hash, target, upper, work string) error {
	lowers, err := s.lowers(ctx, chain, upper, work)
	if err != nil {
		return err
	}
	var flags uintptr
	if upper == "" {
		flags = unix.MS_RDONLY
		if len(lowers) == 1 {
			// Without an upper dir overlay wants two lowers.
			lowers = append(lowers, filepath.Join(s.root, "empty"))
		}
	}
	data := s.mountData(lowers, upper, work)
	if upper != "" && s.volatile {
		data += ",volatile"
	}
	if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
		return fmt.Errorf("mounting overlay of %d layers on %s: %w", len(chain), target, err)
	}
	return nil
}

// lowers returns the overlay lowerdirs (top first) for chain. It uses the
// merged tree of the highest layer that has one, and builds the merged tree
// of the whole chain when the layers would not fit in one mount.
func (s *Snapshotter) lowers(ctx context.Context, chain []v1.Hash, upper, work string) ([]string, error) {
	if len(chain) == 0 {
		return []string{filepath.Join(s.root, "empty")}, nil
	}
	for _, id := range chain {
		if !s.Has(id) {
			return nil, fmt.Errorf("preparing chain of %d layers: layer %s: %w", len(chain), id, ErrNotFound)
		}
	}
	base := s.highestMerged(chain)
	var lowers []string
	for i := len(chain) - 1; i > base; i-- {
		lowers = append(lowers, filepath.Join(s.dir(chain[i]), "fs"))
	}
	if base >= 0 {
		lowers = append(lowers, filepath.Join(s.dir(chain[base]), "m"))
	}
	// Leave room for a read-only mount's extra empty lower, or "volatile".
	data := s.mountData(lowers, upper, work) + ":" + filepath.Join(s.root, "empty") + ",volatile"
	if len(lowers) <= maxLowers && len(data) < unix.Getpagesize() {
		return lowers, nil
	}
	top := len(chain) - 1
	if err := s.buildMerged(ctx, chain, base); err != nil {
		return nil, err
	}
	return []string{filepath.Join(s.dir(chain[top]), "m")}, nil
}

// highestMerged returns the index of the highest layer of chain whose
// merged tree exists, or -1.
func (s *Snapshotter) highestMerged(chain []v1.Hash) int {
	for i := len(chain) - 1; i >= 0; i-- {
		if _, err := os.Lstat(filepath.Join(s.dir(chain[i]), "m")); err == nil {
			return i
		}
	}
	return -1
}

// buildMerged materializes the merged tree of chain as the "m" directory
// of its top layer: a copy of the merged tree of chain[base] (none for -1)
// with the layers above it applied flat. Concurrent builders race benignly:
// the first rename wins.
func (s *Snapshotter) buildMerged(ctx context.Context, chain []v1.Hash, base int) error {
	top := chain[len(chain)-1]
	stage, err := s.stage()
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	tree := filepath.Join(stage, "m")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return fmt.Errorf("flattening %s: %w", top, err)
	}
	if base >= 0 {
		if err := layer.Copy(ctx, tree, filepath.Join(s.dir(chain[base]), "m")); err != nil {
			return fmt.Errorf("flattening %s: %w", top, err)
		}
	}
	for _, id := range chain[base+1:] {
		if err := s.applyFlat(ctx, tree, id); err != nil {
			return fmt.Errorf("flattening %s: %w", top, err)
		}
	}
	err = os.Rename(tree, filepath.Join(s.dir(top), "m"))
	if err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
		return fmt.Errorf("flattening %s: %w", top, err)
	}
	return nil
}

// applyFlat applies the layer of snapshot id onto the merged tree dst.
func (s *Snapshotter) applyFlat(ctx context.Context, dst string, id v1.Hash) error {
	if s.mode == ModeCopy {
		f, err := os.Open(filepath.Join(s.dir(id), "tar"))
		if err != nil {
			return fmt.Errorf("applying layer %s: %w", id, err)
		}
		defer f.Close()
		if err := layer.Apply(ctx, f, dst, layer.ApplyFlat); err != nil {
			return fmt.Errorf("applying layer %s: %w", id, err)
		}
		return nil
	}
	if err := layer.ApplyUpper(ctx, dst, filepath.Join(s.dir(id), "fs")); err != nil {
		return fmt.Errorf("applying layer %s: %w", id, err)
	}
	return nil
}
