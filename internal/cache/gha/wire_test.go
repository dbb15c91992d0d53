package gha

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/transport"
)

// The tests in this file pin the ten wire details of gha-action.md §2
// (item 1, version selection, is TestVersionSelection in config_test.go).

func blobOf(data []byte) v1.Descriptor {
	sum := sha256.Sum256(data)
	return v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(data)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// roundTrip puts data through s and reads it back.
func roundTrip(t *testing.T, s *Store, data []byte) {
	t.Helper()
	ctx := context.Background()
	d := blobOf(data)
	if err := s.Put(ctx, d, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	rc, err := s.Fetch(ctx, d)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes back, not the %d put", len(got), len(data))
	}
}

// §2 item 2: v1 is a prefix join that keeps the base path (act's token)
// and adds a missing slash; v2 keeps a base path too and never doubles the
// slash.
func TestURLJoining(t *testing.T) {
	tests := []struct {
		name     string
		version  int
		prefix   string
		base     func(f *fake) string
		wantPath string
	}{
		{"v1 with trailing slash", 1, "/tok123/", func(f *fake) string { return f.srv.URL + "/tok123/" }, "/tok123/_apis/artifactcache/cache"},
		{"v1 without trailing slash", 1, "/tok123/", func(f *fake) string { return f.srv.URL + "/tok123" }, "/tok123/_apis/artifactcache/cache"},
		{"v1 at the root", 1, "/", func(f *fake) string { return f.srv.URL }, "/_apis/artifactcache/cache"},
		{"v2 with trailing slash", 2, "/", func(f *fake) string { return f.srv.URL + "/" }, "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL"},
		{"v2 without trailing slash", 2, "/", func(f *fake) string { return f.srv.URL }, "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.v1Prefix = tt.prefix
			c := f.config(tt.version)
			c.URL = tt.base(f)
			s := New(c, Options{})
			roundTrip(t, s, []byte("hello"))
			if got := f.requestsTo(tt.wantPath); len(got) == 0 {
				t.Errorf("no request to %s; requests: %v", tt.wantPath, f.log)
			}
		})
	}
}

// §2 items 3 and 4: requests use proto names and send size_bytes as a
// string; answers in either spelling and entry_id as string or number are
// understood.
func TestJSONSpellingAndInt64(t *testing.T) {
	for _, tt := range []struct {
		name            string
		camel, idNumber bool
	}{{"proto names", false, false}, {"camelCase", true, false}, {"entry_id as number", false, true}, {"camelCase and number", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.camelCase, f.entryIDNumber = tt.camel, tt.idNumber
			roundTrip(t, New(f.config(2), Options{}), []byte("some bytes"))
			fin := f.requestsTo("FinalizeCacheEntryUpload")
			if len(fin) != 1 {
				t.Fatalf("%d finalize requests", len(fin))
			}
			var body map[string]any
			json.Unmarshal(fin[0].body, &body)
			if got, ok := body["size_bytes"].(string); !ok || got != "10" {
				t.Errorf("size_bytes = %#v, want the string \"10\"", body["size_bytes"])
			}
		})
	}
	t.Run("v1 cacheId as string, or as cacheID", func(t *testing.T) {
		for _, shape := range []string{`{"cacheId":"%d"}`, `{"cacheID":%d}`} {
			f := newFake(t)
			f.hook = func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/caches") {
					var req struct{ Key, Version string }
					json.Unmarshal(mustRead(r), &req)
					fmt.Fprintf(w, shape, f.reserve(req.Key, req.Version).entry.id)
					return true
				}
				return false
			}
			roundTrip(t, New(f.config(1), Options{}), []byte("abc"))
		}
	})
}

