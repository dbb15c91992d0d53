package imagetest

import (
	"io"
	"log"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// BusyboxPathEnv is the PATH in Busybox's config.
const BusyboxPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BusyboxCreatedBy is the history entry of Busybox's one layer.
const BusyboxCreatedBy = "imagetest: busybox-static"

// Busybox returns a linux/GOARCH image with OCI media types made of
// BusyboxLayer, with Env [BusyboxPathEnv], Cmd ["sh"], one history entry
// and creation time Epoch. It is deterministic, like its layer.
func Busybox(t testing.TB) v1.Image {
	t.Helper()
	layer := BusyboxLayer(t)
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: Epoch},
			CreatedBy: BusyboxCreatedBy,
		},
	})
	if err != nil {
		t.Fatalf("imagetest: appending busybox layer: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("imagetest: reading busybox config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Env = []string{BusyboxPathEnv}
	cf.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("imagetest: setting busybox config: %v", err)
	}
	return img
}

// BusyboxFor is Busybox for platform linux/amd64 (the host's busybox) or
// linux/arm64 (BusyboxArm64Layer); other architectures fail t.
func BusyboxFor(t testing.TB, arch string) v1.Image {
	t.Helper()
	var layer v1.Layer
	switch {
	case arch == runtime.GOARCH:
		layer = BusyboxLayer(t)
	case arch == "arm64":
		layer = BusyboxArm64Layer(t)
	default:
		t.Fatalf("imagetest: no busybox for %s", arch)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: BusyboxCreatedBy}})
	if err != nil {
		t.Fatalf("imagetest: appending busybox layer: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("imagetest: reading busybox config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Env = []string{BusyboxPathEnv}
	cf.Config.Cmd = []string{"sh"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatalf("imagetest: setting busybox config: %v", err)
	}
	return img
}

// BusyboxIndex is an OCI image index of BusyboxFor each of archs, each
// manifest's descriptor carrying its platform.
func BusyboxIndex(t testing.TB, archs ...string) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, a := range archs {
		p := v1.Platform{OS: "linux", Architecture: a}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: BusyboxFor(t, a), Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx
}

// PushIndex pushes idx to ref over plain HTTP and returns its digest.
func PushIndex(t testing.TB, idx v1.ImageIndex, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("imagetest: parsing %q: %v", ref, err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("imagetest: pushing index %s: %v", ref, err)
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Registry starts an in-process registry (go-containerregistry's
// pkg/registry, quiet) on 127.0.0.1 and returns its "host:port". It speaks
// plain HTTP and is closed when the test ends.
func Registry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Push pushes img to ref over plain HTTP (for the in-process or another
// loopback registry) and returns the manifest digest.
func Push(t testing.TB, img v1.Image, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("imagetest: parsing %q: %v", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("imagetest: pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("imagetest: digesting image for %s: %v", ref, err)
	}
	return d
}

// Pull returns the image at ref (a tag or digest), fetched over plain HTTP.
// Its layers are read from the registry when used, so the registry must
// outlive their use.
func Pull(t testing.TB, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("imagetest: parsing %q: %v", ref, err)
	}
	img, err := remote.Image(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("imagetest: pulling %s: %v", ref, err)
	}
	return img
}

// Check runs the invariants every image a test builds must hold, and fails
// t (without stopping it) with one message per broken one:
//
//   - go-containerregistry's validate.Image: manifest, config and layer
//     digests and sizes, diff IDs, and config↔layers agreement (it reads
//     every layer);
//   - the config's history has one non-empty-layer entry per layer.
func Check(t testing.TB, img v1.Image) {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Errorf("imagetest.Check: digesting image: %v", err)
		return
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("imagetest.Check: image %s is invalid:\n%v", d, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Errorf("imagetest.Check: image %s: reading config: %v", d, err)
		return
	}
	layers, err := img.Layers()
	if err != nil {
		t.Errorf("imagetest.Check: image %s: listing layers: %v", d, err)
		return
	}
	n := 0
	for _, h := range cf.History {
		if !h.EmptyLayer {
			n++
		}
	}
	if n != len(layers) {
		t.Errorf("imagetest.Check: image %s: history has %d non-empty-layer entries for %d layers", d, n, len(layers))
	}
}
