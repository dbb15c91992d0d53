package e2e

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/output"
)

// platformSetup starts docker-registry and pushes a busybox index of
// linux/amd64 (the host's busybox-static) and linux/arm64 (Debian's arm64
// busybox-static) to it.
func platformSetup(t *testing.T) (reg, base string) {
	t.Helper()
	imagetest.Require(t, "root", "runc", "busybox-arm64", "qemu-arm64")
	reg = startRegistry(t, "")
	base = reg + "/base/multi:1"
	imagetest.PushIndex(t, imagetest.BusyboxIndex(t, "amd64", "arm64"), base)
	return reg, base
}

// platformDockerfile has a stage built once on the build platform whose
// output both target platforms copy, and a RUN per target platform that
// records what the kernel (under QEMU for arm64) says it runs on.
const platformDockerfile = `FROM --platform=$BUILDPLATFORM {{BASE}} AS tools
ARG BUILDPLATFORM
RUN echo "tool built on $(uname -m) for $BUILDPLATFORM" > /tool
FROM {{BASE}}
ARG TARGETPLATFORM TARGETARCH
COPY --from=tools /tool /tool
RUN uname -m > /arch && echo "$TARGETPLATFORM $TARGETARCH" > /target
`

// fileIn returns the content of path in img's layers (last one wins).
func fileIn(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s not in the image", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == strings.TrimPrefix(path, "/") {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

// pulledIndex reads the index at ref and returns its images by
// architecture, each checked by validate.Image.
func pulledIndex(t *testing.T, ref string) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("reading index %s: %v", ref, err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("%s has media type %s, want an OCI index", ref, mt)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s image: %v", d.Platform.Architecture, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != d.Platform.OS || cf.Architecture != d.Platform.Architecture {
			t.Errorf("index says %s/%s, config says %s/%s", d.Platform.OS, d.Platform.Architecture, cf.OS, cf.Architecture)
		}
		out[d.Platform.Architecture] = img
	}
	return idx, out
}

