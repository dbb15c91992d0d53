package ghacache

import (
	"net/http"
	"strings"
	"testing"
)

// v2Save creates an entry, Put Blobs data to its signed URL and finalizes
// it; it fails the test unless every step succeeds.
func (ts *testServer) v2Save(t *testing.T, key string, data []byte) {
	t.Helper()
	u := ts.v2Create(t, key)
	if st, out, _ := ts.do(t, "PUT", u, map[string]string{"x-ms-blob-type": "BlockBlob", "Authorization": ""}, data); st != 201 {
		t.Fatalf("Put Blob %s: %d %s", key, st, out)
	}
	st, m := ts.twirp(t, "FinalizeCacheEntryUpload", map[string]any{"key": key, "version": testVersion, "size_bytes": len(data)})
	if st != 200 || m["ok"] != true {
		t.Fatalf("finalize %s: %d %v", key, st, m)
	}
}

func (ts *testServer) v2Create(t *testing.T, key string) string {
	t.Helper()
	st, m := ts.twirp(t, "CreateCacheEntry", map[string]any{"key": key, "version": testVersion})
	u, _ := m["signed_upload_url"].(string)
	if st != 200 || m["ok"] != true || u == "" {
		t.Fatalf("CreateCacheEntry %s: %d %v", key, st, m)
	}
	return u
}

func TestV2Wire(t *testing.T) {
	ts := newTestServer(t, Options{})
	tests := []struct {
		name     string
		create   map[string]any
		finalize map[string]any
	}{
		{"snake_case, int64 as string (@actions/cache)", map[string]any{"key": "a", "version": testVersion},
			map[string]any{"key": "a", "version": testVersion, "size_bytes": "3"}},
		{"int64 as number (go-actions-cache)", map[string]any{"key": "b", "version": testVersion},
			map[string]any{"key": "b", "version": testVersion, "size_bytes": 3}},
		{"camelCase", map[string]any{"key": "c", "version": testVersion, "metadata": map[string]any{"repositoryId": "1"}},
			map[string]any{"key": "c", "version": testVersion, "sizeBytes": "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, m := ts.twirp(t, "CreateCacheEntry", tt.create)
			u, _ := m["signed_upload_url"].(string)
			if st != 200 || m["ok"] != true || !strings.Contains(u, "/"+blobAccount+"/"+blobContainer+"/") {
				t.Fatalf("CreateCacheEntry: %d %v", st, m)
			}
			if st, _, _ := ts.do(t, "PUT", u, map[string]string{"x-ms-blob-type": "BlockBlob"}, []byte("abc")); st != 201 {
				t.Fatalf("Put Blob: %d", st)
			}
			st, m = ts.twirp(t, "FinalizeCacheEntryUpload", tt.finalize)
			if id, ok := m["entry_id"].(string); st != 200 || m["ok"] != true || !ok || id == "" || id == "0" {
				t.Fatalf("finalize: %d %v, want ok and entry_id as a string", st, m)
			}
			st, m = ts.twirp(t, "GetCacheEntryDownloadURL", map[string]any{"key": tt.create["key"], "version": testVersion})
			if st != 200 || m["ok"] != true || m["matched_key"] != tt.create["key"] {
				t.Fatalf("GetCacheEntryDownloadURL: %d %v", st, m)
			}
			if got := ts.download(t, m["signed_download_url"].(string)); got != "abc" {
				t.Errorf("download: %q", got)
			}
		})
	}
}

func TestV2Rules(t *testing.T) {
	ts := newTestServer(t, Options{})
	ts.v2Save(t, "done-1", []byte("payload"))
	pendingURL := ts.v2Create(t, "pending")
	ts.do(t, "PUT", pendingURL, map[string]string{"x-ms-blob-type": "BlockBlob"}, []byte("12345"))
	tests := []struct {
		name     string
		method   string
		body     map[string]any
		wantHTTP int
		wantCode string
	}{
		{"duplicate of a committed entry", "CreateCacheEntry", map[string]any{"key": "done-1", "version": testVersion}, 409, "already_exists"},
		{"duplicate of a reservation", "CreateCacheEntry", map[string]any{"key": "pending", "version": testVersion}, 409, "already_exists"},
		{"finalize with the wrong size", "FinalizeCacheEntryUpload", map[string]any{"key": "pending", "version": testVersion, "size_bytes": "4"}, 400, "invalid_argument"},
		{"finalize of nothing", "FinalizeCacheEntryUpload", map[string]any{"key": "never", "version": testVersion, "size_bytes": "4"}, 404, "not_found"},
		{"finalize without size", "FinalizeCacheEntryUpload", map[string]any{"key": "pending", "version": testVersion}, 400, "invalid_argument"},
		{"finalize of a committed entry", "FinalizeCacheEntryUpload", map[string]any{"key": "done-1", "version": testVersion, "size_bytes": 7}, 409, "already_exists"},
		{"size_bytes not a number", "FinalizeCacheEntryUpload", map[string]any{"key": "pending", "version": testVersion, "size_bytes": "five"}, 400, "invalid_argument"},
		{"empty key", "CreateCacheEntry", map[string]any{"key": "", "version": testVersion}, 400, "invalid_argument"},
		{"no version", "CreateCacheEntry", map[string]any{"key": "x"}, 400, "invalid_argument"},
		{"unknown method", "DeleteCacheEntry", map[string]any{"key": "x", "version": testVersion}, 404, "bad_route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, m := ts.twirp(t, tt.method, tt.body)
			if st != tt.wantHTTP || m["code"] != tt.wantCode || m["msg"] == "" {
				t.Errorf("got %d %v, want %d {code:%s, msg:...}", st, m, tt.wantHTTP, tt.wantCode)
			}
		})
	}
	st, m := ts.twirp(t, "GetCacheEntryDownloadURL", map[string]any{"key": "pending", "version": testVersion})
	if st != 200 || m["ok"] != false {
		t.Errorf("lookup of an unfinalized entry: %d %v, want 200 ok:false", st, m)
	}
	st, m = ts.twirp(t, "GetCacheEntryDownloadURL", map[string]any{"key": "miss", "restore_keys": []string{"nope-", "done-"}, "version": testVersion})
	if st != 200 || m["matched_key"] != "done-1" {
		t.Errorf("restore_keys prefix: %d %v, want done-1", st, m)
	}
	st, m = ts.twirp(t, "GetCacheEntryDownloadURL", map[string]any{"key": "miss", "restoreKeys": []string{"done"}, "version": testVersion})
	if st != 200 || m["matched_key"] != "done-1" {
		t.Errorf("restoreKeys prefix: %d %v, want done-1", st, m)
	}
	if st, m := ts.twirp(t, "FinalizeCacheEntryUpload", map[string]any{"key": "pending", "version": testVersion, "size_bytes": 5}); st != 200 || m["ok"] != true {
		t.Errorf("finalize with the right size after a refused one: %d %v", st, m)
	}
}

