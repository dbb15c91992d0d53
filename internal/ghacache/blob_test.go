package ghacache

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func blockID(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func blockList(ids ...string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for _, id := range ids {
		fmt.Fprintf(&b, "<Latest>%s</Latest>", blockID(id))
	}
	b.WriteString("</BlockList>")
	return []byte(b.String())
}

func TestBlockList(t *testing.T) {
	ts := newTestServer(t, Options{MaxSize: 100})
	tests := []struct {
		name   string
		blocks [][2]string // id, data, staged in this order
		list   []string
		want   int
		blob   string // the blob after a 201
	}{
		{"blocks ordered by the list, not by arrival", [][2]string{{"id-2", "world"}, {"id-1", "hello "}}, []string{"id-1", "id-2"}, 201, "hello world"},
		{"a block listed twice", [][2]string{{"id-a", "ab"}}, []string{"id-a", "id-a"}, 201, "abab"},
		{"unlisted blocks are dropped", [][2]string{{"id-1", "keep"}, {"id-2", "drop"}}, []string{"id-1"}, 201, "keep"},
		{"a listed block never staged", [][2]string{{"id-1", "x"}}, []string{"id-1", "id-9"}, 400, ""},
		{"block ids of two lengths", [][2]string{{"id-1", "x"}, {"id-22", "y"}}, []string{"id-1"}, 400, ""},
		{"blocks over MaxSize", [][2]string{{"id-1", strings.Repeat("x", 60)}, {"id-2", strings.Repeat("y", 60)}}, []string{"id-1", "id-2"}, 413, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("blocks-%d", i)
			u := ts.v2Create(t, key)
			st := 0
			for _, b := range tt.blocks {
				st, _, _ = ts.do(t, "PUT", u+"&comp=block&blockid="+url.QueryEscape(blockID(b[0])), nil, []byte(b[1]))
				if st != 201 {
					break
				}
			}
			if st == 201 {
				st, _, _ = ts.do(t, "PUT", u+"&comp=blocklist", nil, blockList(tt.list...))
			}
			if st != tt.want {
				t.Fatalf("got %d, want %d", st, tt.want)
			}
			if tt.want != 201 {
				return
			}
			_, m := ts.twirp(t, "FinalizeCacheEntryUpload", map[string]any{"key": key, "version": testVersion, "size_bytes": len(tt.blob)})
			_, m = ts.twirp(t, "GetCacheEntryDownloadURL", map[string]any{"key": key, "version": testVersion})
			if got := ts.download(t, m["signed_download_url"].(string)); got != tt.blob {
				t.Errorf("blob %q, want %q", got, tt.blob)
			}
		})
	}
}

func TestBlobPut(t *testing.T) {
	ts := newTestServer(t, Options{MaxSize: 100})
	ts.v2Save(t, "committed", []byte("x"))
	_, m := ts.twirp(t, "GetCacheEntryDownloadURL", map[string]any{"key": "committed", "version": testVersion})
	readURL := m["signed_download_url"].(string)
	tests := []struct {
		name string
		url  func(u string) string
		hdr  map[string]string
		body string
		want int
	}{
		{"Put Blob", nil, map[string]string{"x-ms-blob-type": "BlockBlob"}, "data", 201},
		{"Put Blob without x-ms-blob-type", nil, nil, "data", 400},
		{"Put Blob of a page blob", nil, map[string]string{"x-ms-blob-type": "PageBlob"}, "data", 400},
		{"Put Blob over MaxSize", nil, map[string]string{"x-ms-blob-type": "BlockBlob"}, strings.Repeat("x", 101), 413},
		{"bad signature", func(u string) string { return strings.Replace(u, "sig=", "sig=AA", 1) }, map[string]string{"x-ms-blob-type": "BlockBlob"}, "d", 403},
		{"a read URL cannot write", func(string) string { return readURL }, map[string]string{"x-ms-blob-type": "BlockBlob"}, "d", 403},
		{"another blob's signature", func(u string) string {
			i := strings.Index(u, "?")
			return ts.URL + "/" + blobAccount + "/" + blobContainer + "/0123" + u[i:]
		}, map[string]string{"x-ms-blob-type": "BlockBlob"}, "d", 403},
		{"unknown comp", func(u string) string { return u + "&comp=appendblock" }, nil, "d", 400},
		{"block id not base64", func(u string) string { return u + "&comp=block&blockid=%25%25" }, nil, "d", 400},
		{"block id over 64 bytes", func(u string) string {
			return u + "&comp=block&blockid=" + url.QueryEscape(blockID(strings.Repeat("i", 65)))
		}, nil, "d", 400},
		{"committed block lists are refused", func(u string) string { return u + "&comp=blocklist" }, nil, "<BlockList><Committed>AA==</Committed></BlockList>", 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := ts.v2Create(t, fmt.Sprintf("put-%d", i))
			if tt.url != nil {
				u = tt.url(u)
			}
			hdr := map[string]string{"Authorization": ""}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			st, out, h := ts.do(t, "PUT", u, hdr, []byte(tt.body))
			if st != tt.want {
				t.Errorf("got %d %s, want %d", st, out, tt.want)
			}
			if h.Get("x-ms-request-id") == "" {
				t.Errorf("no x-ms-request-id on a %d answer", st)
			}
			if st >= 400 && h.Get("x-ms-error-code") == "" {
				t.Errorf("no x-ms-error-code on a %d answer", st)
			}
		})
	}
	// Entries are immutable: their upload URL no longer takes writes.
	u := ts.v2Create(t, "immutable")
	ts.do(t, "PUT", u, map[string]string{"x-ms-blob-type": "BlockBlob"}, []byte("v1"))
	ts.twirp(t, "FinalizeCacheEntryUpload", map[string]any{"key": "immutable", "version": testVersion, "size_bytes": 2})
	if st, _, _ := ts.do(t, "PUT", u, map[string]string{"x-ms-blob-type": "BlockBlob"}, []byte("v2")); st != 409 {
		t.Errorf("Put Blob to a committed entry: %d, want 409", st)
	}
}