// TestPlatformBuild: a two-platform build pushes one index whose arm64
// image's RUN ran under QEMU (uname -m says aarch64) and whose amd64 image's
// ran natively (x86_64); the $BUILDPLATFORM stage ran once for both; the
// metadata file names the index.
func TestPlatformBuild(t *testing.T) {
	reg, base := platformSetup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(platformDockerfile, "{{BASE}}", base)})
	state := filepath.Join(t.TempDir(), "state")
	md := filepath.Join(t.TempDir(), "md.json")
	tag := reg + "/app/multi:1"
	r := mustKiln(t, state, nil, "build", "--progress", "plain", "--platform", "linux/amd64,linux/arm64",
		"--annotation", "all=1", "--annotation", "manifest[linux/aarch64]:arm=only", "--annotation", "index:idx=i",
		"--annotation", "manifest-descriptor:desc=d",
		"--push", "-t", tag, "--metadata-file", md, ctxDir)

	idx, imgs := pulledIndex(t, tag)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.Annotations["idx"] != "i" {
		t.Errorf("index annotations %v, want idx=i", im.Annotations)
	}
	for _, d := range im.Manifests {
		if d.Annotations["desc"] != "d" {
			t.Errorf("%s descriptor annotations %v, want desc=d", d.Platform.Architecture, d.Annotations)
		}
	}
	for arch, want := range map[string]map[string]string{"amd64": {"all": "1"}, "arm64": {"all": "1", "arm": "only"}} {
		m, err := imgs[arch].Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, m.Annotations); diff != "" {
			t.Errorf("%s manifest annotations (-want +got):\n%s", arch, diff)
		}
	}
	if len(imgs) != 2 || imgs["amd64"] == nil || imgs["arm64"] == nil {
		t.Fatalf("index has images for %v, want amd64 and arm64", keys(imgs))
	}
	for arch, want := range map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"} {
		if got := fileIn(t, imgs[arch], "/arch"); got != want {
			t.Errorf("%s image: uname -m wrote %q, want %q", arch, got, want)
		}
		if got, want := fileIn(t, imgs[arch], "/target"), "linux/"+arch+" "+arch+"\n"; got != want {
			t.Errorf("%s image: TARGETPLATFORM TARGETARCH = %q, want %q", arch, got, want)
		}
		if got, want := fileIn(t, imgs[arch], "/tool"), "tool built on x86_64 for linux/amd64\n"; got != want {
			t.Errorf("%s image: /tool = %q, want %q (the build platform's stage)", arch, got, want)
		}
	}
	if n := strings.Count(r.stderr, "RUN echo \"tool built on"); n == 0 {
		t.Errorf("no progress line for the tools RUN:\n%s", r.stderr)
	}
	meta := readSummary(t, md)
	// Per platform: the tools RUN, the COPY and the RUN; the tools RUN
	// runs once (for amd64) and is a hit for arm64.
	if meta.Summary.Ran != 5 || meta.Summary.Cached != 1 || meta.Summary.Steps != 6 {
		t.Errorf("summary steps/ran/cached = %d/%d/%d, want 6/5/1 (the BUILDPLATFORM stage runs once)",
			meta.Summary.Steps, meta.Summary.Ran, meta.Summary.Cached)
	}
	// --no-cache reruns every step, the BUILDPLATFORM stage still once.
	mustKiln(t, state, nil, "build", "--progress", "plain", "--platform", "linux/amd64,linux/arm64", "--no-cache",
		"--metadata-file", md+".nc", ctxDir)
	if nc := readSummary(t, md+".nc"); nc.Summary.Ran != 5 || nc.Summary.Cached != 1 {
		t.Errorf("--no-cache: ran/cached = %d/%d, want 5/1", nc.Summary.Ran, nc.Summary.Cached)
	}
	want, _ := idx.Digest()
	if meta.Digest != want.String() || strings.TrimSpace(r.stdout) != want.String() {
		t.Errorf("metadata digest %s, stdout %q, want the index digest %s", meta.Digest, r.stdout, want)
	}
	var desc struct {
		D v1.Descriptor `json:"containerimage.descriptor"`
	}
	b, _ := os.ReadFile(md)
	if err := json.Unmarshal(b, &desc); err != nil {
		t.Fatal(err)
	}
	if desc.D.MediaType != types.OCIImageIndex || desc.D.Digest != want {
		t.Errorf("containerimage.descriptor = %+v, want the index's", desc.D)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestPlatformOutputs: with two platforms, type=oci holds one index (one
// manifest per platform), type=local writes DIR/linux_amd64 and
// DIR/linux_arm64, and type=docker is refused before any step runs.
func TestPlatformOutputs(t *testing.T) {
	_, base := platformSetup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(platformDockerfile, "{{BASE}}", base)})
	state := filepath.Join(t.TempDir(), "state")
	out := t.TempDir()
	ociTar, localDir := filepath.Join(out, "img.oci.tar"), filepath.Join(out, "rootfs")
	r := mustKiln(t, state, nil, "build", "--progress", "plain", "--platform", "linux/arm64,linux/amd64",
		"-o", "type=oci,dest="+ociTar, "-o", "type=local,dest="+localDir, "-t", "app:v1", ctxDir)

	f, err := os.Open(ociTar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	untar(t, f, dir)
	lay, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lay.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json = %+v, want one entry: the image index", top.Manifests)
	}
	if got := top.Manifests[0].Digest.String(); got != strings.TrimSpace(r.stdout) {
		t.Errorf("index.json points at %s, kiln printed %s", got, r.stdout)
	}
	if got := top.Manifests[0].Annotations[output.AnnotationRefName]; got != "v1" {
		t.Errorf("ref name annotation %q, want v1", got)
	}
	idx, err := lay.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, d := range im.Manifests {
		order = append(order, d.Platform.OS+"/"+d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: %v", d.Platform.Architecture, err)
		}
		want := map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"}[d.Platform.Architecture]
		if got := fileIn(t, img, "/arch"); got != want {
			t.Errorf("oci %s image: /arch = %q, want %q", d.Platform.Architecture, got, want)
		}
	}
	if strings.Join(order, ",") != "linux/arm64,linux/amd64" {
		t.Errorf("index platforms %v, want linux/arm64,linux/amd64 (the --platform order)", order)
	}
	for dir, want := range map[string]string{"linux_amd64": "x86_64\n", "linux_arm64": "aarch64\n"} {
		if got := readFile(t, filepath.Join(localDir, dir, "arch")); got != want {
			t.Errorf("local %s/arch = %q, want %q", dir, got, want)
		}
	}

	bad := kiln(t, state, nil, "build", "--progress", "plain", "--platform", "linux/amd64,linux/arm64",
		"-o", "type=docker,dest="+filepath.Join(out, "d.tar"), ctxDir)
	if bad.code != 2 || !strings.Contains(bad.stderr, "type=docker holds one image, not 2 platforms") {
		t.Errorf("type=docker with two platforms: exit %d, stderr:\n%s", bad.code, bad.stderr)
	}
	if strings.Contains(bad.stderr, "DONE") || strings.Contains(bad.stderr, "CACHED") {
		t.Errorf("type=docker with two platforms did work before failing:\n%s", bad.stderr)
	}
}

