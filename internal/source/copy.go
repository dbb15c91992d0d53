package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/stream"
)

// CopyRequest says where and how CopyInto copies.
type CopyRequest struct {
	// Dest is the absolute destination inside the target root (a relative
	// one is taken from "/"); the caller has applied WORKDIR. A trailing
	// "/" means "a directory".
	Dest string
	// UID and GID own every copied entry and every parent directory
	// created; -1 keeps the source's owner (created parents are then owned
	// by 0). COPY's default is 0:0, which the caller passes; COPY --from
	// keeps the owners, as BuildKit does.
	UID, GID int
	// Chmod, when set, gives the permission and special bits of every
	// copied file and directory (not symlinks). An octal one also gives
	// those of every directory the copy creates, which are otherwise 0755
	// (BuildKit's rule).
	Chmod *Chmod
	// ResetParents gives every existing directory on the way to Dest (and
	// Dest, when it is a directory) mode 0755 and the owner UID:GID (0
	// for -1), as the layer of BuildKit's COPY --link without --chmod
	// holds them.
	ResetParents bool
	// ExtractArchives (ADD) extracts a source file that is a tar archive,
	// plain or compressed with gzip, bzip2, xz or zstd, into Dest as a
	// directory instead of copying it. xz needs the xz program on PATH.
	ExtractArchives bool
	// KeepArchiveOwners keeps the owners an extracted archive records
	// instead of UID:GID (ADD without --chown).
	KeepArchiveOwners bool
}

// CopyInto copies matches into the directory targetRoot with BuildKit's
// COPY rules:
//   - a directory match copies its contents into Dest (created if missing,
//     like a parent directory: the source directory's own mode and owner
//     are not copied);
//   - a file match goes to Dest/<Name> when Dest ends with "/" or is an
//     existing directory, and to Dest itself otherwise, so that of several
//     file matches onto a Dest without "/" the last one wins;
//   - files hard-linked to each other in the source are hard-linked in
//     the copy.
//
// Missing parent directories are created (0755 or an octal Chmod, owned
// UID:GID). Symlinks in
// targetRoot are resolved inside it (filepath-securejoin semantics), so no
// write ever lands outside targetRoot; an existing non-directory at a
// destination is replaced, an existing directory is merged into, and a file
// over an existing directory is an error. Copied entries keep their source
// mtimes (directories included).
func (t *Tree) CopyInto(ctx context.Context, matches []Match, targetRoot string, req CopyRequest) error {
	if t.opts.IgnoreOwners && (req.UID < 0 || req.GID < 0) {
		return errors.New("copying: source digests ignore owners, so the copy must set them (UID and GID not -1)")
	}
	if len(matches) == 0 {
		return nil
	}
	root, err := filepath.Abs(targetRoot)
	if err != nil {
		return fmt.Errorf("copying into %s: %w", targetRoot, err)
	}
	dest := filepath.ToSlash(req.Dest)
	slash := strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") || dest == "."
	destRel := strings.TrimPrefix(path.Clean("/"+dest), "/")
	w := &writer{root: root, req: req, dirs: map[string]string{}, inodes: map[inode]string{}}
	destDir := slash
	if p, err := securejoin.SecureJoin(root, destRel); err == nil {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			destDir = true
		}
	}
	for _, m := range matches {
		clear(w.dirs) // an earlier match may have replaced a path with a link
		if err := t.copyMatch(ctx, w, m, destRel, destDir); err != nil {
			return fmt.Errorf("copying %s to %s: %w", m.Source, req.Dest, err)
		}
	}
	if req.ResetParents {
		if err := w.resetParents(destRel); err != nil {
			return fmt.Errorf("copying to %s: %w", req.Dest, err)
		}
	}
	return w.finish()
}

