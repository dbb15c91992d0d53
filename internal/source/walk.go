package source

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// entry is one file a match copies.
type entry struct {
	rel  string // relative to the match ("" for the match itself)
	src  string // real slash path relative to the tree root
	fi   fs.FileInfo
	st   *syscall.Stat_t
	link string // symlink target
	// xattrs are the extended attributes a copy keeps (file capabilities
	// above all), nil for none.
	xattrs map[string]string
}

// walk lists what copying m copies, parents before children, siblings in
// name order. Inside a directory symlinks are entries, not followed. found,
// when set, is called with each regular file as it is listed, in order, so
// that its hashing can start before the walk ends.
func (t *Tree) walk(ctx context.Context, m Match, found func(entry)) ([]entry, error) {
	root, err := t.entry(m.Path, "", found != nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.Source, err)
	}
	out := []entry{root}
	if found != nil && root.fi.Mode().IsRegular() {
		found(root)
	}
	if !m.Dir {
		return out, nil
	}
	if err := t.walkDir(ctx, m.Path, "", &out, found); err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.Source, err)
	}
	return out, nil
}

func (t *Tree) walkDir(ctx context.Context, src, rel string, out *[]entry, found func(entry)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(t.abs(src))
	if err != nil {
		return err
	}
	for _, de := range ents {
		csrc, crel := path.Join(src, de.Name()), path.Join(rel, de.Name())
		ex := t.excluded(csrc)
		if ex && (t.isHidden(csrc) || !(de.IsDir() && t.mayIncludeUnder())) {
			continue
		}
		e, err := t.entry(csrc, crel, found != nil)
		if err != nil {
			return err
		}
		pos := len(*out)
		*out = append(*out, e)
		if !e.fi.IsDir() {
			if found != nil && e.fi.Mode().IsRegular() {
				found(e)
			}
			continue
		}
		if err := t.walkDir(ctx, csrc, crel, out, found); err != nil {
			return err
		}
		if ex && len(*out) == pos+1 {
			// An excluded directory exists only as the parent of files
			// a "!" pattern brought back; this one has none.
			*out = (*out)[:pos]
		}
	}
	return nil
}

// entry lstats src. It reads its xattrs too, but for a regular file when
// lazy: then whoever hashes the file reads them (fileSum), from the file
// it opens, beside the hashing rather than on the walk.
func (t *Tree) entry(src, rel string, lazy bool) (entry, error) {
	fi, err := os.Lstat(t.abs(src))
	if err != nil {
		return entry{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return entry{}, fmt.Errorf("reading %s: no stat data", src)
	}
	e := entry{rel: rel, src: src, fi: fi, st: st}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		if e.link, err = os.Readlink(t.abs(src)); err != nil {
			return entry{}, err
		}
	case lazy && fi.Mode().IsRegular():
	default:
		if e.xattrs, err = readXattrs(t.abs(src)); err != nil {
			return entry{}, fmt.Errorf("reading xattrs of %s: %w", src, err)
		}
	}
	return e, nil
}

// readXattrs reads the extended attributes of p that a copy keeps: not
// SELinux labels (the host's) nor overlay bookkeeping.
func readXattrs(p string) (map[string]string, error) {
	return keptXattrs(func(b []byte) (int, error) { return unix.Llistxattr(p, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
}

// fdXattrs is readXattrs of the open file fd.
func fdXattrs(fd int) (map[string]string, error) {
	return keptXattrs(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

// keptXattrs is readXattrs through list and get.
func keptXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error)) (map[string]string, error) {
	size, err := list(nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	if size, err = list(buf); err != nil {
		return nil, err
	}
	var out map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || name == "security.selinux" || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		n, err := get(name, nil)
		if err != nil {
			continue // removed since listing
		}
		val := make([]byte, n)
		if n, err = get(name, val); err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(val[:n])
	}
	return out, nil
}
