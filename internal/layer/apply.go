package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// ErrUnsafePath is wrapped by Apply's error for a tar entry that would
// write outside the destination: a name or hard-link target whose ".."
// climbs out, or a path through a symlink the same tar created.
var ErrUnsafePath = errors.New("layer: unsafe path in tar")

// ApplyMode says what Apply makes of whiteouts.
type ApplyMode int

const (
	// ApplyOverlay keeps deletions as overlayfs whiteouts, for a directory
	// that will be an overlay lower layer: ".wh.<name>" becomes a char device
	// 0:0 and ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory.
	ApplyOverlay ApplyMode = iota
	// ApplyFlat performs deletions, for a directory that is the merged root
	// filesystem: ".wh.<name>" removes name, and ".wh..wh..opq" removes what
	// its directory held before this tar.
	ApplyFlat
)

// Apply extracts the uncompressed OCI layer tar r into dir, which must exist.
//
// Apply is safe against hostile tars. A leading "/" is dropped, so absolute
// names are relative to dir; a name or hard-link target whose ".." climbs
// out of dir is refused; symlinks already in dir are followed only within
// dir, as if dir were the root (filepath-securejoin semantics); and an entry
// whose path goes through a symlink created by this same tar is refused
// (a tar written from a real tree never has one). A refusal is an error
// wrapping ErrUnsafePath and naming the entry; entries before it have been
// applied, nothing is written outside dir.
//
// Apply restores regular files, directories, symlinks, hard links, char
// and block devices and fifos, with permission bits, uid/gid (when running
// as root), mtime and xattrs (trusted.overlay.* from the tar is ignored;
// an xattr the filesystem does not support is skipped). An existing entry
// is replaced, except that a directory over a directory merges. Missing
// parent directories are created with mode 0755.
func Apply(ctx context.Context, r io.Reader, dir string, mode ApplyMode) error {
	return ApplyWith(ctx, r, dir, mode, ApplyOptions{})
}

// ApplyOptions refine Apply.
type ApplyOptions struct {
	// Parent is the merged filesystem below the layer. A parent directory
	// the tar does not list is then created with the mode, owner and mtime
	// it has there, instead of 0755 root: in an overlay lower dir a
	// directory's own metadata hides the one below, so inventing it would
	// change the filesystem (a sticky /tmp, a private home).
	Parent string
}

// ApplyWith is Apply with options.
func ApplyWith(ctx context.Context, r io.Reader, dir string, mode ApplyMode, opts ApplyOptions) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("applying layer to %s: %w", dir, err)
	}
	a := &applier{
		parent:   opts.Parent,
		present:  map[string]bool{},
		root:     root,
		mode:     mode,
		asRoot:   os.Geteuid() == 0,
		written:  map[string]bool{},
		symlinks: map[string]bool{},
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("applying tar entry %q: %w", hdr.Name, err)
		}
	}
	return a.finish()
}

type applier struct {
	parent string // ApplyOptions.Parent
	// present holds directories known to exist (checked or made), so the
	// parents of each entry are looked up once, not per entry.
	present map[string]bool
	root    string
	mode    ApplyMode
	asRoot  bool
	// written holds the cleaned names this tar wrote, which an opaque
	// marker must not remove.
	written map[string]bool
	// symlinks holds the cleaned names of symlinks this tar created.
	symlinks map[string]bool
	// dirs get their mode and mtime last, once their contents are written.
	dirs []dirMeta
}

type dirMeta struct {
	rel  string // cleaned tar name, "." for the root
	path string // where it resolved when its entry was read
	hdr  *tar.Header
}

// cleanName turns a tar name into a clean relative path, "." for the root.
func cleanName(name string) (string, error) {
	n := path.Clean(strings.TrimLeft(name, "/"))
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", fmt.Errorf("%w: %q climbs out of the destination", ErrUnsafePath, name)
	}
	return n, nil
}

