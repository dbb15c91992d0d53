package gha

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/cache"
)

// restAPI speaks the REST API under <ACTIONS_CACHE_URL>_apis/artifactcache/
// (GHES, Gitea, Forgejo, nektos/act, kiln cache-server).
type restAPI struct {
	c *client
	// base ends in "_apis/artifactcache/".
	base    string
	version string
	// chunk is the size of one PATCH.
	chunk int64
}

var _ service = (*restAPI)(nil)

// v1Accept is the Accept header every v1 client sends.
const v1Accept = "application/json;api-version=6.0-preview.1"

// newREST joins the base URL as @actions/cache does (its value is used as a
// prefix, so any path, such as act's token, is kept), adding the trailing
// slash the runner's value has and a hand-typed one may lack.
func newREST(c *client, base, version string, chunk int64) *restAPI {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &restAPI{c: c, base: base + "_apis/artifactcache/", version: version, chunk: chunk}
}

func (v *restAPI) azure() bool { return false }

func (v *restAPI) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var raw []byte
	ct := ""
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return nil, err
		}
		ct = "application/json"
	}
	req, err := v.c.serviceRequest(ctx, method, v.base+path, raw, ct)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", v1Accept)
	return req, nil
}

// lookup is GET cache?keys=k1,k2&version=v: 200 with the entry, 204 (or
// 404) on a miss. The service tries each key exactly, then as a prefix.
func (v *restAPI) lookup(ctx context.Context, key string, prefixes ...string) (entry, error) {
	keys := append([]string{key}, prefixes...)
	q := url.Values{"keys": {strings.Join(keys, ",")}, "version": {v.version}}
	req, err := v.request(ctx, http.MethodGet, "cache?"+q.Encode(), nil)
	if err != nil {
		return entry{}, err
	}
	resp, err := v.c.do(req, serviceName)
	if err != nil {
		return entry{}, err
	}
	switch {
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotFound:
		drain(resp)
		return entry{}, fmt.Errorf("gha: no entry %s: %w", key, cache.ErrNotFound)
	case resp.StatusCode/100 != 2:
		return entry{}, v.c.newError(resp, serviceName)
	}
	var hit struct {
		CacheKey        string `json:"cacheKey"`
		ArchiveLocation string `json:"archiveLocation"`
	}
	if err := v.c.decodeJSON(resp, &hit); err != nil {
		return entry{}, err
	}
	if hit.ArchiveLocation == "" {
		return entry{}, fmt.Errorf("gha: no entry %s: %w", key, cache.ErrNotFound)
	}
	if hit.CacheKey == "" {
		hit.CacheKey = key
	}
	return entry{Key: hit.CacheKey, URL: hit.ArchiveLocation}, nil
}

// save reserves the key (POST caches), sends the bytes in chunks (PATCH
// caches/{id} with Content-Range), then commits the size (POST
// caches/{id}).
func (v *restAPI) save(ctx context.Context, key string, size int64, r io.Reader) error {
	id, err := v.reserve(ctx, key, size)
	if err != nil {
		return err
	}
	n, err := v.upload(ctx, id, r)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("gha: entry %s: read %d bytes, want %d", key, n, size)
	}
	return v.commit(ctx, id, n)
}

func (v *restAPI) reserve(ctx context.Context, key string, size int64) (string, error) {
	body := map[string]any{"key": key, "version": v.version}
	if size >= 0 {
		body["cacheSize"] = size
	}
	req, err := v.request(ctx, http.MethodPost, "caches", body)
	if err != nil {
		return "", err
	}
	resp, err := v.c.do(req, serviceName)
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", v.c.newError(resp, serviceName)
	}
	// cacheId (GitHub, act), cacheID (gac's spelling): a number, or a
	// string in some servers.
	var m map[string]json.RawMessage
	if err := v.c.decodeJSON(resp, &m); err != nil {
		return "", err
	}
	for k, raw := range m {
		if strings.EqualFold(k, "cacheId") {
			if id, ok := int64Field(raw); ok && id >= 0 {
				return strconv.FormatInt(id, 10), nil
			}
		}
	}
	return "", fmt.Errorf("gha: reserving %s: the answer has no cacheId", key)
}

// upload sends r in chunks of v.chunk bytes, one after another; each chunk
// is held in memory so a retrying transport can send it again.
func (v *restAPI) upload(ctx context.Context, id string, r io.Reader) (int64, error) {
	buf := make([]byte, v.chunk)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			req, rerr := v.c.serviceRequest(ctx, http.MethodPatch, v.base+"caches/"+id, buf[:n], "application/octet-stream")
			if rerr != nil {
				return off, rerr
			}
			req.Header.Set("Accept", v1Accept)
			req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", off, off+int64(n)-1))
			resp, derr := v.c.do(req, serviceName)
			if derr != nil {
				return off, derr
			}
			if resp.StatusCode/100 != 2 {
				return off, v.c.newError(resp, serviceName)
			}
			drain(resp)
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, nil
		}
		if err != nil {
			return off, fmt.Errorf("gha: reading the bytes of entry %s: %w", id, err)
		}
	}
}

func (v *restAPI) commit(ctx context.Context, id string, size int64) error {
	req, err := v.request(ctx, http.MethodPost, "caches/"+id, map[string]int64{"size": size})
	if err != nil {
		return err
	}
	resp, err := v.c.do(req, serviceName)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return v.c.newError(resp, serviceName)
	}
	drain(resp)
	return nil
}

// int64Field reads a JSON number or a JSON string holding one.
func int64Field(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}
