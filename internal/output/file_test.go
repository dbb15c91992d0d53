package output

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// blobLayer is a compressed layer whose bytes are data, or the file at
// path when path is set (as the state dir's layers are); size is what it
// declares.
type blobLayer struct {
	data   []byte
	path   string
	size   int64
	digest v1.Hash
	diffID v1.Hash
	mt     types.MediaType
}

func (l blobLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l blobLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l blobLayer) Size() (int64, error)                { return l.size, nil }
func (l blobLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l blobLayer) Compressed() (io.ReadCloser, error) {
	if l.path != "" {
		return os.Open(l.path)
	}
	return io.NopCloser(bytes.NewReader(l.data)), nil
}

// imageOf builds an image of random's layers, as files in dir or (dir "")
// as bytes; grow makes each declared size differ from the bytes by grow.
func imageOf(t *testing.T, random v1.Image, dir string, grow int64) v1.Image {
	t.Helper()
	ls, err := random.Layers()
	if err != nil {
		t.Fatal(err)
	}
	img := empty.Image
	for i, rl := range ls {
		rc, _ := rl.Compressed()
		data, _ := io.ReadAll(rc)
		rc.Close()
		d, _ := rl.Digest()
		diff, _ := rl.DiffID()
		bl := blobLayer{data: data, size: int64(len(data)) + grow, digest: d, diffID: diff, mt: types.OCILayer}
		if dir != "" {
			bl.path = filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(bl.path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := partial.CompressedToLayer(bl)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// TestWriteOCIFileLayers: layers that are files are written around the
// tar writer (copied file to file in the kernel), and the tar holds the
// very bytes the tar writer makes of the same layers read as streams; a
// file of another size than its layer declares is refused.
func TestWriteOCIFileLayers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	random := randomImage(t, "")
	files := imageOf(t, random, t.TempDir(), 0)
	streams := imageOf(t, random, "", 0)

	dest := filepath.Join(t.TempDir(), "out.tar")
	if err := WriteOCI(ctx, files, []string{"app:v1"}, dest); err != nil {
		t.Fatalf("WriteOCI: %v", err)
	}
	var want bytes.Buffer
	if err := WriteOCITar(ctx, &want, streams, []string{"app:v1"}); err != nil {
		t.Fatalf("WriteOCITar: %v", err)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the tar of file layers (%d bytes) differs from the tar writer's (%d bytes)", len(got), want.Len())
	}
	idx, err := layout.ImageIndexFromPath(untar(t, dest))
	if err != nil {
		t.Fatalf("ImageIndexFromPath: %v", err)
	}
	im, _ := idx.IndexManifest()
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("validate.Image: %v", err)
	}

	for _, grow := range []int64{-1, 1} {
		bad := imageOf(t, random, t.TempDir(), grow)
		err := WriteOCITar(ctx, io.Discard, bad, nil)
		if err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("WriteOCITar of a layer file %+d bytes off its size: %v, want an error", -grow, err)
		}
	}
}
