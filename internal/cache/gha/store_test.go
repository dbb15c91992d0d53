package gha

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

func smallManifest(t *testing.T) (*cache.Manifest, *cachetest.Blobs) {
	t.Helper()
	b := cachetest.NewBlobs()
	return cachetest.RandomManifest(b, 7, 3), b
}

// fakeFactory runs the conformance suite against the fake over one API.
func fakeFactory(version int) cachetest.Factory {
	return func(t *testing.T) cachetest.Location {
		f := newFake(t)
		c := f.config(version)
		return locationOf(c, Options{}, func(t *testing.T, h v1.Hash) {
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, e := range f.entries {
				if e.key == blobKey(h) {
					e.data = bytes.Clone(e.data)
					e.data[len(e.data)/2] ^= 0xff
					return
				}
			}
			t.Fatalf("no entry for %s", h)
		})
	}
}

func TestConformance(t *testing.T) {
	t.Run("v1", func(t *testing.T) { cachetest.Run(t, fakeFactory(1)) })
	t.Run("v2", func(t *testing.T) { cachetest.Run(t, fakeFactory(2)) })
}

// A full round trip through package cache's importer and exporter, and
// what each costs in requests.
func TestRoundTripRequests(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmtVersion(version), func(t *testing.T) {
			f := newFake(t)
			c := f.config(version)
			m, src := smallManifest(t)
			ctx := context.Background()
			if err := NewExporter(ExportConfig{Config: c}, Options{}).Export(ctx, m, src); err != nil {
				t.Fatalf("Export: %v", err)
			}
			// Reading the root is a lookup, one check for a newer number,
			// and a download.
			before := len(f.requestsTo(""))
			if _, err := New(c, Options{}).Root(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(f.requestsTo("")) - before; n != 3 {
				t.Errorf("Root made %d requests, want 3", n)
			}
			got, fetch, err := NewImporter(ImportConfig{Config: c}, Options{}).Import(ctx)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if diff := cmp.Diff(m, got); diff != "" {
				t.Fatalf("manifest (-want +got):\n%s", diff)
			}
			for _, l := range got.Layers() {
				rc, err := fetch.Fetch(ctx, l.Descriptor())
				if err != nil {
					t.Fatal(err)
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || len(data) != int(l.Size) {
					t.Fatalf("layer %s: %d bytes, %v", l.Digest, len(data), err)
				}
			}

			// Re-exporting the same cache reads the root and sends nothing.
			f.mu.Lock()
			f.log = nil
			f.mu.Unlock()
			if err := NewExporter(ExportConfig{Config: c}, Options{}).Export(ctx, m, src); err != nil {
				t.Fatal(err)
			}
			for _, l := range f.log {
				if strings.HasPrefix(l, "POST") && !strings.Contains(l, "GetCacheEntryDownloadURL") || strings.HasPrefix(l, "PUT") || strings.HasPrefix(l, "PATCH") {
					t.Errorf("no-op re-export wrote: %s", l)
				}
			}

			// A new export that shares two layers with the root looks
			// neither up: the root lists them.
			m2 := cachetest.RandomManifest(src, 7, 4) // same seed: the first 3 layers again
			f.mu.Lock()
			f.log = nil
			f.mu.Unlock()
			if err := NewExporter(ExportConfig{Config: c}, Options{}).Export(ctx, m2, src); err != nil {
				t.Fatal(err)
			}
			lookups := 0
			for _, r := range f.requests[len(f.requests)-len(f.log):] {
				if strings.Contains(r.path, "GetCacheEntryDownloadURL") || strings.HasSuffix(r.path, "/cache") {
					if strings.Contains(string(r.body)+r.query, blobKeyPrefix) {
						lookups++
					}
				}
			}
			// One lookup for the new layer's blob (and, until package
			// cache embeds it, one for the new config blob).
			if lookups > 2 {
				t.Errorf("%d blob lookups for one new layer; log:\n%s", lookups, strings.Join(f.log, "\n"))
			}
		})
	}
}

