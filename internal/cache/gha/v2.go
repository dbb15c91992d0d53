package gha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/transport"

	"github.com/kiln-build/kiln/internal/cache"
)

// twirpService is the path of GitHub's cache service v2.
const twirpService = "twirp/github.actions.results.api.v1.CacheService/"

// twirpAPI speaks the Twirp CacheService (github.com since 2025, kiln
// cache-server) and uploads to the signed blob-storage URLs it hands out.
type twirpAPI struct {
	c *client
	// base ends in "/twirp/…CacheService/".
	base    string
	version string
	blob    blobOptions
}

var _ service = (*twirpAPI)(nil)

// newTwirp joins the base URL as go-actions-cache (BuildKit's client) does:
// the base's path is kept, so a service behind a path prefix works; a
// service at the origin root (GitHub, kiln cache-server) is the same
// either way.
func newTwirp(c *client, base, version string, blob blobOptions) *twirpAPI {
	return &twirpAPI{c: c, base: strings.TrimRight(base, "/") + "/" + twirpService, version: version, blob: blob}
}

func (v *twirpAPI) azure() bool { return true }

// call posts a Twirp JSON request and decodes the answer as a map, so that
// both field spellings (proto names, JSON camelCase) can be read.
func (v *twirpAPI) call(ctx context.Context, method string, body any) (twirpAnswer, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := v.c.serviceRequest(ctx, http.MethodPost, v.base+method, raw, "application/json")
	if err != nil {
		return nil, err
	}
	resp, err := v.c.do(req, serviceName)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, v.c.newError(resp, serviceName)
	}
	var m twirpAnswer
	if err := v.c.decodeJSON(resp, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// twirpAnswer is a decoded Twirp JSON answer.
type twirpAnswer map[string]json.RawMessage

// raw returns the field under its proto name or its camelCase name.
func (a twirpAnswer) raw(proto string) (json.RawMessage, bool) {
	if r, ok := a[proto]; ok {
		return r, true
	}
	r, ok := a[camel(proto)]
	return r, ok
}

func (a twirpAnswer) str(proto string) string {
	r, ok := a.raw(proto)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) != nil {
		return ""
	}
	return s
}

// ok reads the ok field: a proto3 false is left out, so absent is false.
func (a twirpAnswer) ok() bool {
	r, found := a.raw("ok")
	if !found {
		return false
	}
	var b bool
	if json.Unmarshal(r, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(r, &s) == nil && s == "true"
}

// camel turns a proto name (signed_upload_url) into its JSON name
// (signedUploadUrl).
func camel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// lookup is GetCacheEntryDownloadURL. The primary key goes into
// restore_keys too, as go-actions-cache sends it, so servers that match
// only restore keys by prefix find prefix matches. A miss is 200
// {"ok":false} (or a Twirp not_found).
func (v *twirpAPI) lookup(ctx context.Context, key string, prefixes ...string) (entry, error) {
	body := map[string]any{"key": key, "version": v.version}
	if len(prefixes) > 0 {
		body["restore_keys"] = prefixes
	}
	a, err := v.call(ctx, "GetCacheEntryDownloadURL", body)
	var e *transport.Error
	if errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Code == "not_found") {
		return entry{}, fmt.Errorf("gha: no entry %s: %w", key, cache.ErrNotFound)
	}
	if err != nil {
		return entry{}, err
	}
	u := a.str("signed_download_url")
	if !a.ok() || u == "" {
		return entry{}, fmt.Errorf("gha: no entry %s: %w", key, cache.ErrNotFound)
	}
	matched := a.str("matched_key")
	if matched == "" {
		matched = key
	}
	return entry{Key: matched, URL: u}, nil
}

// save is CreateCacheEntry, the upload to the signed URL, then
// FinalizeCacheEntryUpload. A 409 already_exists and a 200 {"ok":false}
// both mean the entry is there (or being written by another job): kiln's
// keys are content-addressed or numbered, so either way this one need
// not be written.
func (v *twirpAPI) save(ctx context.Context, key string, size int64, r io.Reader) error {
	a, err := v.call(ctx, "CreateCacheEntry", map[string]any{"key": key, "version": v.version})
	if err != nil {
		return err
	}
	u := a.str("signed_upload_url")
	if !a.ok() || u == "" {
		msg := v.c.scrub(oneLine(a.str("message")))
		if writeRefused(msg) {
			return fmt.Errorf("%w (the service says: %s)", ErrReadOnly, msg)
		}
		if msg != "" {
			return fmt.Errorf("%w (%s)", errExists, msg)
		}
		return errExists
	}
	n, err := v.c.putBlob(ctx, u, r, size, v.blob)
	if err != nil {
		return err
	}
	// size_bytes as a JSON string, the proto3 form: it is what
	// @actions/cache sends, and servers that take only one form take it.
	fa, err := v.call(ctx, "FinalizeCacheEntryUpload", map[string]any{
		"key": key, "version": v.version, "size_bytes": strconv.FormatInt(n, 10),
	})
	if err != nil {
		return err
	}
	if !fa.ok() {
		msg := fa.str("message")
		if msg == "" {
			msg = "the service answered ok=false"
		}
		return fmt.Errorf("%w: entry %s: %s", errNotFinalized, key, v.c.scrub(oneLine(msg)))
	}
	return nil
}

// writeRefused reports whether an {"ok":false} message says the cache
// takes no writes: a policy denial ("cache write denied: …", as
// @actions/cache recognises it) or a spent budget ("… your cache is now
// read only"). Those are not "already there".
func writeRefused(msg string) bool {
	m := strings.ToLower(msg)
	return strings.HasPrefix(m, "cache write denied") || strings.Contains(m, "read only") || strings.Contains(m, "read-only")
}
