package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry is what a test checks of one tar entry.
type entry struct {
	Name   string
	Type   byte
	Mode   int64
	UID    int
	GID    int
	Link   string
	Body   string
	Dev    [2]int64
	Xattrs map[string]string
	MTime  int64
}

// readEntries lists the entries of an uncompressed tar.
func readEntries(t *testing.T, data []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading tar entry %s: %v", hdr.Name, err)
		}
		if hdr.Uname != "" || hdr.Gname != "" || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("entry %s has uname %q gname %q atime %v ctime %v, want none", hdr.Name, hdr.Uname, hdr.Gname, hdr.AccessTime, hdr.ChangeTime)
		}
		e := entry{
			Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid,
			Link: hdr.Linkname, Body: string(body), MTime: hdr.ModTime.Unix(),
		}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			e.Dev = [2]int64{hdr.Devmajor, hdr.Devminor}
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, paxXattr); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		out = append(out, e)
	}
}

// names lists the entry names, in tar order.
func names(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// node is what a test checks of one filesystem entry.
type node struct {
	Type   string
	Mode   uint32
	UID    uint32
	GID    uint32
	Body   string
	Link   string
	Rdev   uint64
	MTime  int64
	Xattrs map[string]string
	// LinkGroup is the first path (sorted) sharing this inode, for files with
	// several links.
	LinkGroup string
}

// treeState reads every entry below dir (not dir itself). With mtimes
// false, directory mtimes are left out (they change whenever a child is
// created, so are only comparable in a careful test).
func treeState(t *testing.T, dir string, mtimes bool) map[string]node {
	t.Helper()
	out := map[string]node{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, MTime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.Type = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Body = string(b)
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case unix.S_IFDIR:
			n.Type = "dir"
			if !mtimes {
				n.MTime = 0
			}
		case unix.S_IFLNK:
			n.Type = "symlink"
			n.Link, _ = os.Readlink(p)
		case unix.S_IFCHR:
			n.Type, n.Rdev = "char", st.Rdev
		case unix.S_IFBLK:
			n.Type, n.Rdev = "block", st.Rdev
		case unix.S_IFIFO:
			n.Type = "fifo"
		default:
			n.Type = "other"
		}
		x, err := readXattrs(p)
		if err != nil {
			return err
		}
		n.Xattrs = x
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("reading tree %s: %v", dir, err)
	}
	for _, paths := range inodes {
		sort.Strings(paths)
		for _, p := range paths {
			n := out[p]
			n.LinkGroup = paths[0]
			out[p] = n
		}
	}
	return out
}

// spec builds test trees: each step is applied in order under dir.
type spec func(t *testing.T, dir string)

func build(t *testing.T, dir string, steps ...spec) {
	t.Helper()
	for _, s := range steps {
		s(t, dir)
	}
}

var t0 = time.Unix(1_600_000_000, 0)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func file(name, body string, mode os.FileMode) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o600))
		must(t, unix.Chmod(p, uint32(mode)))
	}
}

func mkdir(name string, mode os.FileMode) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(p, 0o755))
		must(t, unix.Chmod(p, uint32(mode)))
	}
}

func symlink(name, target string) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		must(t, os.Symlink(target, filepath.Join(dir, name)))
	}
}

func hardlink(name, target string) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		must(t, os.Link(filepath.Join(dir, target), filepath.Join(dir, name)))
	}
}

func remove(name string) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		must(t, os.RemoveAll(filepath.Join(dir, name)))
	}
}

func chown(name string, uid, gid int) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		must(t, os.Lchown(filepath.Join(dir, name), uid, gid))
	}
}

func xattr(name, key, value string) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		must(t, unix.Lsetxattr(filepath.Join(dir, name), key, []byte(value), 0))
	}
}

func mknod(name string, mode uint32, major, minor uint32) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		p := filepath.Join(dir, name)
		must(t, unix.Mknod(p, mode, int(unix.Mkdev(major, minor))))
		must(t, unix.Chmod(p, mode&0o7777))
	}
}

// stamp sets the mtime of every entry in dir (dir included) to tm.
func stamp(tm time.Time) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		must(t, filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		}))
	}
}

// touch sets the mtime of one entry.
func touch(name string, tm time.Time) spec {
	return func(t *testing.T, dir string) {
		t.Helper()
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, name), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// tarOf builds an uncompressed tar from headers; a header's body is its
// Linkname when the type is regular (a test shortcut).
func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h := *h
		var body string
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(&h))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func writeUpper(t *testing.T, dir string, opts TarOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	must(t, WriteUpper(context.Background(), &buf, dir, opts))
	return buf.Bytes()
}

func isUnsafe(err error) bool { return errors.Is(err, ErrUnsafePath) }