// resetParents gives the directories on the way to rel, and rel itself
// when it is a directory, mode 0755 and the request's owner.
func (w *writer) resetParents(rel string) error {
	clear(w.dirs)
	var rels []string
	for r := rel; r != "" && r != "." && r != "/"; r = path.Dir(r) {
		rels = append(rels, r)
	}
	for _, r := range rels {
		p, err := securejoin.SecureJoin(w.root, r)
		if err != nil {
			return err
		}
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue // the file itself, or gone
		}
		if err := os.Chown(p, max(w.req.UID, 0), max(w.req.GID, 0)); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tree) copyMatch(ctx context.Context, w *writer, m Match, destRel string, destDir bool) error {
	if !m.Dir && w.req.ExtractArchives {
		done, err := t.extractIfArchive(ctx, w, m, destRel)
		if done || err != nil {
			return err
		}
	}
	target := destRel
	if !m.Dir && destDir {
		target = path.Join(destRel, m.Name)
	}
	ents, err := t.walk(ctx, m, nil)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if m.Dir && e.rel == "" {
			// The directory's contents go into target, which is made
			// like any parent when missing, with the source's times.
			if err := w.matchDir(target, e); err != nil {
				return err
			}
			continue
		}
		n := node{
			rel:    path.Join(target, e.rel),
			mode:   e.fi.Mode(),
			uid:    int(e.st.Uid),
			gid:    int(e.st.Gid),
			mtime:  time.Unix(0, e.st.Mtim.Nano()),
			atime:  time.Unix(0, e.st.Atim.Nano()),
			link:   e.link,
			rdev:   e.st.Rdev,
			xattrs: e.xattrs,
		}
		if e.fi.Mode().IsRegular() {
			n.content = func() (io.ReadCloser, error) { return os.Open(t.abs(e.src)) }
			if e.st.Nlink > 1 {
				ino := inode{e.st.Dev, e.st.Ino}
				if first, ok := w.inodes[ino]; ok && first != n.rel {
					n.hardlink = first
				} else {
					w.inodes[ino] = n.rel
				}
			}
		}
		if err := w.write(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// matchDir makes the directory rel that a directory match's contents go
// into, when missing, as a parent is made (mode and owner of the request,
// not of e), but with e's times so that a copy is reproducible.
func (w *writer) matchDir(rel string, e entry) error {
	if rel == "" || rel == "." {
		return nil
	}
	parent, err := w.dir(path.Dir(rel))
	if err != nil {
		return err
	}
	_, statErr := os.Lstat(filepath.Join(parent, path.Base(rel)))
	p, err := w.dir(rel)
	if err != nil || statErr == nil {
		return err
	}
	w.dirTimes = append(w.dirTimes, node{rel: rel, mtime: time.Unix(0, e.st.Mtim.Nano()), atime: time.Unix(0, e.st.Atim.Nano())})
	w.dirPaths = append(w.dirPaths, p)
	return nil
}

// node is one entry to write under the target root.
type node struct {
	rel          string // slash path under the target root
	mode         fs.FileMode
	uid, gid     int
	mtime, atime time.Time
	link         string // symlink target
	hardlink     string // hard link target (slash path under the target root)
	rdev         uint64
	content      func() (io.ReadCloser, error)
	xattrs       map[string]string
}

// inode names a source file, to find the files hard-linked to it.
type inode struct{ dev, ino uint64 }

// writer writes nodes under root without leaving it.
type writer struct {
	root string
	req  CopyRequest
	dirs map[string]string // rel → resolved host path of directories seen
	// inodes maps each source file with several links to the path its
	// first copy has, which the others are hard-linked to.
	inodes map[inode]string

	dirTimes []node // directories whose times are set last
	dirPaths []string
}

// dir returns the host path of the directory rel, resolving symlinks inside
// the root and creating what is missing (0755 or an octal Chmod, owned by
// the request).
func (w *writer) dir(rel string) (string, error) {
	if rel == "" || rel == "." {
		return w.root, nil
	}
	if p, ok := w.dirs[rel]; ok {
		return p, nil
	}
	parent, err := w.dir(path.Dir(rel))
	if err != nil {
		return "", err
	}
	p := filepath.Join(parent, path.Base(rel))
	fi, err := os.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		// Follow the link inside the root; what it names (now free of
		// links) is created like any other missing directory.
		real, err := securejoin.SecureJoin(w.root, rel)
		if err != nil {
			return "", err
		}
		realRel, err := filepath.Rel(w.root, real)
		if err != nil || realRel == ".." || strings.HasPrefix(realRel, "../") {
			return "", fmt.Errorf("creating directory /%s: link resolves outside the root", rel)
		}
		if p, err = w.dir(filepath.ToSlash(realRel)); err != nil {
			return "", err
		}
	case err == nil:
		return "", fmt.Errorf("creating directory /%s: not a directory", rel)
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", err
		}
		if err := w.owner(p, -1, -1, false); err != nil {
			return "", err
		}
		mode := fs.FileMode(0o755)
		if c := w.req.Chmod; c != nil && c.Octal() {
			mode = c.Apply(fs.ModeDir) & modeBits
		}
		if err := os.Chmod(p, mode); err != nil {
			return "", err
		}
	default:
		return "", err
	}
	w.dirs[rel] = p
	return p, nil
}

// owner chowns p to the request's owner, or to uid:gid when the request
// keeps source owners (-1 there means leave as created).
func (w *writer) owner(p string, uid, gid int, link bool) error {
	if w.req.UID >= 0 {
		uid = w.req.UID
	}
	if w.req.GID >= 0 {
		gid = w.req.GID
	}
	if uid < 0 && gid < 0 {
		return nil
	}
	if link {
		return os.Lchown(p, uid, gid)
	}
	return os.Chown(p, uid, gid)
}

func (w *writer) perm(m fs.FileMode) fs.FileMode {
	if w.req.Chmod != nil {
		return w.req.Chmod.Apply(m) & modeBits
	}
	return m & modeBits
}