// resolve returns where the entry named rel goes: its parent resolved
// inside the root, its last component not followed.
// With create, missing parent directories are made.
func (a *applier) resolve(rel string, create bool) (string, error) {
	if rel == "." {
		return a.root, nil
	}
	parent := path.Dir(rel)
	for p := parent; p != "."; p = path.Dir(p) {
		if a.symlinks[p] {
			return "", fmt.Errorf("%w: %q goes through symlink %q created by the same layer", ErrUnsafePath, rel, p)
		}
	}
	if create && a.parent != "" {
		if err := a.mkParents(parent); err != nil {
			return "", err
		}
	}
	dir, err := securejoin.SecureJoin(a.root, parent)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", parent, err)
	}
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("creating parent directory: %w", err)
		}
	}
	return filepath.Join(dir, path.Base(rel)), nil
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	base := path.Base(rel)
	switch {
	case base == whiteoutOpaque:
		return a.opaque(path.Dir(rel))
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // other AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
	case strings.HasPrefix(base, whiteoutPrefix):
		name := strings.TrimPrefix(base, whiteoutPrefix)
		if name == "" {
			// ".wh." alone would name the parent directory itself.
			return fmt.Errorf("%w: whiteout with an empty name", ErrUnsafePath)
		}
		return a.whiteout(path.Join(path.Dir(rel), name))
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the root can only be a directory", ErrUnsafePath)
		}
		a.dirs = append(a.dirs, dirMeta{rel: ".", path: a.root, hdr: hdr})
		return a.owner(a.root, hdr)
	}
	target, err := a.resolve(rel, true)
	if err != nil {
		return err
	}
	delete(a.symlinks, rel)
	a.written[rel] = true

	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.dir(rel, target, hdr)
	case tar.TypeReg, '\x00', tar.TypeGNUSparse: // '\x00': old tars' regular file (TypeRegA)
		return a.file(target, hdr, r)
	case tar.TypeSymlink:
		if err := removeExisting(target); err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return fmt.Errorf("creating symlink: %w", err)
		}
		a.symlinks[rel] = true
		return a.meta(target, hdr)
	case tar.TypeLink:
		return a.hardlink(target, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := removeExisting(target); err != nil {
			return err
		}
		mode := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(target, mode|uint32(hdr.Mode&0o7777), int(dev)); err != nil {
			return fmt.Errorf("creating device node: %w", err)
		}
		return a.meta(target, hdr)
	}
	delete(a.written, rel)
	return nil // global headers and the like carry no file
}

func (a *applier) dir(rel, target string, hdr *tar.Header) error {
	var st unix.Stat_t
	err := unix.Lstat(target, &st)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := removeExisting(target); err != nil {
			return err
		}
		err = unix.ENOENT
	}
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdir(target, 0o700); err != nil {
			return fmt.Errorf("creating directory: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("reading existing entry: %w", err)
	}
	a.dirs = append(a.dirs, dirMeta{rel: rel, path: target, hdr: hdr})
	if err := a.owner(target, hdr); err != nil {
		return err
	}
	return a.xattrs(target, hdr)
}

func (a *applier) file(target string, hdr *tar.Header, r io.Reader) error {
	if err := removeExisting(target); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing file: %w", err)
	}
	return a.meta(target, hdr)
}

func (a *applier) hardlink(target string, hdr *tar.Header) error {
	lrel, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if lrel == "." {
		return fmt.Errorf("%w: hard link to the root", ErrUnsafePath)
	}
	src, err := a.resolve(lrel, false)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if src == target {
		return nil
	}
	if err := removeExisting(target); err != nil {
		return err
	}
	if err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, target, 0); err != nil {
		return fmt.Errorf("creating hard link to %q: %w", hdr.Linkname, err)
	}
	return nil
}

// mkParents creates the missing directories of rel one by one, each with
// the metadata the same path has in the parent filesystem (when it is a
// directory there), and times set at the end like the tar's directories.
func (a *applier) mkParents(rel string) error {
	if a.present[rel] {
		return nil
	}
	defer func() {
		for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
			a.present[p] = true
		}
	}()
	cur := "."
	for _, comp := range strings.Split(rel, "/") {
		if comp == "" || comp == "." {
			continue
		}
		cur = path.Join(cur, comp)
		host, err := securejoin.SecureJoin(a.root, cur)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", cur, err)
		}
		if _, err := os.Lstat(host); err == nil || !errors.Is(err, fs.ErrNotExist) {
			continue // there (or unreadable: MkdirAll will say)
		}
		below, err := securejoin.SecureJoin(a.parent, cur)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(below, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // MkdirAll makes it 0755, as nothing is below
		}
		if err := unix.Mkdir(host, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating parent directory %s: %w", cur, err)
		}
		hdr := &tar.Header{
			Name: cur + "/", Typeflag: tar.TypeDir, Mode: int64(st.Mode & 0o7777),
			Uid: int(st.Uid), Gid: int(st.Gid),
			ModTime: time.Unix(st.Mtim.Unix()), AccessTime: time.Unix(st.Atim.Unix()),
		}
		if err := a.owner(host, hdr); err != nil {
			return err
		}
		a.dirs = append(a.dirs, dirMeta{rel: cur, path: host, hdr: hdr})
	}
	return nil
}

