package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type tarEntry struct {
	Name, Link string
	Mode       int64
	UID, GID   int
	ModTime    string
}

// readLayer lists a layer's tar entries and returns the content of file.
func readLayer(t *testing.T, l v1.Layer, file string) ([]tarEntry, []byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var es []tarEntry
	var content []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, tarEntry{Name: h.Name, Link: h.Linkname, Mode: h.Mode, UID: h.Uid, GID: h.Gid, ModTime: h.ModTime.UTC().Format("2006-01-02")})
		if h.Name == file {
			if content, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return es, content
}

func TestBusyboxLayer(t *testing.T) {
	l := BusyboxLayer(t)
	es, bb := readLayer(t, l, "bin/busybox")
	host, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bb, host) {
		t.Errorf("bin/busybox differs from %s (%d bytes, want %d)", BusyboxPath, len(bb), len(host))
	}
	byName := map[string]tarEntry{}
	for _, e := range es {
		byName[e.Name] = e
		if e.UID != 0 || e.GID != 0 || e.ModTime != "2000-01-01" {
			t.Errorf("entry %s: owner %d:%d, date %s; want 0:0, 2000-01-01", e.Name, e.UID, e.GID, e.ModTime)
		}
	}
	tests := []struct {
		name string
		want tarEntry
	}{
		{"bin/sh", tarEntry{Name: "bin/sh", Link: "busybox", Mode: 0o777}},
		{"bin/ls", tarEntry{Name: "bin/ls", Link: "busybox", Mode: 0o777}},
		{"bin/cat", tarEntry{Name: "bin/cat", Link: "busybox", Mode: 0o777}},
		{"bin/echo", tarEntry{Name: "bin/echo", Link: "busybox", Mode: 0o777}},
		{"bin/busybox", tarEntry{Name: "bin/busybox", Mode: 0o755}},
		{"tmp/", tarEntry{Name: "tmp/", Mode: 0o1777}},
		{"root/", tarEntry{Name: "root/", Mode: 0o700}},
		{"etc/passwd", tarEntry{Name: "etc/passwd", Mode: 0o644}},
		{"etc/group", tarEntry{Name: "etc/group", Mode: 0o644}},
	}
	for _, tc := range tests {
		got := byName[tc.name]
		got.UID, got.GID, got.ModTime = 0, 0, ""
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("entry %s (-want +got):\n%s", tc.name, diff)
		}
	}
	_, passwd := readLayer(t, l, "etc/passwd")
	for _, want := range []string{"root:x:0:0:", "app:x:1000:1000:", "nobody:x:65534:65534:"} {
		if !strings.Contains(string(passwd), want) {
			t.Errorf("/etc/passwd lacks %q:\n%s", want, passwd)
		}
	}
	if mt, _ := l.MediaType(); mt != types.OCILayer {
		t.Errorf("media type %s, want %s", mt, types.OCILayer)
	}

	d1, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := BusyboxLayer(t).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("two BusyboxLayer digests differ: %s, %s", d1, d2)
	}
	// The memoized bytes must give the same digest as a fresh build.
	fresh, err := tarGzip(busyboxEntries(t, host), -1)
	if err != nil {
		t.Fatal(err)
	}
	if d3, err := bytesLayer(t, fresh).Digest(); err != nil || d3 != d1 {
		t.Errorf("fresh build digest %s (%v), want %s", d3, err, d1)
	}
}

// busyboxEntries re-reads the memoized layer's entries with their content,
// to rebuild it from scratch.
func busyboxEntries(t *testing.T, bb []byte) []entry {
	t.Helper()
	es, _ := readLayer(t, BusyboxLayer(t), "")
	var out []entry
	for _, e := range es {
		x := entry{name: e.Name, mode: e.Mode, link: e.Link, typ: tar.TypeReg}
		switch {
		case strings.HasSuffix(e.Name, "/"):
			x.typ = tar.TypeDir
		case e.Link != "":
			x.typ = tar.TypeSymlink
		case e.Name == "bin/busybox":
			x.data = bb
		case e.Name == "etc/passwd":
			x.data = []byte(Passwd)
		case e.Name == "etc/group":
			x.data = []byte(Group)
		}
		out = append(out, x)
	}
	return out
}

