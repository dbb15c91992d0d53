package output

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func randomImage(t *testing.T, mt types.MediaType) v1.Image {
	t.Helper()
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	if mt != "" {
		img = mutate.MediaType(img, mt)
	}
	return img
}

// untar extracts a tar file into a new temp dir.
func untar(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
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
	}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestWriteOCI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		mediaType types.MediaType
		tags      []string
		wantAnn   []map[string]string
	}{
		{
			name: "two tags", mediaType: types.OCIManifestSchema1,
			tags: []string{"reg.example:5000/app:v1", "app"},
			wantAnn: []map[string]string{
				{AnnotationRefName: "v1", AnnotationImageName: "reg.example:5000/app:v1"},
				{AnnotationRefName: "latest", AnnotationImageName: "docker.io/library/app:latest"},
			},
		},
		{name: "untagged docker media types", wantAnn: []map[string]string{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := randomImage(t, tt.mediaType)
			dest := filepath.Join(t.TempDir(), "out.tar")
			if err := WriteOCI(ctx, img, tt.tags, dest); err != nil {
				t.Fatalf("WriteOCI: %v", err)
			}
			fi, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
			}
			idx, err := layout.ImageIndexFromPath(untar(t, dest))
			if err != nil {
				t.Fatalf("ImageIndexFromPath: %v", err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var gotAnn []map[string]string
			for _, d := range im.Manifests {
				gotAnn = append(gotAnn, d.Annotations)
				if d.Digest != digestOf(t, img) {
					t.Errorf("index entry digest = %s, want %s", d.Digest, digestOf(t, img))
				}
				got, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatalf("Image(%s): %v", d.Digest, err)
				}
				if err := validate.Image(got); err != nil {
					t.Errorf("validate.Image: %v", err)
				}
			}
			if diff := cmp.Diff(tt.wantAnn, gotAnn); diff != "" {
				t.Errorf("index annotations (-want +got):\n%s", diff)
			}

			// The writer form gives the same bytes: the tar is reproducible.
			var buf bytes.Buffer
			if err := WriteOCITar(ctx, &buf, img, tt.tags); err != nil {
				t.Fatalf("WriteOCITar: %v", err)
			}
			file, err := os.ReadFile(dest)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(file, buf.Bytes()) {
				t.Errorf("WriteOCITar bytes differ from WriteOCI's file")
			}
		})
	}
}

func TestWriteDocker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	img := randomImage(t, "")
	tests := []struct {
		name     string
		tags     []string
		wantTags []string
	}{
		{name: "tagged", tags: []string{"reg.example:5000/app:v1"}, wantTags: []string{"reg.example:5000/app:v1"}},
		{name: "untagged", tags: nil, wantTags: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "img.tar")
			if err := WriteDocker(ctx, img, tt.tags, dest); err != nil {
				t.Fatalf("WriteDocker: %v", err)
			}
			m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(dest) })
			if err != nil {
				t.Fatalf("LoadManifest: %v", err)
			}
			if len(m) != 1 {
				t.Fatalf("manifest.json has %d entries, want 1", len(m))
			}
			if diff := cmp.Diff(tt.wantTags, m[0].RepoTags); diff != "" {
				t.Errorf("RepoTags (-want +got):\n%s", diff)
			}
			var tag *name.Tag
			if len(tt.tags) > 0 {
				tg, err := name.NewTag(tt.tags[0])
				if err != nil {
					t.Fatal(err)
				}
				tag = &tg
			}
			got, err := tarball.ImageFromPath(dest, tag)
			if err != nil {
				t.Fatalf("ImageFromPath: %v", err)
			}
			if err := validate.Image(got); err != nil {
				t.Errorf("validate.Image: %v", err)
			}
			if g, w := digestOf(t, got), digestOf(t, img); g != w {
				t.Errorf("digest = %s, want %s", g, w)
			}
		})
	}
}

// brokenLayer fails when its bytes are read, like a lazy layer whose
// registry went away.
type brokenLayer struct{ v1.Layer }

func (brokenLayer) Compressed() (io.ReadCloser, error) { return nil, errors.New("blob fetch refused") }

func TestWriteIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good := randomImage(t, "")
	l, err := random.Layer(1024, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := mutate.AppendLayers(good, brokenLayer{l})
	if err != nil {
		t.Fatal(err)
	}
	writers := map[string]func(context.Context, v1.Image, []string, string) error{
		"oci":    WriteOCI,
		"docker": WriteDocker,
	}
	for name, write := range writers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dest := filepath.Join(dir, "out.tar")
			if err := os.WriteFile(dest, []byte("previous"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := write(ctx, bad, []string{"app:1"}, dest)
			if err == nil || !strings.Contains(err.Error(), "blob fetch refused") || !strings.Contains(err.Error(), dest) {
				t.Fatalf("write(broken image) = %v, want the layer error and the dest", err)
			}
			if b, _ := os.ReadFile(dest); string(b) != "previous" {
				t.Errorf("dest was modified by a failed write: %q", b)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("dir holds %d entries after a failed write, want only dest", len(entries))
			}
			if err := write(ctx, good, nil, "-"); err == nil || !strings.Contains(err.Error(), "stdout") {
				t.Errorf(`write(dest "-") = %v, want an error pointing to the writer form`, err)
			}
			if err := write(ctx, good, []string{"Bad Tag"}, dest); err == nil || !strings.Contains(err.Error(), "Bad Tag") {
				t.Errorf("write(bad tag) = %v, want an error naming the tag", err)
			}
		})
	}
}
