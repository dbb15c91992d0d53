package ghacache

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBodyLimits: every body over its limit is refused with 413, whether
// it announces its length or streams without one, and nothing of it
// becomes visible.
func TestBodyLimits(t *testing.T) {
	ts := newTestServer(t, Options{MaxSize: 1000})
	over := bytes.Repeat([]byte("x"), 1001)
	id, _, _ := ts.v1Reserve(t, "limits-v1", testVersion, -1)
	tests := []struct {
		name   string
		method string
		url    func() string
		hdr    map[string]string
		body   []byte
		stream bool // send without Content-Length
	}{
		{"v1 chunk past MaxSize", "PATCH", func() string { return fmt.Sprintf("/_apis/artifactcache/caches/%d", id) },
			map[string]string{"Content-Range": "bytes 0-1000/*"}, over, false},
		{"v1 chunk past MaxSize, streamed", "PATCH", func() string { return fmt.Sprintf("/_apis/artifactcache/caches/%d", id) },
			map[string]string{"Content-Range": "bytes 0-1000/*"}, over, true},
		{"Put Blob past MaxSize", "PUT", func() string { return ts.v2Create(t, "limits-a") },
			map[string]string{"x-ms-blob-type": "BlockBlob"}, over, false},
		{"Put Blob past MaxSize, streamed", "PUT", func() string { return ts.v2Create(t, "limits-b") },
			map[string]string{"x-ms-blob-type": "BlockBlob"}, over, true},
		{"Put Block past MaxSize, streamed", "PUT", func() string { return ts.v2Create(t, "limits-c") + "&comp=block&blockid=" + blockID("b") },
			nil, over, true},
		{"v1 JSON over 1 MiB", "POST", func() string { return "/_apis/artifactcache/caches" },
			map[string]string{"Content-Type": "application/json"}, []byte(`{"key":"` + strings.Repeat("k", maxJSONBody) + `"}`), true},
		{"Twirp JSON over 1 MiB", "POST", func() string { return "/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry" },
			map[string]string{"Content-Type": "application/json"}, []byte(`{"key":"` + strings.Repeat("k", maxJSONBody) + `"}`), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url()
			if !strings.HasPrefix(u, "http") {
				u = ts.URL + u
			}
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.stream {
				body = io.MultiReader(body) // hides the length: chunked encoding
			}
			req, _ := http.NewRequest(tt.method, u, body)
			req.Header.Set("Authorization", "Bearer "+ts.token)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("got %d, want 413", resp.StatusCode)
			}
		})
	}
	if st, _ := ts.v1Commit(t, id, 1001); st != 413 {
		t.Errorf("commit of more than MaxSize: %d, want 413", st)
	}
	for _, k := range []string{"limits-v1", "limits-a", "limits-b", "limits-c"} {
		if got, _ := ts.v1Lookup(t, testVersion, k); got != "" {
			t.Errorf("%s is visible", k)
		}
	}
}