func mustRead(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

// §2 item 5: "already exists" as 409 already_exists (GitHub v2), 409 with
// the v1 typeKey, and 200 {"ok":false} (Gitea, falcondev) is success for
// a blob, and moves a root to the next number.
func TestAlreadyExists(t *testing.T) {
	for _, tt := range []struct {
		name    string
		version int
		okFalse bool
	}{{"v1 409 typeKey", 1, false}, {"v2 409 already_exists", 2, false}, {"v2 200 ok:false", 2, true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.existsOKFalse = tt.okFalse
			ctx := context.Background()
			data := []byte("layer")
			d := blobOf(data)
			f.put(blobKey(d.Digest), entryVersion, data)
			if err := New(f.config(tt.version), Options{}).Put(ctx, d, bytes.NewReader(data)); err != nil {
				t.Fatalf("Put of an existing blob: %v", err)
			}
			// A concurrent export took #1 after this one looked.
			s := New(f.config(tt.version), Options{})
			if _, err := s.Root(ctx); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("Root: %v", err)
			}
			f.put(s.prefix+"1", entryVersion, []byte(`{"other":1}`))
			if err := s.SetRoot(ctx, []byte(`{"mine":1}`)); err != nil {
				t.Fatalf("SetRoot: %v", err)
			}
			got, err := New(f.config(tt.version), Options{}).Root(ctx)
			if err != nil || string(got) != `{"mine":1}` {
				t.Errorf("Root = %q, %v; want mine", got, err)
			}
			if diff := cmp.Diff([]string{blobKey(d.Digest), "kiln-root-1-kiln#1", "kiln-root-1-kiln#2"}, f.entryKeys()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

// §2 item 6: covered by TestForbiddenWriteIsReadOnly and TestTokenClaims
// in trust_test.go.

// §2 item 7: uploads and downloads go to the signed URL as handed out
// (/<account>/<container>/<blob>?<sig>), its query kept, with no bearer
// token; the service itself always gets the token.
func TestSignedURLs(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmtVersion(version), func(t *testing.T) {
			f := newFake(t)
			roundTrip(t, New(f.config(version), Options{SingleShotLimit: 4, BlockSize: 4}), []byte("0123456789"))
			blobs := f.requestsTo("/devstoreaccount1/cache/")
			if len(blobs) == 0 {
				t.Fatal("no blob requests")
			}
			for _, r := range blobs {
				if r.header.Get("Authorization") != "" {
					t.Errorf("%s %s?%s carries a bearer token", r.method, r.path, r.query)
				}
				if !strings.Contains(r.query, fakeSig) {
					t.Errorf("%s %s?%s lost the signature", r.method, r.path, r.query)
				}
			}
			for _, r := range f.requests {
				if !strings.Contains(r.path, "/devstoreaccount1/") && r.header.Get("Authorization") != "Bearer "+testToken {
					t.Errorf("%s %s has no bearer token", r.method, r.path)
				}
			}
		})
	}
}

// §2 item 8: blocks use the Go SDK's 64-byte id layout (same length for
// every block, number big-endian at byte 16), listed in order, so a
// server that orders by the id (falcondev) and one that follows the list
// both assemble the blob; small blobs are one Put Blob.
func TestBlockIDs(t *testing.T) {
	data := randomBytes(10_000, 1)
	for _, byID := range []bool{false, true} {
		f := newFake(t)
		f.orderByID = byID
		roundTrip(t, New(f.config(2), Options{SingleShotLimit: 1024, BlockSize: 1000}), data)
		var ids []string
		for _, r := range f.requestsTo("/devstoreaccount1/cache/") {
			if strings.Contains(r.query, "comp=block&") {
				id := r.query[strings.Index(r.query, "blockid=")+len("blockid="):]
				ids = append(ids, id)
			}
		}
		if len(ids) != 10 {
			t.Fatalf("%d Put Block requests, want 10", len(ids))
		}
		for i, esc := range ids {
			id := unescape(t, esc)
			raw, err := base64.StdEncoding.DecodeString(id)
			if err != nil || len(raw) != 64 || len(id) != 88 {
				t.Fatalf("block id %q: %d raw bytes, want 64 (88 base64 chars)", id, len(raw))
			}
			if n := binary.BigEndian.Uint32(raw[16:]); n != uint32(i) {
				t.Errorf("block %d carries number %d", i, n)
			}
			if !bytes.Equal(raw[20:], make([]byte, 44)) {
				t.Errorf("block %d: bytes after the number are not zero", i)
			}
			first, _ := base64.StdEncoding.DecodeString(unescape(t, ids[0]))
			if !bytes.Equal(raw[:16], first[:16]) {
				t.Errorf("block %d has another prefix than block 0", i)
			}
		}
		lists := 0
		for _, r := range f.requestsTo("/devstoreaccount1/cache/") {
			if strings.HasSuffix(r.query, "comp=blocklist") {
				lists++
				var l struct {
					Latest []string `xml:"Latest"`
				}
				if err := xmlUnmarshal(r.body, &l); err != nil || len(l.Latest) != 10 || l.Latest[3] != unescape(t, ids[3]) {
					t.Errorf("block list %s: %v", r.body, err)
				}
			}
		}
		if lists != 1 {
			t.Errorf("%d Put Block List requests, want 1", lists)
		}
	}
	// A blob at the single-shot limit is one Put Blob.
	f := newFake(t)
	roundTrip(t, New(f.config(2), Options{SingleShotLimit: 1024, BlockSize: 100}), randomBytes(1024, 2))
	puts := f.requestsTo("/devstoreaccount1/cache/")
	if len(puts) != 2 || puts[0].method != http.MethodPut || puts[0].query != fakeSig {
		t.Errorf("requests %v, want one Put Blob and one GET", f.log)
	}
}

// §2 item 9: Put Blob carries x-ms-blob-type, every blob call carries
// x-ms-version (the fake refuses without them), a resumed download asks
// with x-ms-range and Range, and a server that ignores ranges (200 with
// the whole blob) or answers the wrong range gives no wrong bytes.
func TestHeadersAndRanges(t *testing.T) {
	f := newFake(t)
	s := New(f.config(2), Options{})
	data := randomBytes(5000, 3)
	roundTrip(t, s, data)
	for _, r := range f.requestsTo("/devstoreaccount1/cache/") {
		if r.header.Get("x-ms-version") != azureVersion {
			t.Errorf("%s without x-ms-version", r.method)
		}
	}
	d := blobOf(data)
	for _, tt := range []struct {
		name                  string
		ignoreRange, badRange bool
		wantErr               bool
	}{{"range honoured", false, false, false}, {"range ignored", true, false, false}, {"wrong range", false, true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.ignoreRange, f.badRange = tt.ignoreRange, tt.badRange
			f.mu.Unlock()
			e, err := s.lookupExact(context.Background(), blobKey(d.Digest))
			if err != nil {
				t.Fatal(err)
			}
			rc, err := s.c.open(context.Background(), e, true, 1234, d.Size)
			if tt.wantErr {
				if !errors.Is(err, cache.ErrDigestMismatch) {
					if rc != nil {
						rc.Close()
					}
					t.Fatalf("a 206 for another range: got %v, want a miss (ErrDigestMismatch)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data[1234:]) {
				t.Errorf("read %d bytes (%v), want the %d from byte 1234", len(got), err, len(data)-1234)
			}
			last := f.requests[len(f.requests)-1]
			if last.header.Get("x-ms-range") != "bytes=1234-" || last.header.Get("Range") != "bytes=1234-" {
				t.Errorf("ranged GET headers %v", last.header)
			}
		})
	}
}

// A download cut short is resumed from where it broke, and the bytes are
// whole; a server that then ignores the range is handled too.
func TestResumeDownload(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		f := newFake(t)
		data := randomBytes(100_000, 4)
		d := blobOf(data)
		f.put(blobKey(d.Digest), entryVersion, data)
		f.ignoreRange = ignore
		cut := true
		f.hook = func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/devstoreaccount1/") && cut {
				cut = false
				w.Header().Set("Content-Length", "100000")
				w.Write(data[:30_000])
				return true // the handler returns: the connection ends short
			}
			return false
		}
		s := New(f.config(1), Options{})
		rc, err := s.Fetch(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ignoreRange=%v: read %d bytes, %v", ignore, len(got), err)
		}
		if n := len(f.requestsTo("/devstoreaccount1/")); n != 2 {
			t.Errorf("%d downloads, want 2", n)
		}
	}
}

