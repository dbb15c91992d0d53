package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// untar extracts the plain tar r into dir (files and directories only, as
// an OCI layout tar holds).
func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
			t.Fatalf("tar entry %q climbs out of %s", h.Name, dir)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected tar entry %q of type %c in an OCI layout tar", h.Name, h.Typeflag)
		}
	}
}

// ociImage reads the OCI layout tar r with go-containerregistry's layout
// package and returns its one image and the index entry's annotations.
func ociImage(t *testing.T, r io.Reader) (v1.Image, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	untar(t, r, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("reading OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1: %+v", len(im.Manifests), im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("reading image %s from the layout: %v", im.Manifests[0].Digest, err)
	}
	return img, im.Manifests[0].Annotations
}

func ociImageFile(t *testing.T, path string) (v1.Image, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ociImage(t, f)
}

// layerTars returns every layer of img uncompressed.
func layerTars(t *testing.T, img v1.Image) [][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		b, err := readAllClose(rc)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}

// tarHeaders lists the headers of the tar b.
func tarHeaders(t *testing.T, b []byte) []*tar.Header {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatalf("reading layer tar: %v", err)
		}
		hs = append(hs, h)
	}
}

// tree describes every entry under dir, one line per path: type, mode,
// owner, and link target or content hash. mtimes are left out.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffTrees returns the differences between two trees, sorted.
func diffTrees(a, b map[string]string) []string {
	var d []string
	for k, va := range a {
		if vb, ok := b[k]; !ok {
			d = append(d, "only in first: "+k+" "+va)
		} else if va != vb {
			d = append(d, fmt.Sprintf("%s: %s vs %s", k, va, vb))
		}
	}
	for k, vb := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "only in second: "+k+" "+vb)
		}
	}
	sort.Strings(d)
	return d
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%v", err)
		return ""
	}
	return string(b)
}

func lstat(t *testing.T, p string) (os.FileInfo, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%v", err)
		return nil, nil
	}
	return fi, fi.Sys().(*syscall.Stat_t)
}

func assertAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (err %v), want it absent", p, err)
	}
}

const outputsDockerfile = `FROM {{BASE}}
RUN mkdir -p /data/sub && echo hello > /data/sub/f && chmod 0640 /data/sub/f && chown 1000:1000 /data/sub/f && \
    ln -s sub/f /data/rel && ln -s /etc/passwd /data/abs && chmod 0700 /data/sub
COPY --chmod=0755 tool.sh /usr/local/bin/tool
CMD ["/usr/local/bin/tool"]
`

