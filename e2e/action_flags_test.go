package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestBuildContextsAndAnnotations builds with named contexts of both kinds
// (a directory and docker-image://) used by FROM, COPY --from and RUN
// --mount from=, one overriding a stage of the same name, and with manifest
// annotations; the metadata file carries buildx's descriptor.
func TestBuildContextsAndAnnotations(t *testing.T) {
	_, base := setup(t)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	writeFiles(t, files, map[string]string{
		"hello.txt":     "hello from a named context\n",
		"sub/deep.txt":  "deep\n",
		"skip.txt":      "ignored\n",
		".dockerignore": "skip.txt\n",
	})
	ctxDir := filepath.Join(dir, "ctx")
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile": `FROM scratch AS files
COPY Dockerfile /wrong

FROM files AS tree

FROM basectx
COPY --from=files /hello.txt /from-copy.txt
COPY --from=tree /sub/deep.txt /from-stage.txt
RUN --mount=type=bind,from=files,target=/m cat /m/hello.txt /m/sub/deep.txt > /from-mount.txt; ls /m > /mount-list.txt
`,
	})
	out := filepath.Join(dir, "rootfs")
	oci := filepath.Join(dir, "img.tar")
	md := filepath.Join(dir, "md.json")
	state := filepath.Join(dir, "state")
	mustKiln(t, state, nil, "build", "--progress", "plain",
		"--build-context", "files="+files,
		"--build-context", "basectx=docker-image://"+base,
		"--annotation", "org.opencontainers.image.title=demo",
		"--annotation", "manifest:org.example.level=manifest",
		"-o", "type=local,dest="+out, "-o", "type=oci,dest="+oci,
		"--metadata-file", md, ctxDir)

	for p, want := range map[string]string{
		"from-copy.txt":  "hello from a named context\n",
		"from-stage.txt": "deep\n",
		"from-mount.txt": "hello from a named context\ndeep\n",
		"mount-list.txt": "hello.txt\nsub\n",
	} {
		if got := readFile(t, filepath.Join(out, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	assertAbsent(t, filepath.Join(out, "wrong"))
	if _, err := os.Stat(filepath.Join(out, "bin", "busybox")); err != nil {
		t.Errorf("FROM basectx (docker-image://) did not start from the busybox image: %v", err)
	}

	img, _ := ociImageFile(t, oci)
	imagetest.Check(t, img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"org.opencontainers.image.title": "demo", "org.example.level": "manifest"}
	if diff := cmp.Diff(want, m.Annotations); diff != "" {
		t.Errorf("manifest annotations (-want +got):\n%s", diff)
	}

	var meta struct {
		Digest     string `json:"containerimage.digest"`
		Descriptor struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
			Size      int64  `json:"size"`
		} `json:"containerimage.descriptor"`
	}
	if err := json.Unmarshal([]byte(readFile(t, md)), &meta); err != nil {
		t.Fatal(err)
	}
	dig, _ := img.Digest()
	raw, _ := img.RawManifest()
	if meta.Descriptor.Digest != dig.String() || meta.Digest != dig.String() ||
		meta.Descriptor.Size != int64(len(raw)) || meta.Descriptor.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("metadata descriptor = %+v (digest %s), want the manifest's %s, %d bytes, OCI manifest", meta.Descriptor, meta.Digest, dig, len(raw))
	}

	// A level kiln has no place for is refused, as BuildKit does for a
	// single-platform image.
	r := kiln(t, state, nil, "build", "--annotation", "index:org.example=1", ctxDir)
	if r.code != 2 || !strings.Contains(r.stderr, "index") {
		t.Errorf("index: annotation: exit %d, stderr %q; want 2 naming the level", r.code, r.stderr)
	}
}
