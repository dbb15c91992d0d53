package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// TarOptions control how a layer tar is written. The zero value writes
// mtimes as they are (truncated to whole seconds).
type TarOptions struct {
	// SourceDateEpoch, when non-nil, clamps every entry's mtime to at most
	// this time (the SOURCE_DATE_EPOCH convention of reproducible builds).
	SourceDateEpoch *time.Time
	// ChangedSince, for WriteDiff, is when the upper tree was copied from
	// the lower: a file whose inode changed since (ctime) has its content
	// compared even when its size and mtime match the lower's, since a
	// step can restore an mtime (tar x, cp -p) but never a ctime.
	ChangedSince time.Time
}

// Whiteout names of the OCI image layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// fileID identifies an inode, to find hard links.
type fileID struct{ dev, ino uint64 }

// treeWriter writes filesystem entries as tar entries. One treeWriter
// writes one tar, so hard links are tracked across the whole of it.
type treeWriter struct {
	tw    *tar.Writer
	epoch *time.Time
	since time.Time // TarOptions.ChangedSince
	// nanos keeps sub-second mtimes (PAX records). Layer tars truncate to
	// whole seconds as Docker does; the private tree copy keeps them so a
	// copied tree compares equal to its source.
	nanos bool
	// overlay turns char devices 0:0 into ".wh." entries and opaque
	// directories into ".wh..wh..opq" entries.
	overlay bool
	// links maps an inode with several links to the name it was first
	// written under in this tar.
	links map[fileID]string
}

func newTreeWriter(w io.Writer, opts TarOptions) *treeWriter {
	return &treeWriter{tw: tar.NewWriter(w), epoch: opts.SourceDateEpoch, since: opts.ChangedSince, links: map[fileID]string{}}
}

func (w *treeWriter) mtime(st *unix.Stat_t) time.Time {
	t := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if !w.nanos {
		t = t.Truncate(time.Second)
	}
	if w.epoch != nil && t.After(*w.epoch) {
		t = *w.epoch
	}
	return t
}

// isWhiteout reports whether st is an overlayfs whiteout (char device 0:0).
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// writeTree writes every entry below absDir, whose tar name prefix is rel
// ("" for the tree root, else a name ending in "/").
func (w *treeWriter) writeTree(ctx context.Context, absDir, rel string) error {
	names, err := readDirNames(absDir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		abs := filepath.Join(absDir, name)
		var st unix.Stat_t
		if err := unix.Lstat(abs, &st); err != nil {
			return fmt.Errorf("reading %s: %w", abs, err)
		}
		if err := w.writeEntry(ctx, abs, rel+name, &st, true); err != nil {
			return err
		}
	}
	return nil
}

// writeEntry writes the entry at abs under the tar name rel (without a
// trailing slash). With recurse, a directory's contents follow it.
func (w *treeWriter) writeEntry(ctx context.Context, abs, rel string, st *unix.Stat_t, recurse bool) error {
	if w.overlay && isWhiteout(st) {
		dir, base := filepath.Split(rel)
		return w.writeMarker(dir + whiteoutPrefix + base)
	}
	hdr, err := w.header(abs, rel, st)
	if err != nil || hdr == nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && st.Nlink > 1 {
		id := fileID{dev: uint64(st.Dev), ino: st.Ino}
		if first, ok := w.links[id]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			w.links[id] = rel
		}
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header for %s: %w", rel, err)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		return w.copyFile(abs, hdr.Size)
	case tar.TypeDir:
		if w.overlay {
			opaque, err := isOpaque(abs)
			if err != nil {
				return err
			}
			if opaque {
				if err := w.writeMarker(rel + "/" + whiteoutOpaque); err != nil {
					return err
				}
			}
		}
		if recurse {
			return w.writeTree(ctx, abs, rel+"/")
		}
	}
	return nil
}

// header builds the tar header of the entry at abs, or nil for an entry tar
// cannot carry (a socket).
func (w *treeWriter) header(abs, rel string, st *unix.Stat_t) (*tar.Header, error) {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: w.mtime(st),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
	case unix.S_IFLNK:
		target, err := os.Readlink(abs)
		if err != nil {
			return nil, fmt.Errorf("reading symlink %s: %w", abs, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, nil
	}
	xattrs, err := readXattrs(abs)
	if err != nil {
		return nil, err
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+k] = v
	}
	return hdr, nil
}

// writeMarker writes an empty whiteout entry. Its metadata is fixed so that
// it never makes two tars of the same change differ.
func (w *treeWriter) writeMarker(name string) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o600,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing whiteout %s: %w", name, err)
	}
	return nil
}

func (w *treeWriter) copyFile(abs string, size int64) error {
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("opening %s: %w", abs, err)
	}
	defer f.Close()
	n, err := io.Copy(w.tw, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("copying %s into tar: %w", abs, err)
	}
	if n != size {
		return fmt.Errorf("copying %s into tar: file shrank from %d to %d bytes while being read", abs, size, n)
	}
	return nil
}

func (w *treeWriter) close() error {
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("finishing tar: %w", err)
	}
	return nil
}

// readDirNames returns the names in dir, sorted.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("opening directory %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	sort.Strings(names)
	return names, nil
}

// WriteUpper writes the uncompressed OCI layer tar of an overlayfs upper
// directory to w. A char device 0:0 becomes "<dir>/.wh.<name>"; a directory
// with xattr trusted.overlay.opaque=y becomes its own entry followed at once
// by "<dir>/.wh..wh..opq". The tar is deterministic: a directory precedes its
// children, which are sorted by name; uid/gid are numeric with no names; no
// atime/ctime; PAX format; mtimes truncated to seconds (and clamped by
// opts); names carry no leading "/" or "./" and directories end in "/".
// Extended attributes are kept except trusted.overlay.*; regular files
// linked several times within the tree become tar hard links to the first
// name written. Sockets are skipped. The upper directory itself has no entry.
// WriteUpper does not close w.
func WriteUpper(ctx context.Context, w io.Writer, upperDir string, opts TarOptions) error {
	tw := newTreeWriter(w, opts)
	tw.overlay = true
	if err := tw.writeTree(ctx, upperDir, ""); err != nil {
		return fmt.Errorf("writing layer of %s: %w", upperDir, err)
	}
	return tw.close()
}
