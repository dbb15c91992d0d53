package ghacache

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testVersion = "693bb7016429d80366022f036f84856888c9f13e00145f5f6f4dce303a38d6f2"

// v1Reserve reserves key and returns the cache id and status.
func (ts *testServer) v1Reserve(t *testing.T, key, version string, size int64) (int64, int, []byte) {
	t.Helper()
	body := map[string]any{"key": key, "version": version}
	if size >= 0 {
		body["cacheSize"] = size
	}
	b, _ := json.Marshal(body)
	st, out, _ := ts.do(t, "POST", "/_apis/artifactcache/caches", map[string]string{"Content-Type": "application/json"}, b)
	var r struct{ CacheID int64 }
	json.Unmarshal(out, &r)
	return r.CacheID, st, out
}

func (ts *testServer) v1Patch(t *testing.T, id int64, start int64, chunk []byte) int {
	t.Helper()
	cr := fmt.Sprintf("bytes %d-%d/*", start, start+int64(len(chunk))-1)
	st, _, _ := ts.do(t, "PATCH", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), map[string]string{"Content-Range": cr, "Content-Type": "application/octet-stream"}, chunk)
	return st
}

func (ts *testServer) v1Commit(t *testing.T, id, size int64) (int, []byte) {
	t.Helper()
	st, out, _ := ts.do(t, "POST", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), map[string]string{"Content-Type": "application/json"}, fmt.Appendf(nil, `{"size":%d}`, size))
	return st, out
}

// v1Save reserves, uploads data in one chunk and commits; it fails the
// test unless every step succeeds.
func (ts *testServer) v1Save(t *testing.T, key string, data []byte) {
	t.Helper()
	id, st, out := ts.v1Reserve(t, key, testVersion, int64(len(data)))
	if st != 200 || id == 0 {
		t.Fatalf("reserve %s: %d %s", key, st, out)
	}
	if len(data) > 0 {
		if st := ts.v1Patch(t, id, 0, data); st != 204 {
			t.Fatalf("patch %s: %d", key, st)
		}
	}
	if st, out := ts.v1Commit(t, id, int64(len(data))); st != 204 {
		t.Fatalf("commit %s: %d %s", key, st, out)
	}
}

// v1Lookup returns the matched key ("" on a 204 miss) and the download
// URL.
func (ts *testServer) v1Lookup(t *testing.T, version string, keys ...string) (string, string) {
	t.Helper()
	q := url.Values{"keys": {strings.Join(keys, ",")}, "version": {version}}
	st, out, _ := ts.do(t, "GET", "/_apis/artifactcache/cache?"+q.Encode(), nil, nil)
	if st == 204 {
		return "", ""
	}
	if st != 200 {
		t.Fatalf("lookup %v: %d %s", keys, st, out)
	}
	var e struct{ CacheKey, ArchiveLocation string }
	json.Unmarshal(out, &e)
	return e.CacheKey, e.ArchiveLocation
}

func (ts *testServer) download(t *testing.T, u string) string {
	t.Helper()
	st, out, _ := ts.do(t, "GET", u, map[string]string{"Authorization": ""}, nil)
	if st != 200 {
		t.Fatalf("download: %d %s", st, out)
	}
	return string(out)
}

func TestV1Matching(t *testing.T) {
	clock := newFakeClock()
	ts := newTestServer(t, Options{Now: clock.Now})
	for _, k := range []string{"npm-linux-aaa", "npm-linux-bbb", "npm-mac-ccc", "go-#9", "go-#10"} {
		ts.v1Save(t, k, []byte("data of "+k))
		clock.Add(time.Second)
	}
	tests := []struct {
		name    string
		version string
		keys    []string
		want    string
	}{
		{"exact beats a newer prefix match", testVersion, []string{"npm-linux-aaa"}, "npm-linux-aaa"},
		{"prefix of the primary key, newest", testVersion, []string{"npm-linux-"}, "npm-linux-bbb"},
		{"restore key after a missed primary", testVersion, []string{"npm-windows-x", "npm-mac-"}, "npm-mac-ccc"},
		{"restore keys in order", testVersion, []string{"nothing", "npm-linux", "npm-"}, "npm-linux-bbb"},
		{"newest by time, not key order", testVersion, []string{"go-#"}, "go-#10"},
		{"another version is another entry", strings.Repeat("0", 64), []string{"npm-linux-aaa"}, ""},
		{"keys match without regard to case", testVersion, []string{"NPM-Linux-AAA"}, "npm-linux-aaa"},
		{"prefixes too", testVersion, []string{"NPM-MAC"}, "npm-mac-ccc"},
		{"miss", testVersion, []string{"pip-"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, loc := ts.v1Lookup(t, tt.version, tt.keys...)
			if got != tt.want {
				t.Fatalf("lookup %v: got %q, want %q", tt.keys, got, tt.want)
			}
			if got != "" {
				if body := ts.download(t, loc); body != "data of "+got {
					t.Errorf("archiveLocation of %s gave %q", got, body)
				}
			}
		})
	}
}

