package e2e

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/imagetest"
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
		"--push", "-t", tag, "--metadata-file", md, ctxDir)

	idx, imgs := pulledIndex(t, tag)
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