// TestOutputs: one build writes the OCI, docker and local outputs; a
// second writes the OCI tar to stdout. Each holds the image kiln printed.
func TestOutputs(t *testing.T) {
	reg, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile": strings.ReplaceAll(outputsDockerfile, "{{BASE}}", base),
		"tool.sh":    "#!/bin/sh\necho tool\n",
	})
	state := filepath.Join(t.TempDir(), "state")
	outDir := t.TempDir()
	ociTar := filepath.Join(outDir, "img.oci.tar")
	dockerTar := filepath.Join(outDir, "img.docker.tar")
	localDir := filepath.Join(outDir, "rootfs")
	tag := reg + "/app/out:v1"
	md := filepath.Join(outDir, "md.json")

	r := mustKiln(t, state, nil, "build", "--progress", "plain", "-t", tag, "--metadata-file", md,
		"-o", "type=oci,dest="+ociTar, "-o", "type=docker,dest="+dockerTar, "-o", "type=local,dest="+localDir, ctxDir)
	digest := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("stdout %q is not a digest", r.stdout)
	}
	meta := readSummary(t, md)
	if meta.Digest != digest {
		t.Errorf("metadata digest %s, stdout %s", meta.Digest, digest)
	}

	// OCI layout tar.
	img, ann := ociImageFile(t, ociTar)
	imagetest.Check(t, img)
	if d, _ := img.Digest(); d.String() != digest {
		t.Errorf("OCI output holds %s, kiln printed %s", d, digest)
	}
	if ann["org.opencontainers.image.ref.name"] != "v1" || ann["io.containerd.image.name"] != tag {
		t.Errorf("OCI index annotations = %v, want ref.name v1 and image.name %s", ann, tag)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cf.Config.Cmd, " ") != "/usr/local/bin/tool" {
		t.Errorf("OCI image Cmd = %v", cf.Config.Cmd)
	}
	if fi, err := os.Stat(ociTar); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("OCI tar: %v, mode %v; want 0644", err, fi.Mode())
	}

	// docker load tar.
	tagRef, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	dimg, err := tarball.ImageFromPath(dockerTar, &tagRef)
	if err != nil {
		t.Fatalf("reading docker tar: %v", err)
	}
	imagetest.Check(t, dimg)
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(dockerTar) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != tag {
		t.Errorf("docker tar manifest.json = %+v, want RepoTags [%s]", m, tag)
	}
	dcfg, _ := dimg.ConfigName()
	if wantCfg, _ := img.ConfigName(); dcfg != wantCfg {
		t.Errorf("docker tar config %s, OCI config %s", dcfg, wantCfg)
	}
	if dl, _ := dimg.Layers(); len(dl) != 3 {
		t.Errorf("docker tar has %d layers, want 3 (base, RUN, COPY)", len(dl))
	}

	// Local directory: modes, owners, symlinks.
	if got := readFile(t, filepath.Join(localDir, "data/sub/f")); got != "hello\n" {
		t.Errorf("data/sub/f = %q", got)
	}
	if fi, st := lstat(t, filepath.Join(localDir, "data/sub/f")); fi != nil {
		if fi.Mode().Perm() != 0o640 || st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("data/sub/f: mode %v owner %d:%d, want 0640 1000:1000", fi.Mode(), st.Uid, st.Gid)
		}
	}
	if fi, _ := lstat(t, filepath.Join(localDir, "data/sub")); fi != nil && (!fi.IsDir() || fi.Mode().Perm() != 0o700) {
		t.Errorf("data/sub: mode %v, want a 0700 directory", fi.Mode())
	}
	for link, want := range map[string]string{"data/rel": "sub/f", "data/abs": "/etc/passwd", "bin/sh": "busybox"} {
		if got, err := os.Readlink(filepath.Join(localDir, link)); err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", link, got, err, want)
		}
	}
	if fi, st := lstat(t, filepath.Join(localDir, "usr/local/bin/tool")); fi != nil {
		if fi.Mode().Perm() != 0o755 || st.Uid != 0 {
			t.Errorf("tool: mode %v uid %d, want 0755 root", fi.Mode(), st.Uid)
		}
	}
	if fi, _ := lstat(t, filepath.Join(localDir, "tmp")); fi != nil && fi.Mode()&fs.ModeSticky == 0 {
		t.Errorf("tmp: mode %v, want the sticky bit kept", fi.Mode())
	}
	if got := readFile(t, filepath.Join(localDir, "etc/passwd")); got != imagetest.Passwd {
		t.Errorf("etc/passwd = %q", got)
	}

	// OCI tar on stdout: stdout is the tar only, the digest is in the
	// metadata, and the image is the same.
	md2 := filepath.Join(outDir, "md2.json")
	r2 := mustKiln(t, state, nil, "build", "--progress", "plain", "-t", tag, "--metadata-file", md2,
		"-o", "type=oci,dest=-", ctxDir)
	if strings.HasSuffix(r2.stdout, digest+"\n") || strings.HasPrefix(r2.stdout, "sha256:") {
		t.Errorf("the digest was printed on stdout with the tar")
	}
	simg, _ := ociImage(t, strings.NewReader(r2.stdout))
	imagetest.Check(t, simg)
	if d, _ := simg.Digest(); d.String() != digest {
		t.Errorf("OCI tar on stdout holds %s, want %s", d, digest)
	}
	if s := readSummary(t, md2); s.Digest != digest {
		t.Errorf("metadata of the stdout build: digest %s, want %s", s.Digest, digest)
	}
	if strings.Contains(r2.stderr, "oci-layout") {
		t.Errorf("the tar leaked into stderr")
	}
}

const sdeDockerfile = `FROM {{BASE}} AS build
RUN date +%s%N > /stamp && mkdir /out && echo built > /out/f
FROM {{BASE}}
COPY --from=build /out /out
RUN touch /now && echo fixed > /date
LABEL built=yes
`

// TestSourceDateEpoch: with SOURCE_DATE_EPOCH (environment or build arg),
// two cold builds a second apart in different state dirs give the same
// image; its config, history and layer entries carry the epoch.
func TestSourceDateEpoch(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	// The build stage's /stamp differs between builds, but only /out is
	// copied out of it: what reaches the image differs only in mtimes.
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(sdeDockerfile, "{{BASE}}", base)})
	const epoch = 1700000000
	want := time.Unix(epoch, 0).UTC()

	build := func(env []string, args ...string) (string, v1.Image) {
		t.Helper()
		tarPath := filepath.Join(t.TempDir(), "img.tar")
		all := append([]string{"build", "--progress", "plain", "--no-cache", "-o", "type=oci,dest=" + tarPath}, args...)
		r := mustKiln(t, filepath.Join(t.TempDir(), "state"), env, append(all, ctxDir)...)
		img, _ := ociImageFile(t, tarPath)
		return strings.TrimSpace(r.stdout), img
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"env", []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)}, nil},
		{"build-arg", []string{"SOURCE_DATE_EPOCH="}, []string{"--build-arg", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d1, img := build(tc.env, tc.args...)
			time.Sleep(1100 * time.Millisecond)
			d2, _ := build(tc.env, tc.args...)
			if d1 != d2 {
				t.Errorf("two builds with SOURCE_DATE_EPOCH gave %s and %s", d1, d2)
			}
			imagetest.Check(t, img)
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !cf.Created.Time.Equal(want) {
				t.Errorf("config created %v, want %v", cf.Created.Time, want)
			}
			for i, h := range cf.History {
				if h.Created.Time.After(want) {
					t.Errorf("history[%d] (%s) created %v, after the epoch", i, h.CreatedBy, h.Created.Time)
				}
			}
			for i, lt := range layerTars(t, img) {
				for _, h := range tarHeaders(t, lt) {
					if h.ModTime.After(want) {
						t.Errorf("layer %d: %s has mtime %v, after the epoch", i, h.Name, h.ModTime)
					}
				}
			}
		})
	}

	// Without it, the builds are stamped with the time they ran, so a
	// second apart they differ; this shows the check above can fail.
	d1, img := build([]string{"SOURCE_DATE_EPOCH="})
	time.Sleep(1100 * time.Millisecond)
	d2, _ := build([]string{"SOURCE_DATE_EPOCH="})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Created.Time.Equal(want) {
		t.Errorf("without SOURCE_DATE_EPOCH the config is still dated %v", want)
	}
	if d1 == d2 {
		t.Logf("without SOURCE_DATE_EPOCH two builds a second apart are identical (%s)", d1)
	}
}

