package gha

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fake is an in-process GitHub Actions cache service (v1 REST, v2 Twirp and
// an Azure-Blob-like upload/download endpoint), GitHub-strict by default,
// with switches for the ways real servers differ (gha-action.md §2).
type fake struct {
	t   *testing.T
	srv *httptest.Server
	// v1Prefix is the path before _apis/artifactcache (act's token).
	v1Prefix string

	mu      sync.Mutex
	seq     int
	entries []*fakeEntry
	uploads map[int]*fakeUpload
	// log is every request, "METHOD path?query".
	log []string
	// requests keeps each request's headers and body.
	requests []fakeRequest

	// Quirks.
	camelCase     bool // v2 answers in camelCase
	entryIDNumber bool // entry_id as a JSON number
	existsOKFalse bool // an existing key answers 200 {"ok":false}, not 409
	mutable       bool // an existing key can be written again (act, falcondev)
	ignoreRange   bool // downloads ignore Range and x-ms-range
	badRange      bool // downloads answer 206 with a Content-Range from 0
	orderByID     bool // blocks ordered by the number in their id, not the list
	bom           bool // error bodies start with a UTF-8 BOM
	// newest picks among matches (oldest first); nil picks the last.
	newest func([]*fakeEntry) *fakeEntry
	// hook, when it returns true, has answered the request itself.
	hook func(w http.ResponseWriter, r *http.Request) bool
}

type fakeEntry struct {
	id       int
	key      string
	version  string
	data     []byte
	complete bool
}

type fakeUpload struct {
	entry  *fakeEntry
	chunks map[int64][]byte // v1, by offset
	blocks map[string][]byte
	blob   []byte
}

type fakeRequest struct {
	method, path, query string
	header              http.Header
	body                []byte
}

const fakeSig = "sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D&se=2099-01-01"

func newFake(t *testing.T) *fake {
	f := &fake{t: t, uploads: map[int]*fakeUpload{}, v1Prefix: "/"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) config(version int) Config {
	c := Config{Version: version, Token: testToken, Scope: DefaultScope, Timeout: DefaultTimeout}
	if version == 1 {
		c.URL = f.srv.URL + f.v1Prefix
	} else {
		c.URL = f.srv.URL
	}
	return c
}

// testToken is a fake bearer token; no message may contain it.
const testToken = "fake-runtime-token-1234567890"

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.log = append(f.log, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	f.requests = append(f.requests, fakeRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	f.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if f.hook != nil && f.hook(w, r) {
		return
	}
	w.Header().Set("x-ms-request-id", "fake")
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/twirp/github.actions.results.api.v1.CacheService/"):
		f.twirp(w, r, strings.TrimPrefix(p, "/twirp/github.actions.results.api.v1.CacheService/"), body)
	case strings.HasPrefix(p, strings.TrimSuffix(f.v1Prefix, "/")+"/_apis/artifactcache/"):
		f.rest(w, r, strings.TrimPrefix(p, strings.TrimSuffix(f.v1Prefix, "/")+"/_apis/artifactcache/"), body)
	case strings.HasPrefix(p, "/devstoreaccount1/cache/"):
		f.blob(w, r, strings.TrimPrefix(p, "/devstoreaccount1/cache/"), body)
	default:
		http.NotFound(w, r)
	}
}

func (f *fake) fail(w http.ResponseWriter, status int, body string) {
	if f.bom {
		body = "\xef\xbb\xbf" + body
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// find matches GitHub's way: the primary key exactly, then each key as a
// prefix, the newest match first.
func (f *fake) find(version string, keys []string) *fakeEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.entries {
		if e.complete && e.version == version && e.key == keys[0] {
			return e
		}
	}
	for _, k := range keys {
		var matches []*fakeEntry
		for _, e := range f.entries {
			if e.complete && e.version == version && strings.HasPrefix(e.key, k) {
				matches = append(matches, e)
			}
		}
		if len(matches) > 0 {
			if f.newest != nil {
				return f.newest(matches)
			}
			return matches[len(matches)-1]
		}
	}
	return nil
}

// reserve makes a pending entry; nil when the key exists and the fake is
// not mutable.
func (f *fake) reserve(key, version string) *fakeUpload {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.mutable {
		for _, e := range f.entries {
			if e.key == key && e.version == version {
				return nil
			}
		}
	}
	f.seq++
	e := &fakeEntry{id: f.seq, key: key, version: version}
	f.entries = append(f.entries, e)
	u := &fakeUpload{entry: e, chunks: map[int64][]byte{}, blocks: map[string][]byte{}}
	f.uploads[e.id] = u
	return u
}

func (f *fake) blobURL(id int) string {
	return fmt.Sprintf("%s/devstoreaccount1/cache/%d?%s", f.srv.URL, id, fakeSig)
}

func (f *fake) rest(w http.ResponseWriter, r *http.Request, op string, body []byte) {
	switch {
	case r.Method == http.MethodGet && op == "cache":
		e := f.find(r.URL.Query().Get("version"), strings.Split(r.URL.Query().Get("keys"), ","))
		if e == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"cacheKey": e.key, "archiveLocation": f.blobURL(e.id), "scope": "refs/heads/main"})
	case r.Method == http.MethodPost && op == "caches":
		var req struct{ Key, Version string }
		json.Unmarshal(body, &req)
		u := f.reserve(req.Key, req.Version)
		if u == nil {
			f.fail(w, http.StatusConflict, `{"$id":"1","message":"Cache already exists.","typeKey":"ArtifactCacheItemAlreadyExistsException"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"cacheId": u.entry.id})
	case strings.HasPrefix(op, "caches/"):
		id, _ := strconv.Atoi(strings.TrimPrefix(op, "caches/"))
		f.mu.Lock()
		defer f.mu.Unlock()
		u := f.uploads[id]
		if u == nil {
			f.fail(w, http.StatusBadRequest, `{"message":"not reserved"}`)
			return
		}
		if r.Method == http.MethodPatch {
			var s, e int64
			if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/*", &s, &e); err != nil || e-s+1 != int64(len(body)) {
				f.fail(w, http.StatusBadRequest, `{"message":"bad Content-Range"}`)
				return
			}
			u.chunks[s] = body
			return
		}
		var req struct{ Size int64 }
		json.Unmarshal(body, &req)
		var offs []int64
		for o := range u.chunks {
			offs = append(offs, o)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		var data []byte
		for _, o := range offs {
			if o != int64(len(data)) {
				f.fail(w, http.StatusBadRequest, `{"message":"gap"}`)
				return
			}
			data = append(data, u.chunks[o]...)
		}
		if int64(len(data)) != req.Size {
			f.fail(w, http.StatusBadRequest, `{"message":"size mismatch"}`)
			return
		}
		f.commitLocked(u, data)
	default:
		http.NotFound(w, r)
	}
}

func (f *fake) commitLocked(u *fakeUpload, data []byte) {
	u.entry.data, u.entry.complete = data, true
	delete(f.uploads, u.entry.id)
}

func (f *fake) answer(w http.ResponseWriter, m map[string]any) {
	out := map[string]any{}
	for k, v := range m {
		if f.camelCase {
			k = camel(k)
		}
		out[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (f *fake) twirp(w http.ResponseWriter, r *http.Request, method string, body []byte) {
	var req struct {
		Key         string          `json:"key"`
		Version     string          `json:"version"`
		RestoreKeys []string        `json:"restore_keys"`
		SizeBytes   json.RawMessage `json:"size_bytes"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		f.fail(w, http.StatusBadRequest, `{"code":"malformed","msg":"bad json"}`)
		return
	}
	switch method {
	case "CreateCacheEntry":
		u := f.reserve(req.Key, req.Version)
		if u == nil {
			if f.existsOKFalse {
				f.answer(w, map[string]any{"ok": false})
				return
			}
			f.fail(w, http.StatusConflict, `{"code":"already_exists","msg":"cache entry with the same key, version, and scope already exists"}`)
			return
		}
		f.answer(w, map[string]any{"ok": true, "signed_upload_url": f.blobURL(u.entry.id)})
	case "FinalizeCacheEntryUpload":
		size, ok := int64Field(req.SizeBytes)
		f.mu.Lock()
		defer f.mu.Unlock()
		for id, u := range f.uploads {
			if u.entry.key == req.Key && u.entry.version == req.Version && u.blob != nil {
				if !ok || size != int64(len(u.blob)) {
					f.fail(w, http.StatusBadRequest, `{"code":"invalid_argument","msg":"size"}`)
					return
				}
				f.commitLocked(u, u.blob)
				var eid any = strconv.Itoa(id)
				if f.entryIDNumber {
					eid = id
				}
				f.answer(w, map[string]any{"ok": true, "entry_id": eid})
				return
			}
		}
		f.answer(w, map[string]any{"ok": false})
	case "GetCacheEntryDownloadURL":
		e := f.find(req.Version, append([]string{req.Key}, req.RestoreKeys...))
		if e == nil {
			f.answer(w, map[string]any{"ok": false})
			return
		}
		f.answer(w, map[string]any{"ok": true, "signed_download_url": f.blobURL(e.id), "matched_key": e.key})
	default:
		f.fail(w, http.StatusNotFound, `{"code":"bad_route","msg":"no such method"}`)
	}
}

func (f *fake) blob(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	id, _ := strconv.Atoi(name)
	if r.URL.Query().Get("sig") != "c2VjcmV0LXNpZ25hdHVyZQ==" || r.Header.Get("Authorization") != "" {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>bad signature</Message></Error>`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet {
		f.blobGet(w, r, id)
		return
	}
	f.blobPut(w, r, id, body)
}

// blobGet is Get Blob, ranged by x-ms-range or Range (unless a quirk says
// otherwise). f.mu is held.
func (f *fake) blobGet(w http.ResponseWriter, r *http.Request, id int) {
	{
		var e *fakeEntry
		for _, x := range f.entries {
			if x.id == id && x.complete {
				e = x
			}
		}
		if e == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		rng := r.Header.Get("x-ms-range")
		if rng == "" {
			rng = r.Header.Get("Range")
		}
		if rng == "" || f.ignoreRange {
			w.Header().Set("Content-Length", strconv.Itoa(len(e.data)))
			w.Write(e.data)
			return
		}
		var off int
		fmt.Sscanf(rng, "bytes=%d-", &off)
		if f.badRange {
			off = 0
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, len(e.data)-1, len(e.data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(e.data[off:])
	}
}

// blobPut is Put Blob, Put Block and Put Block List. f.mu is held.
func (f *fake) blobPut(w http.ResponseWriter, r *http.Request, id int, body []byte) {
	if r.Header.Get("x-ms-version") == "" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `<Error><Code>MissingRequiredHeader</Code><Message>x-ms-version</Message></Error>`)
		return
	}
	u := f.uploads[id]
	if u == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	switch r.URL.Query().Get("comp") {
	case "":
		if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `<Error><Code>MissingRequiredHeader</Code><Message>x-ms-blob-type</Message></Error>`)
			return
		}
		u.blob = body
	case "block":
		u.blocks[r.URL.Query().Get("blockid")] = body
	case "blocklist":
		var list struct {
			Latest []string `xml:"Latest"`
		}
		if err := xml.Unmarshal(body, &list); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ids := list.Latest
		if f.orderByID {
			// falcondev: ignore the list, order by the number in the id.
			ids = nil
			for id := range u.blocks {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return blockNumber(ids[i]) < blockNumber(ids[j]) })
		}
		var data []byte
		for _, id := range ids {
			b, ok := u.blocks[id]
			if !ok {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			data = append(data, b...)
		}
		u.blob = data
	}
	w.WriteHeader(http.StatusCreated)
}

// blockNumber decodes a Go-SDK block id's number (big-endian at byte 16).
func blockNumber(id string) uint32 {
	raw, err := base64.StdEncoding.DecodeString(id)
	if err != nil || len(raw) != blockIDLen {
		return ^uint32(0)
	}
	return binary.BigEndian.Uint32(raw[16:])
}

// requestsTo returns the logged requests whose path contains s.
func (f *fake) requestsTo(s string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.requests {
		if strings.Contains(r.path, s) {
			out = append(out, r)
		}
	}
	return out
}

// put stores a committed entry directly.
func (f *fake) put(key, version string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.entries = append(f.entries, &fakeEntry{id: f.seq, key: key, version: version, data: data, complete: true})
}

func (f *fake) entryKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for _, e := range f.entries {
		if e.complete {
			keys = append(keys, e.key)
		}
	}
	return keys
}