func TestBlobGet(t *testing.T) {
	clock := newFakeClock()
	ts := newTestServer(t, Options{Now: clock.Now})
	ts.v2Save(t, "ranged", []byte("0123456789"))
	_, m := ts.twirp(t, "GetCacheEntryDownloadURL", map[string]any{"key": "ranged", "version": testVersion})
	u := m["signed_download_url"].(string)
	tests := []struct {
		name      string
		hdr       map[string]string
		want      int
		body      string
		wantRange string
	}{
		{"whole blob", nil, 200, "0123456789", ""},
		{"Range", map[string]string{"Range": "bytes=3-5"}, 206, "345", "bytes 3-5/10"},
		{"open Range (go-actions-cache v1)", map[string]string{"Range": "bytes=7-"}, 206, "789", "bytes 7-9/10"},
		{"x-ms-range (the Go Azure SDK)", map[string]string{"x-ms-range": "bytes=8-"}, 206, "89", "bytes 8-9/10"},
		{"x-ms-range wins over Range", map[string]string{"x-ms-range": "bytes=1-2", "Range": "bytes=5-6"}, 206, "12", "bytes 1-2/10"},
		{"suffix range", map[string]string{"Range": "bytes=-4"}, 206, "6789", "bytes 6-9/10"},
		{"end past the blob is clipped", map[string]string{"Range": "bytes=9-100"}, 206, "9", "bytes 9-9/10"},
		{"start past the blob", map[string]string{"x-ms-range": "bytes=10-"}, 416, "", "bytes */10"},
		{"two ranges", map[string]string{"Range": "bytes=0-1,3-4"}, 416, "", "bytes */10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": ""}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			st, out, h := ts.do(t, "GET", u, hdr, nil)
			if st != tt.want || (st < 300 && string(out) != tt.body) || h.Get("Content-Range") != tt.wantRange {
				t.Errorf("got %d %q Content-Range %q, want %d %q %q", st, out, h.Get("Content-Range"), tt.want, tt.body, tt.wantRange)
			}
			if h.Get("x-ms-request-id") == "" {
				t.Error("no x-ms-request-id")
			}
		})
	}
	if st, out, _ := ts.do(t, "HEAD", u, nil, nil); st != 200 || len(out) != 0 {
		t.Errorf("HEAD: %d %q", st, out)
	}
	pending := ts.v2Create(t, "half")
	ts.do(t, "PUT", pending, map[string]string{"x-ms-blob-type": "BlockBlob"}, []byte("half-uploaded"))
	if st, _, _ := ts.do(t, "GET", strings.Replace(pending, "sp=w", "sp=r", 1), nil, nil); st != 403 {
		t.Errorf("GET with an upload URL's signature: %d, want 403", st)
	}
	name := pending[strings.LastIndex(pending, "/")+1 : strings.Index(pending, "?")]
	exp := clock.Now().Add(time.Hour).Unix()
	signed := fmt.Sprintf("%s/%s/%s/%s?exp=%d&sp=r&sig=%s", ts.URL, blobAccount, blobContainer, name, exp, ts.h.mac(permRead, name, exp))
	if st, _, _ := ts.do(t, "GET", signed, nil, nil); st != 404 {
		t.Errorf("GET of a blob not finalized, correctly signed: %d, want 404 (nothing half-uploaded is served)", st)
	}
	clock.Add(downloadURLTTL + time.Second)
	if st, _, _ := ts.do(t, "GET", u, nil, nil); st != 403 {
		t.Errorf("GET with an expired URL: %d, want 403", st)
	}
}

// TestRequestIDEverywhere: the Go Azure SDK dereferences x-ms-request-id on
// whatever it gets back, so every answer of every API carries one.
func TestRequestIDEverywhere(t *testing.T) {
	ts := newTestServer(t, Options{})
	for _, p := range []string{"/", "/_apis/artifactcache/cache", "/twirp/github.actions.results.api.v1.CacheService/Nope", "/kiln/cache/nothing"} {
		_, _, h := ts.do(t, "GET", p, nil, nil)
		if h.Get("x-ms-request-id") == "" {
			t.Errorf("GET %s: no x-ms-request-id", p)
		}
	}
}