func TestBusybox(t *testing.T) {
	img := Busybox(t)
	Check(t, img)

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		OS, Arch  string
		Env, Cmd  []string
		CreatedBy string
	}{cf.OS, cf.Architecture, cf.Config.Env, cf.Config.Cmd, cf.History[0].CreatedBy}
	want := struct {
		OS, Arch  string
		Env, Cmd  []string
		CreatedBy string
	}{"linux", runtime.GOARCH, []string{BusyboxPathEnv}, []string{"sh"}, BusyboxCreatedBy}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("media types %s, %s, %s; want OCI", m.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
	}
	d1, _ := img.Digest()
	d2, _ := Busybox(t).Digest()
	if d1 != d2 {
		t.Errorf("two Busybox digests differ: %s, %s", d1, d2)
	}
}

func TestRandomLayer(t *testing.T) {
	digest := func(seed int64, size int) v1.Hash {
		l := RandomLayer(t, seed, size)
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		size int
	}{{0}, {1000}, {3<<20 + 5}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			if first, again := digest(1, tc.size), digest(1, tc.size); first != again {
				t.Error("same seed and size give different digests")
			}
			if digest(1, tc.size) == digest(2, tc.size) {
				t.Error("different seeds give the same digest")
			}
			l := RandomLayer(t, 1, tc.size)
			es, _ := readLayer(t, l, "")
			var total int
			rc, _ := l.Uncompressed()
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				total += int(h.Size)
			}
			rc.Close()
			if total != tc.size {
				t.Errorf("content size %d in %d entries, want %d", total, len(es), tc.size)
			}
			if size, _ := l.Size(); int(size) < tc.size {
				t.Errorf("compressed size %d < content size %d: not incompressible", size, tc.size)
			}
		})
	}
}

func TestPushPull(t *testing.T) {
	reg := Registry(t)
	tests := []struct {
		name string
		img  v1.Image
	}{
		{"busybox", Busybox(t)},
		{"busybox plus random", mustAppend(t, Busybox(t), RandomLayer(t, 7, 100_000))},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Check(t, tc.img)
			ref := fmt.Sprintf("%s/test/img%d:latest", reg, i)
			d := Push(t, tc.img, ref)
			want, _ := tc.img.Digest()
			if d != want {
				t.Errorf("Push returned %s, want %s", d, want)
			}
			pulled := Pull(t, ref)
			if got, err := pulled.Digest(); err != nil || got != want {
				t.Errorf("pulled digest %s (%v), want %s", got, err, want)
			}
			Check(t, pulled)
			byDigest := Pull(t, fmt.Sprintf("%s/test/img%d@%s", reg, i, want))
			if got, _ := byDigest.Digest(); got != want {
				t.Errorf("pulled by digest %s, want %s", got, want)
			}
		})
	}
}

func mustAppend(t *testing.T, img v1.Image, l v1.Layer) v1.Image {
	t.Helper()
	out, err := mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "random"}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recorder is a testing.TB that records Errorf calls.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheck(t *testing.T) {
	good := Busybox(t)
	withConfig := func(edit func(*v1.ConfigFile)) v1.Image {
		cf, err := good.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		edit(cf)
		img, err := mutate.ConfigFile(good, cf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	tests := []struct {
		name    string
		img     v1.Image
		wantErr string // "" for none
	}{
		{"valid", good, ""},
		{"valid with empty-layer history", withConfig(func(cf *v1.ConfigFile) {
			cf.History = append(cf.History, v1.History{CreatedBy: "ENV A=1", EmptyLayer: true})
		}), ""},
		{"history too short", withConfig(func(cf *v1.ConfigFile) { cf.History = nil }),
			"history has 0 non-empty-layer entries for 1 layers"},
		{"history too long", withConfig(func(cf *v1.ConfigFile) {
			cf.History = append(cf.History, v1.History{CreatedBy: "RUN x"})
		}), "history has 2 non-empty-layer entries for 1 layers"},
		{"wrong diff ID", withConfig(func(cf *v1.ConfigFile) {
			cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
		}), "is invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Check(r, tc.img)
			if tc.wantErr == "" {
				if len(r.errs) != 0 {
					t.Errorf("Check failed a valid image: %q", r.errs)
				}
				return
			}
			if len(r.errs) == 0 || !strings.Contains(strings.Join(r.errs, "\n"), tc.wantErr) {
				t.Errorf("Check errors = %q, want one containing %q", r.errs, tc.wantErr)
			}
		})
	}
}
