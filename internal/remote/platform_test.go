package remote

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/plan"
)

// platformImage is a random image whose config says p.
func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img := randomImage(t)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImageForPicksPlatform(t *testing.T) {
	ctx := context.Background()
	var manifestGets atomic.Int64
	host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
				manifestGets.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	amd := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	imgs := map[string]v1.Image{"amd64": platformImage(t, amd), "arm64": platformImage(t, arm)}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: imgs["amd64"], Descriptor: v1.Descriptor{Platform: &amd}},
		mutate.IndexAddendum{Add: imgs["arm64"], Descriptor: v1.Descriptor{Platform: &arm}})
	ref := host + "/multi:1"
	if err := c.PushIndex(ctx, idx, []string{ref}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ platform, want string }{
		{"linux/amd64", "amd64"}, {"linux/x86_64", "amd64"}, {"linux/arm64", "arm64"}, {"linux/aarch64", "arm64"}, {"linux/arm64/v8", "arm64"},
	} {
		p, err := plan.ParsePlatform(tt.platform)
		if err != nil {
			t.Fatal(err)
		}
		manifestGets.Store(0)
		_, h, err := c.ImageFor(ctx, ref, p)
		if n := manifestGets.Load(); n != 2 {
			t.Errorf("%s: %d manifest GETs, want 2 (the index, the platform's)", tt.platform, n)
		}
		if err != nil {
			t.Errorf("%s: %v", tt.platform, err)
			continue
		}
		if want := mustDigest(t, imgs[tt.want]); h != want {
			t.Errorf("%s: got %s, want the %s image %s", tt.platform, h, tt.want, want)
		}
	}
	_, _, err = c.ImageFor(ctx, ref, v1.Platform{OS: "linux", Architecture: "s390x"})
	if err == nil || !strings.Contains(err.Error(), "no manifest for linux/s390x in the index (it has: linux/amd64, linux/arm64)") {
		t.Errorf("s390x: error = %v, want one naming the platforms the index has", err)
	}

	// A single image is used for its own platform only.
	single := host + "/single:1"
	r, _ := c.ParseReference(single)
	if err := ggcrremote.Write(r, imgs["arm64"]); err != nil {
		t.Fatal(err)
	}
	manifestGets.Store(0)
	if _, _, err := c.ImageFor(ctx, single, arm); err != nil {
		t.Errorf("single arm64 image for arm64: %v", err)
	}
	if n := manifestGets.Load(); n != 1 {
		t.Errorf("single image: %d manifest GETs, want 1", n)
	}
	_, _, err = c.ImageFor(ctx, single, amd)
	if err == nil || !strings.Contains(err.Error(), "is for linux/arm64 only, not linux/amd64") {
		t.Errorf("single arm64 image for amd64: error = %v", err)
	}
}