// whiteout records the deletion of rel.
func (a *applier) whiteout(rel string) error {
	if base := path.Base(rel); base == "." || base == ".." || rel == "." {
		return fmt.Errorf("%w: whiteout of %q", ErrUnsafePath, rel)
	}
	target, err := a.resolve(rel, a.mode == ApplyOverlay)
	if err != nil {
		return err
	}
	delete(a.symlinks, rel)
	if err := removeExisting(target); err != nil {
		return err
	}
	if a.mode == ApplyFlat {
		return nil
	}
	if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("creating overlay whiteout: %w", err)
	}
	return nil
}

// opaque hides what the directory rel held below this layer.
func (a *applier) opaque(rel string) error {
	target, err := a.resolve(rel, true)
	if err != nil {
		return err
	}
	// Never follow the last component: a symlink (or file) here is
	// replaced by a real directory, not emptied through.
	var st unix.Stat_t
	if err := unix.Lstat(target, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := removeExisting(target); err != nil {
			return err
		}
		delete(a.symlinks, rel)
	} else if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("reading opaque directory: %w", err)
	}
	if err := unix.Mkdir(target, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating opaque directory: %w", err)
	}
	if a.mode == ApplyOverlay {
		if err := unix.Lsetxattr(target, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("marking directory opaque: %w", err)
		}
		return nil
	}
	names, err := readDirNames(target)
	if err != nil {
		return err
	}
	for _, name := range names {
		if a.written[path.Join(rel, name)] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(target, name)); err != nil {
			return fmt.Errorf("clearing opaque directory: %w", err)
		}
	}
	return nil
}

// removeExisting removes whatever is at target (a directory with its
// contents); a missing target is fine.
func removeExisting(target string) error {
	if err := os.RemoveAll(target); err != nil {
		return fmt.Errorf("replacing existing entry: %w", err)
	}
	return nil
}

// meta restores ownership, permissions, xattrs and mtime of a non-directory.
func (a *applier) meta(target string, hdr *tar.Header) error {
	if err := a.owner(target, hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, target, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("setting mode: %w", err)
		}
	}
	if err := a.xattrs(target, hdr); err != nil {
		return err
	}
	return setTimes(target, hdr)
}

func (a *applier) owner(target string, hdr *tar.Header) error {
	if !a.asRoot {
		return nil
	}
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("setting owner: %w", err)
	}
	return nil
}

func (a *applier) xattrs(target string, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok || strings.HasPrefix(name, overlayXattr) {
			continue
		}
		err := unix.Lsetxattr(target, name, []byte(v), 0)
		switch {
		case err == nil, errors.Is(err, unix.ENOTSUP):
		case errors.Is(err, unix.EPERM) && hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir:
			// user.* xattrs are not allowed on symlinks and devices.
		default:
			return fmt.Errorf("setting xattr %s: %w", name, err)
		}
	}
	return nil
}

func setTimes(target string, hdr *tar.Header) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting mtime: %w", err)
	}
	return nil
}

// finish sets the mode and mtime of every directory written, deepest last
// written first, now that nothing more is written inside them.
func (a *applier) finish() error {
	// A directory can be listed twice (made as a parent, then by its own
	// later entry): the later listing wins, as it would in a plain untar.
	done := map[string]bool{}
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		if done[d.rel] {
			continue
		}
		done[d.rel] = true
		// A later entry may have swapped a parent for a symlink: act only
		// on a path that still resolves, inside the root, to where it was.
		if d.rel != "." {
			if p, err := securejoin.SecureJoin(a.root, d.rel); err != nil || p != d.path {
				continue
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(d.path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // removed or replaced by a later entry
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, d.path, uint32(d.hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("applying tar entry %q: setting mode: %w", d.hdr.Name, err)
		}
		if err := setTimes(d.path, d.hdr); err != nil {
			return fmt.Errorf("applying tar entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}