// Wrong bytes are never returned: a blob whose stored bytes differ from
// its digest is a miss (ErrDigestMismatch), and so is a wrong length.
func TestDownloadVerified(t *testing.T) {
	f := newFake(t)
	data := []byte("the right bytes")
	d := blobOf(data)
	f.put(blobKey(d.Digest), entryVersion, []byte("the wrong bytes"))
	s := New(f.config(2), Options{})
	rc, err := s.Fetch(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, cache.ErrDigestMismatch) {
		t.Errorf("corrupt blob: got %v, want ErrDigestMismatch", err)
	}
	d2 := blobOf([]byte("short"))
	f.put(blobKey(d2.Digest), entryVersion, []byte("shorter!"))
	if _, err := s.Fetch(context.Background(), d2); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Errorf("wrong length: got %v, want ErrDigestMismatch", err)
	}
}

// An expired signed download URL (403) is looked up again once.
func TestExpiredDownloadURL(t *testing.T) {
	f := newFake(t)
	data := []byte("fresh")
	d := blobOf(data)
	f.put(blobKey(d.Digest), entryVersion, data)
	expired := true
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/devstoreaccount1/") && expired {
			expired = false
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	}
	rc, err := New(f.config(2), Options{}).Fetch(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "fresh" {
		t.Errorf("got %q, %v", got, err)
	}
	if n := len(f.requestsTo("GetCacheEntryDownloadURL")); n != 2 {
		t.Errorf("%d lookups, want 2", n)
	}
}

