package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/layer"
)

var t0 = time.Unix(1_600_000_000, 0)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// modes lists the snapshotter configurations every test runs in.
var modes = []struct {
	name      string
	forceCopy bool
}{
	{"overlayfs", false},
	{"copy", true},
}

// newSnapshotter makes a snapshotter in a temp dir; the overlay case
// requires overlayfs.
func newSnapshotter(t *testing.T, forceCopy bool) *Snapshotter {
	t.Helper()
	if !forceCopy {
		imagetest.Require(t, "overlayfs")
	}
	s, err := New(Options{Root: t.TempDir(), ForceCopy: forceCopy})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := ModeOverlay
	if forceCopy {
		want = ModeCopy
	}
	if s.Mode() != want {
		t.Fatalf("Mode() = %s, want %s (fallback: %v)", s.Mode(), want, s.Fallback())
	}
	t.Cleanup(func() {
		if n := mountsUnder(t, s.root); n != 0 {
			t.Errorf("%d mounts left under %s", n, s.root)
		}
	})
	return s
}

// mountsUnder counts the mounts whose mount point is below root.
func mountsUnder(t *testing.T, root string) int {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	must(t, err)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], root+"/") {
			n++
		}
	}
	return n
}

// node is what a test checks of one filesystem entry. MTime is in whole
// seconds (layer tars carry no more); directory mtimes are left out.
type node struct {
	Type      string
	Mode      uint32
	UID, GID  uint32
	Body      string
	Link      string
	MTime     int64
	LinkGroup string
}

func treeState(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	inodes := map[uint64][]string{}
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		n := node{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, MTime: st.Mtim.Sec}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.Type = "file"
			b, err := os.ReadFile(p)
			must(t, err)
			n.Body = string(b)
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case unix.S_IFDIR:
			n.Type, n.MTime = "dir", 0
		case unix.S_IFLNK:
			n.Type = "symlink"
			n.Link, _ = os.Readlink(p)
		default:
			n.Type = "other"
		}
		out[rel] = n
		return nil
	}))
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

func writeFile(t *testing.T, dir, name, body string, mode uint32) {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(body), 0o600))
	must(t, unix.Chmod(p, mode))
}

func stampTree(t *testing.T, dir string, tm time.Time) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
	must(t, filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

// tarOfTree writes the full layer tar of a plain directory.
func tarOfTree(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	must(t, layer.WriteUpper(context.Background(), &buf, dir, layer.TarOptions{}))
	return buf.Bytes()
}

// tarOf builds a tar of regular files (name → body); a name ending in "/"
// is a directory.
func tarOf(t *testing.T, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f[0], Mode: 0o644, Size: int64(len(f[1])), ModTime: t0}
		if strings.HasSuffix(f[0], "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		must(t, tw.WriteHeader(h))
		_, err := io.WriteString(tw, f[1])
		must(t, err)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func diffID(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// entryNames lists the names in an uncompressed tar, in order.
func entryNames(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		name := hdr.Name
		if hdr.Typeflag == tar.TypeLink {
			name += " => " + hdr.Linkname
		}
		out = append(out, name)
	}
}