func TestV1Rules(t *testing.T) {
	ts := newTestServer(t, Options{MaxSize: 1000})
	ts.v1Save(t, "done", []byte("0123456789"))
	dup, st, out := ts.v1Reserve(t, "done", testVersion, 10)
	if st != http.StatusConflict || !strings.Contains(string(out), `"typeKey":"ArtifactCacheItemAlreadyExistsException"`) || dup != 0 {
		t.Errorf("duplicate reserve: %d %s, want 409 ArtifactCacheItemAlreadyExistsException", st, out)
	}
	if _, st, _ := ts.v1Reserve(t, "DONE", testVersion, 10); st != http.StatusConflict {
		t.Errorf("reserve of the key in other case: %d, want 409 (keys ignore case)", st)
	}
	if _, st, _ := ts.v1Reserve(t, "done", "other-version", 10); st != 200 {
		t.Errorf("same key, other version: %d, want 200 (key+version is the identity)", st)
	}
	tests := []struct {
		name  string
		steps func(t *testing.T, id int64) int // returns the status of the step under test
		want  int
	}{
		{"chunk past the reserved size", func(t *testing.T, id int64) int { return ts.v1Patch(t, id, 5, []byte("0123456789")) }, 400},
		{"chunk past MaxSize", func(t *testing.T, id int64) int { return ts.v1Patch(t, id, 995, []byte("0123456789")) }, 413},
		{"overlapping chunk", func(t *testing.T, id int64) int {
			ts.v1Patch(t, id, 0, []byte("01234"))
			return ts.v1Patch(t, id, 4, []byte("456"))
		}, 400},
		{"same chunk twice", func(t *testing.T, id int64) int {
			ts.v1Patch(t, id, 0, []byte("01234"))
			return ts.v1Patch(t, id, 0, []byte("01234"))
		}, 400},
		{"body shorter than its Content-Range", func(t *testing.T, id int64) int {
			st, _, _ := ts.do(t, "PATCH", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), map[string]string{"Content-Range": "bytes 0-9/*"}, []byte("0123"))
			return st
		}, 400},
		{"malformed Content-Range", func(t *testing.T, id int64) int {
			st, _, _ := ts.do(t, "PATCH", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), map[string]string{"Content-Range": "bytes 9-0/*"}, nil)
			return st
		}, 400},
		{"commit of fewer bytes than uploaded", func(t *testing.T, id int64) int {
			ts.v1Patch(t, id, 0, []byte("0123456789"))
			st, _ := ts.v1Commit(t, id, 9)
			return st
		}, 400},
		{"commit with a gap", func(t *testing.T, id int64) int {
			ts.v1Patch(t, id, 0, []byte("012"))
			ts.v1Patch(t, id, 5, []byte("56789"))
			st, _ := ts.v1Commit(t, id, 10)
			return st
		}, 400},
		{"commit of an unknown id", func(t *testing.T, id int64) int { st, _ := ts.v1Commit(t, id+1000, 10); return st }, 404},
		{"chunks out of order commit", func(t *testing.T, id int64) int {
			ts.v1Patch(t, id, 5, []byte("56789"))
			ts.v1Patch(t, id, 0, []byte("01234"))
			st, _ := ts.v1Commit(t, id, 10)
			return st
		}, 204},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("rule-%d", i)
			id, st, out := ts.v1Reserve(t, key, testVersion, 10)
			if st != 200 {
				t.Fatalf("reserve: %d %s", st, out)
			}
			if got := tt.steps(t, id); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
			got, _ := ts.v1Lookup(t, testVersion, key)
			if visible := got != ""; visible != (tt.want == 204) {
				t.Errorf("entry visible: %v, want %v (only a good commit shows an entry)", visible, tt.want == 204)
			}
		})
	}
}

func TestV1Validation(t *testing.T) {
	ts := newTestServer(t, Options{MaxSize: 1000})
	tests := []struct {
		name    string
		key     string
		version string
		size    int64
		want    int
	}{
		{"empty key", "", testVersion, -1, 400},
		{"comma in key", "a,b", testVersion, -1, 400},
		{"key over 512", strings.Repeat("k", 513), testVersion, -1, 400},
		{"empty version", "k", "", -1, 400},
		{"announced size over MaxSize", "k", testVersion, 1001, 400},
		{"no size announced", "k2", testVersion, -1, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, st, out := ts.v1Reserve(t, tt.key, tt.version, tt.size); st != tt.want {
				t.Errorf("got %d %s, want %d", st, out, tt.want)
			}
		})
	}
	q := url.Values{"keys": {"a,b,c,d,e,f,g,h,i,j,k"}, "version": {testVersion}}
	if st, _, _ := ts.do(t, "GET", "/_apis/artifactcache/cache?"+q.Encode(), nil, nil); st != 400 {
		t.Errorf("lookup of 11 keys: %d, want 400", st)
	}
	big := fmt.Appendf(nil, `{"key":"k","version":"v","pad":"%s"}`, strings.Repeat("x", maxJSONBody))
	if st, _, _ := ts.do(t, "POST", "/_apis/artifactcache/caches", nil, big); st != 413 {
		t.Errorf("reserve with a body over the limit: %d, want 413", st)
	}
}

func TestV1List(t *testing.T) {
	ts := newTestServer(t, Options{})
	ts.v1Save(t, "listed", []byte("x"))
	st, out, _ := ts.do(t, "GET", "/_apis/artifactcache/caches?key=listed", nil, nil)
	var l struct {
		TotalCount     int
		ArtifactCaches []struct{ CacheKey, CacheVersion string }
	}
	json.Unmarshal(out, &l)
	if st != 200 || l.TotalCount != 1 || l.ArtifactCaches[0].CacheKey != "listed" || l.ArtifactCaches[0].CacheVersion != testVersion {
		t.Errorf("list: %d %s", st, out)
	}
}