// §2 item 10: the newest root by number, even when the service orders
// another way (#9 sorts after #10 as text); a blob lookup answered with a
// longer key is a miss.
func TestNewestRootByNumber(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmtVersion(version), func(t *testing.T) {
			f := newFake(t)
			// The service calls the lexically greatest key the newest.
			f.newest = func(m []*fakeEntry) *fakeEntry {
				best := m[0]
				for _, e := range m {
					if e.key > best.key {
						best = e
					}
				}
				return best
			}
			s := New(f.config(version), Options{})
			ctx := context.Background()
			for i := 1; i <= 10; i++ {
				if err := s.SetRoot(ctx, []byte{byte('0' + i)}); err != nil {
					t.Fatalf("SetRoot %d: %v", i, err)
				}
			}
			got, err := New(f.config(version), Options{}).Root(ctx)
			if err != nil || !bytes.Equal(got, []byte{'0' + 10}) {
				t.Errorf("Root = %q, %v; want root #10", got, err)
			}
			fresh := New(f.config(version), Options{})
			if err := fresh.SetRoot(ctx, []byte("eleven")); err != nil {
				t.Fatal(err)
			}
			keys := f.entryKeys()
			if keys[len(keys)-1] != "kiln-root-1-kiln#11" {
				t.Errorf("last entry %s, want #11", keys[len(keys)-1])
			}
		})
	}
	f := newFake(t)
	d := blobOf([]byte("x"))
	f.put(blobKey(d.Digest)+"-sig", entryVersion, []byte("signature"))
	ok, err := New(f.config(2), Options{}).Has(context.Background(), d)
	if ok || err != nil {
		t.Errorf("Has with only a longer key stored = %v, %v; want false", ok, err)
	}
}

// Error answers carry status, method and a redacted URL, the server's
// message without a BOM, and never the token or a signature.
func TestErrorsRedacted(t *testing.T) {
	f := newFake(t)
	f.v1Prefix = "/secret-path-token/"
	f.bom = true
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/cache") {
			f.fail(w, http.StatusBadRequest, `{"message":"bad request from `+testToken+`","typeKey":"InvalidKey"}`)
			return true
		}
		if strings.Contains(r.URL.Path, "/devstoreaccount1/") {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "\xef\xbb\xbf<Error><Code>InternalError</Code><Message>sig=c2VjcmV0LXNpZ25hdHVyZQ== failed</Message></Error>")
			return true
		}
		return false
	}
	s := New(f.config(1), Options{})
	_, err := s.Has(context.Background(), blobOf([]byte("x")))
	var e *transport.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want *transport.Error", err)
	}
	if e.Service != serviceName || e.Status != 400 || e.Method != "GET" || e.Code != "InvalidKey" || !strings.HasPrefix(e.Message, "bad request from") {
		t.Errorf("error fields %+v", e)
	}
	for _, bad := range []string{testToken, "secret-path-token", "\ufeff"} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("message %q contains %q", err, bad)
		}
	}
	if !strings.Contains(e.URL, "/…/_apis/artifactcache/cache?") {
		t.Errorf("URL %q", e.URL)
	}
	// A blob URL's signature is redacted in the URL (the message is the
	// server's own words; the signature in it is a value kiln never holds).
	c := &client{secrets: []string{testToken}}
	u := mustURL(t, f.blobURL(3)+"&comp=block&blockid=abc")
	if got := c.redact(u); strings.Contains(got, "c2VjcmV0") || !strings.Contains(got, "comp=block") || !strings.Contains(got, "blockid=abc") {
		t.Errorf("redact = %q", got)
	}
}

