package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// WriteDiff writes to w the OCI layer tar of the changes that turn the tree
// lowerDir into the tree upperDir, for the copying fallback where there is no
// overlayfs upper directory. The tar follows WriteUpper's format.
//
// An entry is written when it is new, or when its type, permission bits,
// uid, gid, mtime, xattrs, symlink target, device number or (for regular
// files) size differ. Equal size and mtime (to the nanosecond) mean equal
// content, except when both mtimes have zero nanoseconds: such times may
// have been truncated (trees unpacked from tars, filesystems with coarse
// timestamps), so then the contents are compared. This is the rule of
// containerd's double-walking differ; it trusts the mtime of a file that a
// tool rewrote and then stamped back to its old nanosecond-exact mtime.
//
// A deleted entry becomes one ".wh.<name>" entry (a deleted directory is one
// whiteout, whatever it held). An entry whose type changed is written whole,
// so Apply replaces it; a directory that replaced a file is written with all
// of its contents. A directory whose own metadata changed is written
// without its unchanged children. Every change comes with its ancestor
// directories, as an overlayfs upper dir holds them, so that both
// snapshotters give the same layer and a layer never relies on Apply to
// invent a parent. WriteDiff does not close w.
func WriteDiff(ctx context.Context, w io.Writer, lowerDir, upperDir string, opts TarOptions) error {
	tw := newTreeWriter(w, opts)
	if err := tw.writeDiff(ctx, lowerDir, upperDir, "", func() error { return nil }); err != nil {
		return fmt.Errorf("writing diff of %s against %s: %w", upperDir, lowerDir, err)
	}
	return tw.close()
}

// writeDiff writes the changes under upperDir; parent writes the entries
// of the directories above, once, before the first change here.
func (w *treeWriter) writeDiff(ctx context.Context, lowerDir, upperDir, rel string, parent func() error) error {
	lowerNames, err := readDirNames(lowerDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	upperNames, err := readDirNames(upperDir)
	if err != nil {
		return err
	}
	for _, name := range union(lowerNames, upperNames) {
		if err := ctx.Err(); err != nil {
			return err
		}
		lp, up := filepath.Join(lowerDir, name), filepath.Join(upperDir, name)
		var ust, lst unix.Stat_t
		uerr := unix.Lstat(up, &ust)
		if errors.Is(uerr, unix.ENOENT) {
			if err := parent(); err != nil {
				return err
			}
			if err := w.writeMarker(rel + whiteoutPrefix + name); err != nil {
				return err
			}
			continue
		}
		if uerr != nil {
			return fmt.Errorf("reading %s: %w", up, uerr)
		}
		lerr := unix.Lstat(lp, &lst)
		if errors.Is(lerr, unix.ENOENT) || (lerr == nil && lst.Mode&unix.S_IFMT != ust.Mode&unix.S_IFMT) {
			if err := parent(); err != nil {
				return err
			}
			if err := w.writeEntry(ctx, up, rel+name, &ust, true); err != nil {
				return err
			}
			continue
		}
		if lerr != nil {
			return fmt.Errorf("reading %s: %w", lp, lerr)
		}
		changed, err := entryChanged(lp, up, &lst, &ust, w.since)
		if err != nil {
			return err
		}
		if changed {
			if err := parent(); err != nil {
				return err
			}
			if err := w.writeEntry(ctx, up, rel+name, &ust, false); err != nil {
				return err
			}
		}
		if ust.Mode&unix.S_IFMT == unix.S_IFDIR {
			written := changed
			dirUp, dirRel, dirSt := up, rel+name, ust
			child := func() error {
				if written {
					return nil
				}
				if err := parent(); err != nil {
					return err
				}
				written = true
				return w.writeEntry(ctx, dirUp, dirRel, &dirSt, false)
			}
			if err := w.writeDiff(ctx, lp, up, rel+name+"/", child); err != nil {
				return err
			}
		}
	}
	return nil
}

// union returns the sorted names in a or b (both sorted), once each.
func union(a, b []string) []string {
	out := make([]string, 0, len(b))
	out = append(out, a...)
	out = append(out, b...)
	sort.Strings(out)
	n := 0
	for i, s := range out {
		if i > 0 && s == out[n-1] {
			continue
		}
		out[n] = s
		n++
	}
	return out[:n]
}

// entryChanged compares two entries of the same type; see WriteDiff for the rule.
func entryChanged(lp, up string, l, u *unix.Stat_t, since time.Time) (bool, error) {
	if l.Mode != u.Mode || l.Uid != u.Uid || l.Gid != u.Gid || l.Mtim != u.Mtim {
		return true, nil
	}
	switch u.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		if l.Rdev != u.Rdev {
			return true, nil
		}
	case unix.S_IFLNK:
		lt, err := os.Readlink(lp)
		if err != nil {
			return false, fmt.Errorf("reading symlink %s: %w", lp, err)
		}
		ut, err := os.Readlink(up)
		if err != nil {
			return false, fmt.Errorf("reading symlink %s: %w", up, err)
		}
		if lt != ut {
			return true, nil
		}
	case unix.S_IFREG:
		if l.Size != u.Size {
			return true, nil
		}
		touched := !since.IsZero() && !time.Unix(u.Ctim.Unix()).Before(since)
		if u.Mtim.Nsec == 0 || touched {
			same, err := sameContent(lp, up)
			if err != nil || !same {
				return !same, err
			}
		}
	}
	lx, err := readXattrs(lp)
	if err != nil {
		return false, err
	}
	ux, err := readXattrs(up)
	if err != nil {
		return false, err
	}
	return !maps.Equal(lx, ux), nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, fmt.Errorf("comparing %s: %w", a, err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, fmt.Errorf("comparing %s: %w", b, err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aDone := erra == io.EOF || erra == io.ErrUnexpectedEOF
		bDone := errb == io.EOF || errb == io.ErrUnexpectedEOF
		if erra != nil && !aDone {
			return false, fmt.Errorf("comparing %s: %w", a, erra)
		}
		if errb != nil && !bDone {
			return false, fmt.Errorf("comparing %s: %w", b, errb)
		}
		if aDone || bDone {
			return aDone == bDone, nil
		}
	}
}