const copySnapDockerfile = `FROM {{BASE}} AS build
RUN mkdir -p /out/sub && echo built > /out/sub/f && ln -s sub/f /out/link && \
    chmod 0640 /out/sub/f && chown 1000:1000 /out/sub/f && rm /bin/wget

FROM {{BASE}}
RUN rm /etc/group /bin/wget && mkdir -p /d/sub /d/keep && echo old > /d/sub/old && echo k > /d/keep/k && \
    echo extra >> /etc/passwd
RUN rm -r /d/sub && mkdir /d/sub && echo new > /d/sub/new && rm /d/keep/k && chmod 0711 /d/keep && \
    ln -s /d/sub/new /d/link
COPY --from=build /out /app
`

// TestCopySnapshotter: the copying snapshotter gives the same filesystem
// as overlayfs for a multi-stage build that deletes and replaces files of
// the base and of earlier layers.
func TestCopySnapshotter(t *testing.T) {
	imagetest.Require(t, "overlayfs")
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(copySnapDockerfile, "{{BASE}}", base)})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}

	build := func(extra ...string) (string, string, string) {
		state := filepath.Join(t.TempDir(), "state")
		out := filepath.Join(t.TempDir(), "rootfs")
		args := append([]string{"build", "--progress", "plain", "-o", "type=local,dest=" + out}, extra...)
		r := mustKiln(t, state, env, append(args, ctxDir)...)
		return strings.TrimSpace(r.stdout), out, state
	}
	dOverlay, overlay, stOverlay := build()
	dCopy, copied, stCopy := build("--copy-snapshots")

	// Each build used the snapshotter asked for: overlay keeps layer
	// trees (sn/sn/*/fs), the copying one layer tars (sn/sc/*/tar).
	for _, c := range []struct {
		state, dir, want, notWant string
	}{{stOverlay, "sn", "fs", "tar"}, {stCopy, "sc", "tar", "fs"}} {
		got, _ := filepath.Glob(filepath.Join(c.state, "sn", c.dir, "*", c.want))
		bad, _ := filepath.Glob(filepath.Join(c.state, "sn", "*", "*", c.notWant))
		if len(got) == 0 || len(bad) != 0 {
			t.Errorf("state %s: %d snapshots with %s, %d with %s; want some and none", c.state, len(got), c.want, len(bad), c.notWant)
		}
	}

	for _, d := range diffTrees(tree(t, overlay), tree(t, copied)) {
		t.Errorf("overlay vs copy: %s", d)
	}
	if dOverlay != dCopy {
		t.Logf("overlay and copy builds give different digests: %s vs %s", dOverlay, dCopy)
	}

	// And the filesystem is the right one.
	for _, p := range []string{"etc/group", "bin/wget", "d/sub/old", "d/keep/k"} {
		assertAbsent(t, filepath.Join(copied, p))
	}
	if got := readFile(t, filepath.Join(copied, "d/sub/new")); got != "new\n" {
		t.Errorf("d/sub/new = %q", got)
	}
	if got := readFile(t, filepath.Join(copied, "etc/passwd")); got != imagetest.Passwd+"extra\n" {
		t.Errorf("etc/passwd = %q", got)
	}
	if fi, _ := lstat(t, filepath.Join(copied, "d/keep")); fi != nil && fi.Mode().Perm() != 0o711 {
		t.Errorf("d/keep mode %v, want 0711", fi.Mode())
	}
	// (COPY --from without --chown gives 0:0 in kiln, so only the mode
	// carries over.)
	if fi, _ := lstat(t, filepath.Join(copied, "app/sub/f")); fi != nil && fi.Mode().Perm() != 0o640 {
		t.Errorf("app/sub/f: mode %v, want 0640", fi.Mode())
	}
	if got, err := os.Readlink(filepath.Join(copied, "app/link")); err != nil || got != "sub/f" {
		t.Errorf("app/link -> %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(copied, "bin/busybox")); err != nil {
		t.Errorf("the base's busybox is missing: %v", err)
	}
}
