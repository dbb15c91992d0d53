package remote

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestPushAfterUploadSkipsManifestHead: a push whose layers this client
// uploaded beforehand (the early uploads of a cold build) asks nothing
// about the tag and writes only what is missing: the config and the
// manifest. A push of an image whose blobs the client never uploaded (an
// unchanged rebuild) still asks about the tag first, and sends nothing
// else when the tag holds the image.
func TestPushAfterUploadSkipsManifestHead(t *testing.T) {
	host := newRegistry(t, nil)
	ctx := context.Background()
	img := randomImage(t)
	repo := host + "/fresh/app"
	rec := &countingTransport{inner: http.DefaultTransport.(*http.Transport).Clone()}
	c := newClient(t, Options{Transport: rec})
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if err := c.WriteLayer(ctx, repo, l); err != nil {
			t.Fatal(err)
		}
	}
	before := len(rec.matching(func(string) bool { return true }))
	if err := c.Push(ctx, img, []string{repo + ":1"}); err != nil {
		t.Fatal(err)
	}
	all := rec.matching(func(string) bool { return true })[before:]
	var heads, layerReqs, puts int
	cfg, _ := img.ConfigName()
	for _, r := range all {
		switch {
		case strings.HasPrefix(r, "HEAD ") && strings.Contains(r, "/manifests/"):
			heads++
		case strings.HasPrefix(r, "PUT ") && strings.Contains(r, "/manifests/1"):
			puts++
		}
		for _, l := range ls {
			d, _ := l.Digest()
			if strings.Contains(r, d.String()) {
				layerReqs++
			}
		}
	}
	if heads != 0 || puts != 1 || layerReqs != 0 {
		t.Errorf("push after uploading its layers: %d manifest HEADs, %d manifest PUTs, %d requests about the layers; want 0, 1, 0: %v", heads, puts, layerReqs, all)
	}
	if !hasRequest(all, "PUT", cfg) {
		t.Errorf("config %s not uploaded by the push: %v", cfg, all)
	}
	checkPushed(t, host, repo+":1", img)

	// A new client (a rebuild in another process) pushing the same image
	// to the same tag: one HEAD of the tag, nothing else.
	rec2 := &countingTransport{inner: http.DefaultTransport.(*http.Transport).Clone()}
	c2 := newClient(t, Options{Transport: rec2})
	if err := c2.Push(ctx, img, []string{repo + ":1"}); err != nil {
		t.Fatal(err)
	}
	got := rec2.matching(func(r string) bool { return !strings.HasSuffix(r, "/v2/? 200") && !strings.Contains(r, " /v2/?") })
	if len(got) != 1 || !strings.HasPrefix(got[0], "HEAD ") || !strings.Contains(got[0], "/manifests/1") {
		t.Errorf("unchanged push from a new client: %v, want one HEAD of the tag", got)
	}
}

// hasRequest reports whether one of reqs has method and mentions s.
func hasRequest(reqs []string, method string, s v1.Hash) bool {
	for _, r := range reqs {
		if strings.HasPrefix(r, method+" ") && strings.Contains(r, s.Hex) {
			return true
		}
	}
	return false
}

// checkPushed reads ref back with a new client and compares its manifest,
// config and layers with img.
func checkPushed(t *testing.T, host, ref string, img v1.Image) {
	t.Helper()
	c := newClient(t, Options{})
	got, _, err := c.Image(context.Background(), ref)
	if err != nil {
		t.Fatalf("reading %s back: %v", ref, err)
	}
	if g, w := mustDigest(t, got), mustDigest(t, img); g != w {
		t.Fatalf("pushed digest %s, want %s", g, w)
	}
	wantCfg, _ := img.RawConfigFile()
	gotCfg, err := got.RawConfigFile()
	if err != nil || string(gotCfg) != string(wantCfg) {
		t.Fatalf("config read back: %v (equal %v)", err, string(gotCfg) == string(wantCfg))
	}
	ls, _ := got.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			t.Fatalf("layer read back: %v", err)
		}
	}
}