func unescape(t *testing.T, s string) string {
	t.Helper()
	u, err := url.QueryUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }

// Retries are the transport's: through transport.Transport, a 429 with
// Retry-After on CreateCacheEntry waits what it says, and a v1 chunk that
// fails once with 503 is sent again whole (its body is replayable).
func TestRetriesThroughTransport(t *testing.T) {
	for _, tt := range []struct {
		name    string
		version int
		match   func(r *http.Request) bool
		answer  func(w http.ResponseWriter)
		wait    time.Duration
	}{
		{"429 Retry-After on CreateCacheEntry", 2,
			func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/CreateCacheEntry") },
			func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"code":"resource_exhausted","msg":"slow down"}`)
			}, 7 * time.Second},
		{"503 on a v1 chunk", 1,
			func(r *http.Request) bool { return r.Method == http.MethodPatch },
			func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			failed := false
			f.hook = func(w http.ResponseWriter, r *http.Request) bool {
				if !failed && tt.match(r) {
					failed = true
					tt.answer(w)
					return true
				}
				return false
			}
			// The transport's clock moves only by its sleeps: the host's
			// shared back-off then holds later requests no longer.
			var mu sync.Mutex
			var slept []time.Duration
			now := time.Unix(1_000_000, 0)
			rt := transport.New(transport.Options{
				Jitter: func() float64 { return 0 },
				Now: func() time.Time {
					mu.Lock()
					defer mu.Unlock()
					return now
				},
				Sleep: func(ctx context.Context, d time.Duration) error {
					mu.Lock()
					slept = append(slept, d)
					now = now.Add(d)
					mu.Unlock()
					return nil
				},
			})
			roundTrip(t, New(f.config(tt.version), Options{Transport: rt, ChunkSize: 3}), []byte("0123456789"))
			if !failed {
				t.Fatal("the fault was never injected")
			}
			if len(slept) != 1 || (tt.wait != 0 && slept[0] != tt.wait) {
				t.Errorf("waits %v, want one (of %v)", slept, tt.wait)
			}
			if tt.version == 1 {
				// The chunk sent twice: 4 chunks of a 10-byte blob, 5 PATCHes.
				if n := len(f.requestsTo("/caches/")); n != 4+1+1 { // + commit
					t.Errorf("%d requests to caches/{id}, want 6", n)
				}
			}
		})
	}
}

// A root upload the service will not finalize (a concurrent reservation
// of the same number won) moves on to the next number.
func TestRootNotFinalized(t *testing.T) {
	f := newFake(t)
	refused := false
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/FinalizeCacheEntryUpload") && !refused {
			refused = true
			f.answer(w, map[string]any{"ok": false})
			return true
		}
		return false
	}
	s := New(f.config(2), Options{})
	if err := s.SetRoot(context.Background(), []byte("root")); err != nil {
		t.Fatal(err)
	}
	got, err := New(f.config(2), Options{}).Root(context.Background())
	if err != nil || string(got) != "root" {
		t.Errorf("Root = %q, %v", got, err)
	}
	if !refused {
		t.Error("finalize never refused")
	}
	// A blob whose upload is not finalized is an error, never "stored".
	refused = false
	data := []byte("blob")
	if err := s.Put(context.Background(), blobOf(data), bytes.NewReader(data)); err == nil {
		t.Error("Put of a blob the service did not finalize succeeded")
	}
}
