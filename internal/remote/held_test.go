package remote

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestHeldManifest: what Manifest read and PutManifest wrote at a tag is
// held (and a 404 as missing); a failed PutManifest forgets the tag; digest
// references are never held.
func TestHeldManifest(t *testing.T) {
	var failPut bool
	host := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failPut && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
				http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := newClient(t, Options{RetryMaxWait: -1})
	ctx := context.Background()
	ref := host + "/held/repo:cache"
	if _, _, _, ok := c.HeldManifest(ref); ok {
		t.Fatal("held before any request")
	}
	if _, _, _, err := c.Manifest(ctx, ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Manifest of a missing tag: %v", err)
	}
	if _, _, found, ok := c.HeldManifest(ref); !ok || found {
		t.Fatalf("after a 404: found=%v ok=%v, want missing and held", found, ok)
	}
	img := randomImage(t)
	if err := c.Push(ctx, img, []string{host + "/held/repo:img"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	if err := c.PutManifest(ctx, ref, raw, mt); err != nil {
		t.Fatal(err)
	}
	got, gotMT, found, ok := c.HeldManifest(ref)
	if !ok || !found || !bytes.Equal(got, raw) || gotMT != mt {
		t.Fatalf("after PutManifest: ok=%v found=%v mt=%s equal=%v", ok, found, gotMT, bytes.Equal(got, raw))
	}
	other := newClient(t, Options{RetryMaxWait: -1})
	if _, _, _, err := other.Manifest(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if got, _, found, ok := other.HeldManifest(ref); !ok || !found || !bytes.Equal(got, raw) {
		t.Fatal("Manifest did not hold what it read")
	}
	d, _ := img.Digest()
	if _, _, _, err := other.Manifest(ctx, host+"/held/repo@"+d.String()); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := other.HeldManifest(host + "/held/repo@" + d.String()); ok {
		t.Fatal("a digest reference is held")
	}
	failPut = true
	if err := c.PutManifest(ctx, ref, raw, types.OCIManifestSchema1); err == nil {
		t.Fatal("PutManifest succeeded against a registry that refuses it")
	}
	if _, _, _, ok := c.HeldManifest(ref); ok {
		t.Fatal("a tag whose PutManifest failed is still held")
	}
}
