package gha

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nektos/act/pkg/artifactcache"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
	"github.com/kiln-build/kiln/internal/imagetest"
)

// The tests in this file run kiln's v1 client against nektos/act's cache
// server (a real v1 implementation no one here wrote), in process, on
// 127.0.0.1. act is mutable (a key can be written again), matches keys
// exactly then by prefix, newest CreatedAt (to the second) first, and
// puts its only credential in the URL path.

type actServer struct {
	dir string
	url string
}

func startAct(t *testing.T) actServer {
	t.Helper()
	dir := t.TempDir()
	h, err := artifactcache.StartHandler(dir, "", "127.0.0.1", 0, nil)
	if err != nil {
		t.Fatalf("starting nektos/act's cache server: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	// The runner hands ACTIONS_CACHE_URL with a trailing slash; kiln adds
	// it when missing, so use act's own form.
	return actServer{dir: dir, url: h.ExternalURL()}
}

func (a actServer) config() Config {
	return Config{Version: 1, URL: a.url, Token: "unused-by-act", Scope: DefaultScope, Timeout: DefaultTimeout}
}

// corrupt flips a byte of the stored file whose bytes hash to h.
func (a actServer) corrupt(t *testing.T, h v1.Hash) {
	t.Helper()
	imagetest.CorruptFileOf(t, filepath.Join(a.dir, "cache"), h)
}

func TestActConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cachetest.Location {
		a := startAct(t)
		c := a.config()
		return locationOf(c, Options{}, a.corrupt)
	})
}

// Put, Has and Fetch over act, with chunked PATCHes (a chunk smaller than
// the blob), a ranged read, and a miss.
func TestActBlobs(t *testing.T) {
	a := startAct(t)
	s := New(a.config(), Options{ChunkSize: 1000})
	ctx := context.Background()
	data := randomBytes(4500, 9)
	d := blobOf(data)
	if ok, err := s.Has(ctx, d); ok || err != nil {
		t.Fatalf("Has before Put = %v, %v", ok, err)
	}
	if _, err := s.Fetch(ctx, d); !cache.IsMiss(err) {
		t.Fatalf("Fetch before Put: %v, want a miss", err)
	}
	roundTrip(t, s, data)
	fresh := New(a.config(), Options{})
	if ok, err := fresh.Has(ctx, d); !ok || err != nil {
		t.Fatalf("Has after Put = %v, %v", ok, err)
	}
	e, err := fresh.lookupExact(ctx, blobKey(d.Digest))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := fresh.c.open(ctx, e, false, 3333, d.Size)
	if err != nil {
		t.Fatalf("ranged read: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data[3333:]) {
		t.Errorf("ranged read: %d bytes, %v; want the last %d", len(got), err, len(data)-3333)
	}
}

// Numbered roots over act: ten quick exports land in the same second, so
// act's "newest" is a tie; kiln still reads #10 and writes #11.
func TestActNumberedRoot(t *testing.T) {
	a := startAct(t)
	ctx := context.Background()
	if _, err := New(a.config(), Options{}).Root(ctx); !cache.IsMiss(err) {
		t.Fatalf("Root of an empty scope: %v, want a miss", err)
	}
	for i := 1; i <= 10; i++ {
		// A new store each time, as a new build would be.
		if err := New(a.config(), Options{}).SetRoot(ctx, []byte{byte(i)}); err != nil {
			t.Fatalf("SetRoot %d: %v", i, err)
		}
	}
	s := New(a.config(), Options{})
	got, err := s.Root(ctx)
	if err != nil || !bytes.Equal(got, []byte{10}) {
		t.Fatalf("Root = %v, %v; want root #10", got, err)
	}
	if err := s.SetRoot(ctx, []byte{11}); err != nil {
		t.Fatal(err)
	}
	e, err := s.svc.lookup(ctx, s.prefix+"11")
	if err != nil || e.Key != "kiln-root-1-kiln#11" {
		t.Errorf("lookup #11 = %+v, %v", e, err)
	}
	// Another scope sees none of it.
	other := a.config()
	other.Scope = "other"
	if _, err := New(other, Options{}).Root(ctx); !cache.IsMiss(err) {
		t.Errorf("Root of another scope: %v, want a miss", err)
	}
}
