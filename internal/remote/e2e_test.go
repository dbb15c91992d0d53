package remote

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// startDockerRegistry runs the real distribution registry on a free
// 127.0.0.1 port and returns its HOST:PORT.
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	addr, _ := imagetest.DockerRegistry(t, "")
	return addr
}

func TestDockerRegistryE2E(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := startDockerRegistry(t)
	counter := &countingTransport{inner: http.DefaultTransport}
	c := newClient(t, Options{Transport: counter})
	img := randomImage(t)
	want := mustDigest(t, img)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	blobs := len(ls) + 1 // layers and config

	uploads := func() []string {
		return counter.matching(func(s string) bool {
			return strings.HasPrefix(s, "PATCH ") || (strings.HasPrefix(s, "PUT ") && strings.Contains(s, "/blobs/uploads/"))
		})
	}
	mounts := func() []string {
		return counter.matching(func(s string) bool {
			return strings.HasPrefix(s, "POST ") && strings.Contains(s, "mount=") && strings.Contains(s, "from=") && strings.HasSuffix(s, " 201")
		})
	}

	t.Run("push to two repositories", func(t *testing.T) {
		if err := c.Push(ctx, img, []string{reg + "/e2e/a:1", reg + "/e2e/a:2", reg + "/e2e/b:1"}); err != nil {
			t.Fatalf("Push: %v", err)
		}
		// Repository a gets every blob uploaded once (two PATCH+PUT each at
		// most); repository b mounts every layer from a.
		if got := len(mounts()); got != len(ls) {
			t.Errorf("cross-repo mounts = %d, want %d (one per layer)\nrequests: %v", got, len(ls), counter.matching(func(string) bool { return true }))
		}
		puts := counter.matching(func(s string) bool { return strings.HasPrefix(s, "PUT ") && strings.Contains(s, "/blobs/uploads/") })
		if got, max := len(puts), blobs+1; got > max {
			t.Errorf("blob uploads committed = %d, want at most %d (all blobs to a, the config to b)", got, max)
		}
	})

	t.Run("pull", func(t *testing.T) {
		for _, tag := range []string{reg + "/e2e/a:1", reg + "/e2e/b:1"} {
			got, h, err := c.Image(ctx, tag)
			if err != nil {
				t.Fatalf("Image(%s): %v", tag, err)
			}
			if h != want {
				t.Errorf("Image(%s) digest = %s, want %s", tag, h, want)
			}
			if err := validate.Image(got); err != nil {
				t.Errorf("validate.Image(%s): %v", tag, err)
			}
		}
	})

	t.Run("remote layers mount into a new repository", func(t *testing.T) {
		pulled, _, err := c.Image(ctx, reg+"/e2e/a:1")
		if err != nil {
			t.Fatal(err)
		}
		before, beforeUploads := len(mounts()), len(uploads())
		if err := c.Push(ctx, pulled, []string{reg + "/e2e/c:1"}); err != nil {
			t.Fatalf("Push: %v", err)
		}
		// Layers and config of a remote image are all mountable: nothing
		// is uploaded, so no layer is ever downloaded either.
		if got := len(mounts()) - before; got != blobs {
			t.Errorf("mounts = %d, want %d", got, blobs)
		}
		if got := len(uploads()) - beforeUploads; got != 0 {
			t.Errorf("upload requests = %d, want 0", got)
		}
		_, h, err := c.Image(ctx, reg+"/e2e/c:1")
		if err != nil || h != want {
			t.Errorf("Image(c:1) = %s, %v; want %s", h, err, want)
		}
	})

	t.Run("existing blobs are skipped", func(t *testing.T) {
		before := len(uploads())
		if err := c.Push(ctx, img, []string{reg + "/e2e/a:3"}); err != nil {
			t.Fatalf("Push: %v", err)
		}
		if got := len(uploads()) - before; got != 0 {
			t.Errorf("upload requests re-pushing to the same repository = %d, want 0", got)
		}
	})

	t.Run("missing manifest error", func(t *testing.T) {
		_, _, err := c.Image(ctx, reg+"/e2e/a:nope")
		if err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
			t.Errorf("Image(missing) error = %v, want the registry's MANIFEST_UNKNOWN", err)
		}
	})
}
