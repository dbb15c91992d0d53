package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// listing describes a target tree: path → "type mode uid:gid [content|->target]".
func listing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := string(typeChar(fi.Mode())) + " " + strconvOct(fi.Mode()) + " " + itoa(st.Uid) + ":" + itoa(st.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " ->" + l
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func strconvOct(m fs.FileMode) string {
	s := ""
	if m&fs.ModeSetuid != 0 {
		s = "u"
	}
	perm := uint32(m.Perm())
	return s + string([]byte{'0' + byte(perm>>6&7), '0' + byte(perm>>3&7), '0' + byte(perm&7)})
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// chmod parses a --chmod value for a CopyRequest.
func chmod(t *testing.T, s string) *Chmod {
	t.Helper()
	c, err := ParseChmod(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCopyInto(t *testing.T) {
	imagetest.Require(t, "root") // chown
	src := t.TempDir()
	mkTree(t, src, []file{
		{path: "a.txt", content: "a"},
		{path: "b.txt", content: "b"},
		{path: "run.sh", content: "#!", mode: 0o755 | os.ModeSetuid},
		{path: "dir/x", content: "x", mode: 0o600},
		{path: "dir/sub/y", content: "y"},
		{path: "dir/l", link: "x"},
		{path: "dir/skip.log", content: "no"},
		{path: "secret/key", content: "no"},
		{path: "secret/keep", content: "keep"},
	})
	os.Chmod(filepath.Join(src, "dir"), 0o750)
	os.Lchown(filepath.Join(src, "dir/x"), 42, 43)
	tr := openTree(t, src, Options{Ignore: []string{"*.log", "**/*.log", "secret", "!secret/keep"}})

	// Every target starts with an existing directory /exists, and links
	// that point out of the target.
	targetFiles := []file{
		{path: "exists/"},
		{path: "esc", link: "../outside"},
		{path: "escabs", link: "/"},
		{path: "f-link", link: "../outside/victim"},
	}
	tests := []struct {
		name    string
		sources []string
		req     CopyRequest
		want    map[string]string // entries added to the target
		wantErr string
	}{
		{"file to new path", []string{"a.txt"}, CopyRequest{Dest: "/new"},
			map[string]string{"new": "f 644 0:0 a"}, ""},
		{"file to dir/", []string{"a.txt"}, CopyRequest{Dest: "/d/e/"},
			map[string]string{"d": "d 755 0:0", "d/e": "d 755 0:0", "d/e/a.txt": "f 644 0:0 a"}, ""},
		{"file to existing dir", []string{"a.txt"}, CopyRequest{Dest: "/exists"},
			map[string]string{"exists/a.txt": "f 644 0:0 a"}, ""},
		// The directory itself is not copied: /app is made like a
		// parent (BuildKit).
		{"dir contents", []string{"dir"}, CopyRequest{Dest: "/app"},
			map[string]string{"app": "d 755 0:0", "app/x": "f 600 0:0 x", "app/l": "l 777 0:0 ->x",
				"app/sub": "d 755 0:0", "app/sub/y": "f 644 0:0 y"}, ""},
		{"chown and chmod", []string{"dir/sub", "a.txt"}, CopyRequest{Dest: "/p/q/", UID: 1000, GID: 1001, Chmod: chmod(t, "0640")},
			map[string]string{"p": "d 640 1000:1001", "p/q": "d 640 1000:1001", "p/q/y": "f 640 1000:1001 y",
				"p/q/a.txt": "f 640 1000:1001 a"}, ""},
		{"keep owner", []string{"dir/x"}, CopyRequest{Dest: "/x", UID: -1, GID: -1},
			map[string]string{"x": "f 600 42:43 x"}, ""},
		{"setuid kept", []string{"run.sh"}, CopyRequest{Dest: "/bin/"},
			map[string]string{"bin": "d 755 0:0", "bin/run.sh": "f u755 0:0 #!"}, ""},
		{"glob", []string{"*.txt"}, CopyRequest{Dest: "/g/"},
			map[string]string{"g": "d 755 0:0", "g/a.txt": "f 644 0:0 a", "g/b.txt": "f 644 0:0 b"}, ""},
		{"re-included only", []string{"secret"}, CopyRequest{Dest: "/s"},
			map[string]string{"s": "d 755 0:0", "s/keep": "f 644 0:0 keep"}, ""},
		{"two sources into an existing dir", []string{"a.txt", "b.txt"}, CopyRequest{Dest: "/exists"},
			map[string]string{"exists/a.txt": "f 644 0:0 a", "exists/b.txt": "f 644 0:0 b"}, ""},
		// Several files onto a path without "/": each is copied onto it,
		// the last one wins (BuildKit).
		{"two sources onto a file", []string{"a.txt", "b.txt"}, CopyRequest{Dest: "/one"},
			map[string]string{"one": "f 644 0:0 b"}, ""},
		{"glob of two onto a file", []string{"*.txt"}, CopyRequest{Dest: "/g"},
			map[string]string{"g": "f 644 0:0 b"}, ""},
		{"relative link out of target", []string{"a.txt"}, CopyRequest{Dest: "/esc/"},
			map[string]string{"outside": "d 755 0:0", "outside/a.txt": "f 644 0:0 a"}, ""},
		{"absolute link to target root", []string{"a.txt"}, CopyRequest{Dest: "/escabs/z"},
			map[string]string{"z": "f 644 0:0 a"}, ""},
		{"existing link replaced, not written through", []string{"a.txt"}, CopyRequest{Dest: "/f-link"},
			map[string]string{"f-link": "f 644 0:0 a"}, ""},
		{"file over directory", []string{"a.txt"}, CopyRequest{Dest: "/d/exists"}, nil, ""},
		{"dot dot dest stays inside", []string{"a.txt"}, CopyRequest{Dest: "/../../dd"},
			map[string]string{"dd": "f 644 0:0 a"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			target := filepath.Join(base, "target")
			outside := filepath.Join(base, "outside")
			os.Mkdir(outside, 0o755)
			mkTree(t, target, targetFiles)
			before := listing(t, target)
			ms, err := tr.Select(tt.sources)
			if err != nil {
				t.Fatal(err)
			}
			err = tr.CopyInto(context.Background(), ms, target, tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CopyInto error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("wrote outside the target: %v", ents)
			}
			if tt.want == nil {
				return
			}
			got := listing(t, target)
			for k, v := range before {
				if got[k] == v {
					delete(got, k)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCopyIntoFileOverDir(t *testing.T) {
	imagetest.Require(t, "root") // chown to 0:0
	src, target := t.TempDir(), t.TempDir()
	mkTree(t, src, []file{{path: "a", content: "a"}})
	mkTree(t, target, []file{{path: "d/a/"}})
	tr := openTree(t, src, Options{})
	ms, _ := tr.Select([]string{"a"})
	if err := tr.CopyInto(context.Background(), ms, target, CopyRequest{Dest: "/d/a/a"}); err != nil {
		t.Fatalf("into existing dir: %v", err)
	}
	mkTree(t, target, []file{{path: "e/a/"}})
	// /e/a exists as a directory: the file goes inside it, Docker-style.
	if err := tr.CopyInto(context.Background(), ms, target, CopyRequest{Dest: "/e/a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "e/a/a")); err != nil {
		t.Errorf("file not copied into existing dir: %v", err)
	}
	// A directory source over an existing file is an error.
	mkTree(t, src, []file{{path: "dd/sub/f", content: "f"}})
	mkTree(t, target, []file{{path: "t/sub", content: "file"}})
	ms, _ = tr.Select([]string{"dd"})
	if err := tr.CopyInto(context.Background(), ms, target, CopyRequest{Dest: "/t"}); err == nil {
		t.Error("directory over file: no error")
	}
}

func TestCopyIntoKeepsMtimes(t *testing.T) {
	imagetest.Require(t, "root") // chown to 0:0
	src, target := t.TempDir(), t.TempDir()
	mkTree(t, src, []file{{path: "d/f", content: "f"}, {path: "d/l", link: "f"}})
	when := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	for _, p := range []string{"d/f", "d"} {
		os.Chtimes(filepath.Join(src, p), when, when)
	}
	tr := openTree(t, src, Options{})
	ms, _ := tr.Select([]string{"d"})
	if err := tr.CopyInto(context.Background(), ms, target, CopyRequest{Dest: "/out/"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"out/f", "out"} {
		fi, err := os.Stat(filepath.Join(target, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(when) {
			t.Errorf("%s mtime = %v, want %v", p, fi.ModTime(), when)
		}
	}
}

func TestCopyIntoIgnoreOwnersNeedsOwner(t *testing.T) {
	src := t.TempDir()
	mkTree(t, src, []file{{path: "a", content: "a"}})
	tr := openTree(t, src, Options{IgnoreOwners: true})
	ms, _ := tr.Select([]string{"a"})
	if err := tr.CopyInto(context.Background(), ms, t.TempDir(), CopyRequest{Dest: "/a", UID: -1, GID: -1}); err == nil {
		t.Error("UID -1 with IgnoreOwners: no error")
	}
}

type tarEntry struct {
	name, body, link string
	typ              byte
}

func makeTar(t *testing.T, ents []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link,
			Uid: 7, Gid: 8, ModTime: time.Unix(1e9, 0)}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ != tar.TypeReg && e.typ != tar.TypeCont {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// gnuSparseTar is an old-GNU-format archive holding one sparse file (type
// 'S', as tar -S writes it): 10 bytes, "hi" at offset 4, holes around it.
// archive/tar cannot write these, so the header is built by hand.
func gnuSparseTar(t *testing.T) []byte {
	t.Helper()
	blk := make([]byte, 512)
	num := func(off, n int, v int64) { copy(blk[off:off+n], fmt.Sprintf("%0*o\x00", n-1, v)) }
	copy(blk, "s")
	num(100, 8, 0o644)
	num(108, 8, 7)
	num(116, 8, 8)
	num(124, 12, 2) // stored bytes
	num(136, 12, 1e9)
	blk[156] = tar.TypeGNUSparse
	copy(blk[257:], "ustar  \x00")
	num(386, 12, 4)  // sparse[0].offset
	num(398, 12, 2)  // sparse[0].numbytes
	num(483, 12, 10) // real size
	for i := 148; i < 156; i++ {
		blk[i] = ' '
	}
	var sum int64
	for _, b := range blk {
		sum += int64(b)
	}
	copy(blk[148:], fmt.Sprintf("%06o\x00 ", sum))
	data := make([]byte, 512)
	copy(data, "hi")
	return append(append(blk, data...), make([]byte, 1024)...)
}

func compress(t *testing.T, data []byte, how string) []byte {
	t.Helper()
	switch how {
	case "":
		return data
	case "gzip":
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		return buf.Bytes()
	}
	imagetest.Require(t, how) // bzip2 or xz; ADD also runs xz to extract
	cmd := exec.Command(how, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAddExtract(t *testing.T) {
	imagetest.Require(t, "root") // extraction keeps the archive's owners
	good := []tarEntry{
		{name: "./", typ: tar.TypeDir},
		{name: "pkg/", typ: tar.TypeDir},
		{name: "pkg/bin", body: "elf", typ: tar.TypeReg},
		{name: "pkg/link", link: "bin", typ: tar.TypeSymlink},
		{name: "pkg/hard", link: "pkg/bin", typ: tar.TypeLink},
	}
	wantGood := map[string]string{
		"opt": "d 755 0:0", "opt/pkg": "d 755 7:8", "opt/pkg/bin": "f 644 7:8 elf",
		"opt/pkg/link": "l 777 7:8 ->bin", "opt/pkg/hard": "f 644 7:8 elf",
	}
	tests := []struct {
		name     string
		ents     []tarEntry
		compress string
		raw      string // not a tar: this content
		extract  bool
		want     map[string]string
		wantErr  string
	}{
		{"tar.gz", good, "gzip", "", true, wantGood, ""},
		{"plain tar", good, "", "", true, wantGood, ""},
		{"tar.bz2", good, "bzip2", "", true, wantGood, ""},
		{"tar.xz", good, "xz", "", true, wantGood, ""},
		{"COPY does not extract", good, "gzip", "", false, nil, ""},
		{"not an archive", nil, "", "just text", true, map[string]string{"opt": "d 755 0:0", "opt/f": "f 644 0:0 just text"}, ""},
		{"gzip but not tar", nil, "gzip", "just text", true, nil, ""},
		{"contiguous file", []tarEntry{{name: "c", body: "contig", typ: tar.TypeCont}}, "", "", true,
			map[string]string{"opt": "d 755 0:0", "opt/c": "f 644 7:8 contig"}, ""},
		{"GNU sparse file", nil, "gzip", string(gnuSparseTar(t)), true,
			map[string]string{"opt": "d 755 0:0", "opt/s": "f 644 7:8 \x00\x00\x00\x00hi\x00\x00\x00\x00"}, ""},
		{"unknown entry type fails", []tarEntry{{name: "d", typ: 'D'}}, "", "", true, nil, "unsupported entry type"},
		{"dot dot", []tarEntry{{name: "../evil", body: "x", typ: tar.TypeReg}}, "gzip", "", true, nil, "outside the destination"},
		{"absolute", []tarEntry{{name: "/evil", body: "x", typ: tar.TypeReg}}, "gzip", "", true, nil, "absolute path"},
		{"hard link out", []tarEntry{{name: "h", link: "../../etc/passwd", typ: tar.TypeLink}}, "", "", true, nil, "outside the destination"},
		{"write through symlink stays inside", []tarEntry{
			{name: "up", link: "../../..", typ: tar.TypeSymlink},
			{name: "up/inside", body: "x", typ: tar.TypeReg}}, "gzip", "", true,
			map[string]string{"opt": "d 755 0:0", "opt/up": "l 777 7:8 ->../../..", "opt/inside": "f 644 7:8 x"}, ""},
		{"absolute symlink resolves in the destination", []tarEntry{
			{name: "abs", link: "/etc", typ: tar.TypeSymlink},
			{name: "abs/ld.so.preload", body: "x", typ: tar.TypeReg}}, "gzip", "", true,
			map[string]string{"opt": "d 755 0:0", "opt/abs": "l 777 7:8 ->/etc", "opt/etc": "d 755 0:0", "opt/etc/ld.so.preload": "f 644 7:8 x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			data := []byte(tt.raw)
			if tt.ents != nil {
				data = makeTar(t, tt.ents)
			}
			os.WriteFile(filepath.Join(src, "f"), compress(t, data, tt.compress), 0o644)
			tr := openTree(t, src, Options{})
			ms, _ := tr.Select([]string{"f"})
			base := t.TempDir()
			target := filepath.Join(base, "root")
			os.Mkdir(target, 0o755)
			err := tr.CopyInto(context.Background(), ms, target, CopyRequest{Dest: "/opt/", UID: -1, GID: -1, ExtractArchives: tt.extract})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(base); len(ents) != 1 {
				t.Fatalf("wrote beside the target root: %v", ents)
			}
			got := listing(t, target)
			if tt.want == nil {
				if len(got) != 2 || !strings.HasPrefix(got["opt/f"], "f ") {
					t.Errorf("archive not copied as a file: %v", keys(got))
				}
				return
			}
			// Source owners are the test's (root) for plain copies.
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
