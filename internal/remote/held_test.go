package remote

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
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

// TestHeldBlobs: after a push, whether the repository has the image's
// blobs is answered without a request; other repositories and unknown
// blobs are still asked, and a blob found there is not asked again.
func TestHeldBlobs(t *testing.T) {
	host := newRegistry(t, nil)
	rec := &schemeRecorder{inner: http.DefaultTransport.(*http.Transport).Clone()}
	c := newClient(t, Options{Transport: rec})
	ctx := context.Background()
	img := randomImage(t)
	if err := c.Push(ctx, img, []string{host + "/held/blobs:1"}); err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	heads := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, r := range rec.reqs {
			if strings.HasPrefix(r, "http HEAD ") && strings.Contains(r, "/blobs/") {
				n++
			}
		}
		return n
	}
	before := heads()
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		ok, err := c.BlobExists(ctx, host+"/held/blobs", d.Digest)
		if err != nil || !ok {
			t.Fatalf("BlobExists(%s) = %v, %v after pushing it", d.Digest, ok, err)
		}
	}
	if n := heads() - before; n != 0 {
		t.Errorf("%d HEAD requests for blobs the push just wrote, want 0", n)
	}
	// Another repository is asked (this in-process registry shares blobs
	// between repositories), and so is a blob never pushed.
	if ok, err := c.BlobExists(ctx, host+"/held/other", m.Layers[0].Digest); err != nil || !ok {
		t.Fatalf("BlobExists in another repository = %v, %v", ok, err)
	}
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	for range 2 {
		if ok, err := c.BlobExists(ctx, host+"/held/blobs", missing); err != nil || ok {
			t.Fatalf("BlobExists of a blob never pushed = %v, %v", ok, err)
		}
	}
	if n := heads() - before; n != 3 {
		t.Errorf("%d HEAD requests, want 3: the other repository, and a missing blob each time", n)
	}
	// A blob another client pushed is asked once, then held.
	other := newClient(t, Options{})
	img2 := randomImage(t)
	if err := other.Push(ctx, img2, []string{host + "/held/blobs:2"}); err != nil {
		t.Fatal(err)
	}
	m2, _ := img2.Manifest()
	for range 2 {
		if ok, err := c.BlobExists(ctx, host+"/held/blobs", m2.Layers[0].Digest); err != nil || !ok {
			t.Fatalf("BlobExists of another client's blob = %v, %v", ok, err)
		}
	}
	if n := heads() - before; n != 4 {
		t.Errorf("%d HEAD requests, want 4 (one more for the other client's blob, asked once)", n)
	}
}

// TestHeldBlobsIndex: after an index push (a build of several platforms),
// whether the repository has each platform image's blobs is answered
// without a request, as after Push (a registry cache export to the same
// repository follows it).
func TestHeldBlobsIndex(t *testing.T) {
	host := newRegistry(t, nil)
	rec := &schemeRecorder{inner: http.DefaultTransport.(*http.Transport).Clone()}
	c := newClient(t, Options{Transport: rec})
	ctx := context.Background()
	a, b := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: b, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if err := c.PushIndex(ctx, idx, []string{host + "/held/index:1"}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	before := len(rec.reqs)
	rec.mu.Unlock()
	for _, img := range []v1.Image{a, b} {
		m, _ := img.Manifest()
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if ok, err := c.BlobExists(ctx, host+"/held/index", d.Digest); err != nil || !ok {
				t.Fatalf("BlobExists(%s) = %v, %v after pushing it", d.Digest, ok, err)
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.reqs) - before; n != 0 {
		t.Errorf("%d requests for blobs the index push just wrote, want 0: %v", n, rec.reqs[before:])
	}
}