// fakeClock is a Clock whose time moves only when told.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func (c *fakeClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// The limiter lets a 100-layer mode=max export (101 entries) through at
// once, and never more than its limit in any window.
func TestEntryLimiter(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	l := newLimiter(DefaultEntriesPerMinute, time.Minute, clock)
	ctx := context.Background()
	for i := range 101 {
		if err := l.wait(ctx); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if clock.waiting() != 0 {
		t.Fatal("101 entries waited")
	}
	clock.advance(30 * time.Second)
	for range DefaultEntriesPerMinute - 101 {
		if err := l.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The window is full: the next entry waits until the first 101 age
	// out, 30 s from now.
	done := make(chan error, 1)
	go func() { done <- l.wait(ctx) }()
	for clock.waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("entry %d went through in a full window (%v)", DefaultEntriesPerMinute+1, err)
	default:
	}
	clock.advance(29 * time.Second)
	select {
	case <-done:
		t.Fatal("went through 1 s early")
	case <-time.After(10 * time.Millisecond):
	}
	clock.advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A cancelled wait returns the context's error.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		for clock.waiting() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	for range 2 * DefaultEntriesPerMinute { // fill whatever the window has left
		if err := l.wait(cctx); err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			return
		}
	}
	t.Fatal("the window never filled")
}

// Put runs at most Options.Parallel uploads at once, and the limiter
// counts every new entry.
func TestPutBounds(t *testing.T) {
	f := newFake(t)
	var inFlight, peak atomic.Int32
	gate := make(chan struct{})
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/caches") {
			n := inFlight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-gate
			inFlight.Add(-1)
		}
		return false
	}
	clock := &fakeClock{now: time.Unix(0, 0)}
	s := New(f.config(1), Options{Parallel: 2, EntriesPerMinute: 5, Clock: clock})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte(fmt.Sprintf("blob %d", i))
			errs <- s.Put(context.Background(), blobOf(data), bytes.NewReader(data))
		}()
	}
	// Let the first uploads through one by one.
	for range 5 {
		gate <- struct{}{}
	}
	// The sixth waits for the minute to pass.
	for clock.waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	clock.advance(time.Minute)
	gate <- struct{}{}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d uploads at once, want at most 2", p)
	}
}

// Timeout bounds each operation.
func TestTimeout(t *testing.T) {
	f := newFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
	c := f.config(2)
	c.Timeout = 50 * time.Millisecond
	start := time.Now()
	_, err := New(c, Options{}).Root(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// With repository and ghtoken, an export learns which blobs exist from
// the REST listing (kiln's version, readable refs only) instead of one
// lookup per blob.
func TestListing(t *testing.T) {
	f := newFake(t)
	present := blobOf([]byte("present"))
	otherRef := blobOf([]byte("other ref"))
	otherVersion := blobOf([]byte("other version"))
	var pages atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gh-secret" || r.URL.Path != "/repos/o/r/actions/caches" || r.URL.Query().Get("key") != blobKeyPrefix {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		pages.Add(1)
		var caches []map[string]any
		if r.URL.Query().Get("page") == "1" {
			for range 100 {
				caches = append(caches, map[string]any{"key": "kiln-blob-1-sha256:filler", "ref": "refs/heads/main", "version": entryVersion})
			}
		} else {
			caches = []map[string]any{
				{"key": blobKey(present.Digest), "ref": "refs/heads/main", "version": entryVersion},
				{"key": blobKey(otherRef.Digest), "ref": "refs/heads/feature", "version": entryVersion},
				{"key": blobKey(otherVersion.Digest), "ref": "refs/heads/main", "version": "other"},
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"total_count": 103, "actions_caches": caches})
	}))
	t.Cleanup(api.Close)
	c := f.config(2)
	c.Repository, c.GHToken = "o/r", "gh-secret"
	c.Access.Scopes = []TokenScope{{"refs/heads/main", 3}}
	s := New(c, Options{GitHubAPI: api.URL})
	for _, tt := range []struct {
		d    v1.Descriptor
		want bool
	}{{present, true}, {otherRef, false}, {otherVersion, false}, {blobOf([]byte("absent")), false}} {
		got, err := s.Has(context.Background(), tt.d)
		if err != nil || got != tt.want {
			t.Errorf("Has(%s) = %v, %v; want %v", tt.d.Digest, got, err, tt.want)
		}
	}
	if n := pages.Load(); n != 2 {
		t.Errorf("%d listing pages fetched, want 2 (once)", n)
	}
	if len(f.log) != 0 {
		t.Errorf("cache service asked: %v", f.log)
	}
}