func (w *writer) write(ctx context.Context, n node) error {
	if n.rel == "" || n.rel == "." {
		if !n.mode.IsDir() {
			return errors.New("cannot replace the root directory with a file")
		}
	}
	if n.mode.IsDir() {
		return w.writeDir(n)
	}
	parent, err := w.dir(path.Dir(n.rel))
	if err != nil {
		return err
	}
	p := filepath.Join(parent, path.Base(n.rel))
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("cannot overwrite directory /%s with a non-directory", n.rel)
		}
		// Unlink rather than truncate: the old file may be a hard link.
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	switch {
	case n.hardlink != "":
		return w.writeHardlink(p, n)
	case n.mode.IsRegular():
		return w.writeFile(ctx, p, n)
	case n.mode&fs.ModeSymlink != 0:
		if err := os.Symlink(n.link, p); err != nil {
			return err
		}
		if err := w.owner(p, n.uid, n.gid, true); err != nil {
			return err
		}
		return setTimes(p, n, true)
	case n.mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe) != 0:
		typ := uint32(unix.S_IFIFO)
		if n.mode&fs.ModeCharDevice != 0 {
			typ = unix.S_IFCHR
		} else if n.mode&fs.ModeDevice != 0 {
			typ = unix.S_IFBLK
		}
		if err := unix.Mknod(p, typ|0o600, int(n.rdev)); err != nil {
			return err
		}
		return w.meta(p, n)
	}
	return nil // sockets are not copied
}

func (w *writer) writeDir(n node) error {
	p, err := w.dir(n.rel)
	if err != nil {
		return err
	}
	if err := w.meta(p, n); err != nil {
		return err
	}
	w.dirTimes = append(w.dirTimes, n)
	w.dirPaths = append(w.dirPaths, p)
	return nil
}

func (w *writer) writeFile(ctx context.Context, p string, n node) error {
	src, err := n.content()
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	err = copyContent(ctx, f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return w.meta(p, n)
}

// copyContent copies src to the end of f. A source file goes file to file
// in the kernel with sendfile, a chunk at a time so that ctx is checked
// between chunks: copy_file_range (what File.ReadFrom tries) refuses to
// cross from the context's file system into the overlay mount a COPY
// writes to (EXDEV), sendfile does not. Anything else, or the rest of a
// file whose sendfile the kernel refuses, is read through this process.
func copyContent(ctx context.Context, f *os.File, src io.Reader) error {
	if sf, ok := src.(*os.File); ok {
		done, err := sendFile(ctx, f, sf)
		if done || err != nil {
			return err
		}
	}
	_, err := io.Copy(f, stream.Reader(ctx, src))
	return err
}

// sendChunk is how much one sendfile call copies at most.
const sendChunk = 8 << 20

// sendFile copies src from its offset to its end into dst with sendfile.
// done is false (and err nil) when the kernel refuses sendfile for these
// files: the offsets of both are then where the refused call left them,
// so a plain copy can go on from there.
func sendFile(ctx context.Context, dst, src *os.File) (done bool, err error) {
	dfd, sfd := int(dst.Fd()), int(src.Fd())
	defer runtime.KeepAlive(dst)
	defer runtime.KeepAlive(src)
	for {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		n, err := unix.Sendfile(dfd, sfd, nil, sendChunk)
		switch {
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP):
			return false, nil
		case err != nil:
			return true, err
		case n == 0:
			return true, nil
		}
	}
}

func (w *writer) writeHardlink(p string, n node) error {
	parent, err := w.dir(path.Dir(n.hardlink))
	if err != nil {
		return err
	}
	target := filepath.Join(parent, path.Base(n.hardlink))
	fi, err := os.Lstat(target)
	if err != nil {
		return fmt.Errorf("hard link /%s to /%s: %w", n.rel, n.hardlink, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link /%s to directory /%s", n.rel, n.hardlink)
	}
	return os.Link(target, p)
}

// meta sets owner, mode and times on a non-symlink.
func (w *writer) meta(p string, n node) error {
	if err := w.owner(p, n.uid, n.gid, false); err != nil {
		return err
	}
	// After chown, which clears setuid and setgid (and file capabilities).
	if err := os.Chmod(p, w.perm(n.mode)); err != nil {
		return err
	}
	for k, v := range n.xattrs {
		err := unix.Lsetxattr(p, k, []byte(v), 0)
		if errors.Is(err, unix.EPERM) && os.Geteuid() != 0 {
			continue // security.* and trusted.* need root; others still copy
		}
		if err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setting xattr %s on /%s: %w", k, n.rel, err)
		}
	}
	return setTimes(p, n, false)
}

// finish sets directory times, deepest last-created first, once nothing
// more is written into them.
func (w *writer) finish() error {
	for i := len(w.dirTimes) - 1; i >= 0; i-- {
		if err := setTimes(w.dirPaths[i], w.dirTimes[i], false); err != nil {
			return fmt.Errorf("setting times of /%s: %w", w.dirTimes[i].rel, err)
		}
	}
	return nil
}

func setTimes(p string, n node, link bool) error {
	flags := 0
	if link {
		flags = unix.AT_SYMLINK_NOFOLLOW
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.atime.UnixNano()), unix.NsecToTimespec(n.mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, flags)
}
