package source

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// extractIfArchive extracts m into destRel when it is a tar archive and
// reports whether it did. A file that is not a tar (after decompression) is
// left for the ordinary copy, as Docker's ADD does.
func (t *Tree) extractIfArchive(ctx context.Context, w *writer, m Match, destRel string) (bool, error) {
	p := t.abs(m.Path)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return false, err
	}
	tr, closeFn, err := openTar(ctx, p)
	if errors.Is(err, errNotTar) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = tr.Next()
	closeFn()
	if err != nil {
		return false, nil // not a tar: copy it as a file
	}
	tr, closeFn, err = openTar(ctx, p)
	if err != nil {
		return false, err
	}
	defer closeFn()
	if err := extract(ctx, w, tr, destRel); err != nil {
		return true, fmt.Errorf("extracting archive: %w", err)
	}
	return true, nil
}

// errNotTar says a file is not an archive ADD extracts.
var errNotTar = errors.New("source: not a tar archive")

// openTar opens the file at p as a tar stream, decompressing by magic.
func openTar(ctx context.Context, p string) (*tar.Reader, func(), error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(f)
	magic, _ := br.Peek(6)
	var r io.Reader = br
	closeFn := func() { f.Close() }
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, errNotTar
		}
		r = zr
	case bytes.HasPrefix(magic, []byte("BZh")):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		r = zr
		closeFn = func() { zr.Close(); f.Close() }
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		cctx, cancel := context.WithCancel(ctx)
		cmd := exec.CommandContext(cctx, "xz", "-dc")
		cmd.Stdin = br
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			cancel()
			f.Close()
			return nil, nil, fmt.Errorf("decompressing xz (needs the xz program): %w", err)
		}
		r = out
		closeFn = func() { cancel(); cmd.Wait(); f.Close() }
	}
	return tar.NewReader(r), closeFn, nil
}

// extract writes a tar stream under destRel. Absolute names, names that
// climb out of the destination, and hard links whose target does are
// refused. The archive is written by a writer rooted at the destination
// itself, so a symlink in the archive ("up -> ../../..", "abs -> /etc")
// resolves inside the destination, as Docker's chrooted untar does: an
// archive can never write elsewhere in the image.
func extract(ctx context.Context, w *writer, tr *tar.Reader, destRel string) error {
	destHost, err := w.dir(destRel)
	if err != nil {
		return err
	}
	sub := &writer{root: destHost, req: w.req, dirs: map[string]string{}}
	if w.req.KeepArchiveOwners {
		// Entries keep the owners the archive records (BuildKit's ADD
		// without --chown).
		sub.req.UID, sub.req.GID = -1, -1
	}
	defer func() {
		w.dirTimes = append(w.dirTimes, sub.dirTimes...)
		w.dirPaths = append(w.dirPaths, sub.dirPaths...)
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue // the archive's own root
		}
		fi := hdr.FileInfo()
		n := node{
			rel:   name,
			mode:  fi.Mode(),
			uid:   hdr.Uid,
			gid:   hdr.Gid,
			mtime: hdr.ModTime,
			atime: hdr.ModTime,
			link:  hdr.Linkname,
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		case '\x00', tar.TypeCont, tar.TypeGNUSparse:
			// Regular files too: an old tar's ('\x00'), a contiguous file, and a
			// GNU sparse file, whose holes archive/tar reads as zeros.
			n.mode = fi.Mode() &^ fs.ModeType
		case tar.TypeLink:
			target, err := entryName(hdr.Linkname)
			if err != nil || target == "" {
				return fmt.Errorf("tar entry %q: hard link to %q outside the destination", hdr.Name, hdr.Linkname)
			}
			n.hardlink = target
			n.mode = 0o644
		case tar.TypeXGlobalHeader, 'V': // 'V': a GNU volume label
			continue // no file (archive/tar applies PAX and GNU long names itself)
		default:
			// Dropping an entry would give an image that silently lacks
			// a file: refuse what cannot be extracted faithfully.
			return fmt.Errorf("tar entry %q: unsupported entry type %q", hdr.Name, hdr.Typeflag)
		}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			n.rdev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		}
		if n.mode.IsRegular() {
			n.content = func() (io.ReadCloser, error) { return io.NopCloser(tr), nil }
		}
		if err := sub.write(ctx, n); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
}

// entryName cleans a tar entry name to a slash path relative to the
// destination ("" for the root), refusing absolute names and escapes.
func entryName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("tar entry %q: absolute path", name)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("tar entry %q: outside the destination", name)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}