func TestV2Transport(t *testing.T) {
	ts := newTestServer(t, Options{})
	path := "/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry"
	tests := []struct {
		name     string
		method   string
		hdr      map[string]string
		body     string
		wantHTTP int
		wantCode string
	}{
		{"GET is no route", "GET", map[string]string{"Content-Type": "application/json"}, "", 404, "bad_route"},
		{"protobuf is not spoken", "POST", map[string]string{"Content-Type": "application/protobuf"}, "", 404, "bad_route"},
		{"broken JSON", "POST", map[string]string{"Content-Type": "application/json"}, "{", 400, "malformed"},
		{"body over the limit", "POST", map[string]string{"Content-Type": "application/json"}, `{"key":"` + strings.Repeat("k", maxJSONBody) + `"}`, 413, "resource_exhausted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out, hdr := ts.do(t, tt.method, path, tt.hdr, []byte(tt.body))
			if st != tt.wantHTTP || !strings.Contains(string(out), `"code":"`+tt.wantCode+`"`) {
				t.Errorf("got %d %s, want %d %s", st, out, tt.wantHTTP, tt.wantCode)
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q, want application/json", hdr.Get("Content-Type"))
			}
		})
	}
}

func TestAuth(t *testing.T) {
	ts := newTestServer(t, Options{Token: "rw-token", ReadToken: "ro-token"})
	ts.v2Save(t, "seed", []byte("x"))
	tests := []struct {
		name     string
		token    string
		method   string
		wantHTTP int
		wantCode string
	}{
		{"read token reads", "ro-token", "GetCacheEntryDownloadURL", 200, ""},
		{"read token may not create", "ro-token", "CreateCacheEntry", 403, "permission_denied"},
		{"read token may not finalize", "ro-token", "FinalizeCacheEntryUpload", 403, "permission_denied"},
		{"no token", "", "GetCacheEntryDownloadURL", 401, "unauthenticated"},
		{"wrong token", "nope", "CreateCacheEntry", 401, "unauthenticated"},
		{"write token writes", "rw-token", "CreateCacheEntry", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.token = tt.token
			defer func() { ts.token = "rw-token" }()
			st, m := ts.twirp(t, tt.method, map[string]any{"key": "k-" + tt.name, "version": testVersion, "size_bytes": 1})
			if st != tt.wantHTTP || (tt.wantCode != "" && m["code"] != tt.wantCode) {
				t.Fatalf("got %d %v, want %d %s", st, m, tt.wantHTTP, tt.wantCode)
			}
			if tt.wantCode == "permission_denied" && !strings.HasPrefix(m["msg"].(string), "cache write denied:") {
				t.Errorf("msg %q, want the prefix @actions/cache recognises", m["msg"])
			}
		})
	}
	ts.token = "ro-token"
	if _, st, out := ts.v1Reserve(t, "v1-ro", testVersion, 1); st != 403 || !strings.Contains(string(out), `"message":"cache write denied:`) {
		t.Errorf("v1 reserve with the read token: %d %s, want 403 cache write denied", st, out)
	}
	if got, _ := ts.v1Lookup(t, testVersion, "seed"); got != "seed" {
		t.Errorf("v1 lookup with the read token: %q, want seed", got)
	}
	ts.token = ""
	if st, _, _ := ts.do(t, "GET", "/_apis/artifactcache/cache?keys=seed&version="+testVersion, nil, nil); st != 401 {
		t.Errorf("v1 lookup without a token: %d, want 401", st)
	}
}

// TestOpenServerLoopbackOnly: with no token the handler serves loopback
// callers only.
func TestOpenServerLoopbackOnly(t *testing.T) {
	h, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tt := range []struct {
		remote string
		want   int
	}{{"127.0.0.1:5000", 204}, {"[::1]:5000", 204}, {"192.0.2.7:5000", 403}} {
		r, _ := http.NewRequest("GET", "/_apis/artifactcache/cache?keys=k&version=v", nil)
		r.RemoteAddr = tt.remote
		w := &recorder{header: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != tt.want {
			t.Errorf("from %s: %d, want %d", tt.remote, w.status, tt.want)
		}
	}
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(s int) { r.status = s }

func TestBaseURL(t *testing.T) {
	ts := newTestServer(t, Options{BaseURL: "https://cache.example:8443/"})
	u := ts.v2Create(t, "based")
	if want := "https://cache.example:8443/" + blobAccount + "/" + blobContainer + "/"; !strings.HasPrefix(u, want) {
		t.Errorf("signed URL %s, want it under %s", u, want)
	}
}