// TestPlatformMissingBinfmt: without a binfmt_misc handler for arm64 (kiln
// pointed at an empty binfmt directory) an arm64 build with RUN fails
// before any step with one line saying how to enable emulation; a build
// for the host's platform does not need one.
func TestPlatformMissingBinfmt(t *testing.T) {
	_, base := platformSetup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(platformDockerfile, "{{BASE}}", base)})
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"KILN_BINFMT_DIR=" + t.TempDir()}
	r := kiln(t, state, env, "build", "--progress", "plain", "--platform", "linux/amd64,linux/arm64", ctxDir)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
	}
	msg := strings.TrimSpace(r.stderr)
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "RUN for linux/arm64 needs QEMU user emulation: no binfmt_misc handler with the F (fix binary) flag for arm64") ||
		!strings.Contains(msg, "apt-get install qemu-user-static") {
		t.Errorf("stderr is not the one-line emulation error:\n%s", r.stderr)
	}
	mustKiln(t, state, env, "build", "--progress", "plain", "--platform", "linux/amd64", ctxDir)

	show := mustKiln(t, state, env, "binfmt")
	if !strings.Contains(show.stdout, "linux/arm64\tno handler") || !strings.Contains(show.stdout, "linux/amd64\tnative") {
		t.Errorf("kiln binfmt with an empty dir:\n%s", show.stdout)
	}
	show = mustKiln(t, state, nil, "binfmt")
	if !strings.Contains(show.stdout, "linux/arm64\temulated: ") {
		t.Errorf("kiln binfmt on this machine (which has the arm64 handler):\n%s", show.stdout)
	}

	// kiln binfmt --install writes qemu-user-static's handlers, with the F
	// flag, to the register file of the binfmt dir it is pointed at (a
	// stand-in here: the test must not change the machine's handlers).
	fake := t.TempDir()
	for _, f := range []string{"status", "register"} {
		if err := os.WriteFile(filepath.Join(fake, f), []byte(map[string]string{"status": "enabled\n"}[f]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inst := mustKiln(t, state, []string{"KILN_BINFMT_DIR=" + fake}, "binfmt", "--install")
	if !regexp.MustCompile(`(?m)^qemu-aarch64\tarm64\t\S+\tregistered$`).MatchString(inst.stdout) {
		t.Errorf("kiln binfmt --install did not register qemu-aarch64:\n%s", inst.stdout)
	}
	reg, err := os.ReadFile(filepath.Join(fake, "register"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^:qemu-aarch64:M::\\x7f\\x45\\x4c\\x46[^\n]*:[A-Z]*F[A-Z]*$`).Match(reg) {
		t.Errorf("register file lacks the qemu-aarch64 line with the F flag:\n%s", reg)
	}
	if strings.Contains(string(reg), ":qemu-x86_64:") {
		t.Errorf("--install registered a handler for the host's own architecture:\n%s", reg)
	}
}

// platformWarmDockerfile has only the target stage: inline cache holds
// the final image's chain only (mode=min), which is all it needs.
const platformWarmDockerfile = `FROM {{BASE}}
ARG TARGETARCH
RUN uname -m > /arch
RUN echo "$TARGETARCH $(cat /arch)" > /both
`

// TestPlatformCaches: every cache backend keeps the records of both
// platforms: a two-platform build exports, a new state dir rebuilds from
// the cache alone and runs no step on either platform, giving the same
// index. Inline cache goes into each platform's image config.
func TestPlatformCaches(t *testing.T) {
	reg, base := platformSetup(t)
	full := t.TempDir()
	writeFiles(t, full, map[string]string{"Dockerfile": strings.ReplaceAll(platformDockerfile, "{{BASE}}", base)})
	single := t.TempDir()
	writeFiles(t, single, map[string]string{"Dockerfile": strings.ReplaceAll(platformWarmDockerfile, "{{BASE}}", base)})
	const token = "e2e-platform-token"
	srv := startCacheServer(t, filepath.Join(t.TempDir(), "entries"), "--token", token)
	localCache := filepath.Join(t.TempDir(), "cache")
	plat := []string{"--platform", "linux/amd64,linux/arm64"}
	tests := []struct {
		name     string
		ctxDir   string
		env      []string
		to, from []string
	}{
		{"registry", full, nil, []string{"--cache-to", "type=registry,mode=max,ref=" + reg + "/cache/multi:1"},
			[]string{"--cache-from", "type=registry,ref=" + reg + "/cache/multi:1"}},
		{"local", full, nil, []string{"--cache-to", "type=local,mode=max,dest=" + localCache},
			[]string{"--cache-from", "type=local,src=" + localCache}},
		{"gha", full, srv.env(2, token), []string{"--cache-to", "type=gha,mode=max,scope=multi"},
			[]string{"--cache-from", "type=gha,scope=multi"}},
		{"registry min", single, nil, []string{"--cache-to", "type=registry,ref=" + reg + "/cache/multi:min"},
			[]string{"--cache-from", "type=registry,ref=" + reg + "/cache/multi:min"}},
		{"local min", single, nil, []string{"--cache-to", "type=local,dest=" + localCache + "-min"},
			[]string{"--cache-from", "type=local,src=" + localCache + "-min"}},
		{"inline", single, nil, []string{"--cache-to", "type=inline", "--push", "-t", reg + "/app/inline:1"},
			// The warm build writes inline cache too, so its images match.
			[]string{"--cache-from", "type=registry,ref=" + reg + "/app/inline:1", "--cache-to", "type=inline", "--push", "-t", reg + "/app/inline:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append(tt.env, "SOURCE_DATE_EPOCH=1700000000")
			cold, s0 := cacheBuild(t, tt.ctxDir, env, append(slices.Clone(plat), tt.to...)...)
			if s0.Summary.Ran == 0 {
				t.Fatalf("the cold build ran nothing:\n%s", cold.stderr)
			}
			warm, s1 := cacheBuild(t, tt.ctxDir, env, append(slices.Clone(plat), tt.from...)...)
			if got := ranSteps(warm.stderr); len(got) != 0 || s1.Summary.Ran != 0 {
				t.Errorf("the warm build from %s ran steps %v (summary ran %d):\n%s", tt.name, got, s1.Summary.Ran, warm.stderr)
			}
			if s1.Summary.Cached != s0.Summary.Steps {
				t.Errorf("warm build: %d cached, want all %d steps of both platforms", s1.Summary.Cached, s0.Summary.Steps)
			}
			if s1.Digest != s0.Digest {
				t.Errorf("warm index digest %s, cold %s", s1.Digest, s0.Digest)
			}
		})
	}
	// Each platform's image config carries its own records.
	_, imgs := pulledIndex(t, reg+"/app/inline:1")
	for arch, img := range imgs {
		raw, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), `"kiln.cache.v1"`) {
			t.Errorf("the %s image config has no inline cache", arch)
		}
	}
}
