package ghacache

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// twirpService is the path of the v2 cache service's methods.
const twirpService = "twirp/github.actions.results.api.v1.CacheService"

// twirpStatus maps Twirp error codes to HTTP statuses (twitchtv/twirp
// docs/errors.md).
var twirpStatus = map[string]int{
	"invalid_argument":    http.StatusBadRequest,
	"malformed":           http.StatusBadRequest,
	"unauthenticated":     http.StatusUnauthorized,
	"permission_denied":   http.StatusForbidden,
	"not_found":           http.StatusNotFound,
	"bad_route":           http.StatusNotFound,
	"already_exists":      http.StatusConflict,
	"failed_precondition": http.StatusPreconditionFailed,
	"resource_exhausted":  http.StatusTooManyRequests,
	"internal":            http.StatusInternalServerError,
	"unimplemented":       http.StatusNotImplemented,
}

// writeTwirpError answers a Twirp error {"code","msg"} with its status.
func writeTwirpError(w http.ResponseWriter, code, msg string) {
	status, ok := twirpStatus[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
	}{code, msg})
}

// twirpFail answers err as a Twirp error.
func twirpFail(w http.ResponseWriter, err error) {
	msg := strings.TrimPrefix(err.Error(), "ghacache: ")
	switch {
	case errors.Is(err, errExists):
		writeTwirpError(w, "already_exists", msg)
	case errors.Is(err, errTooLarge):
		// A request over the limit is 413 on every API; Twirp has no code
		// for it, so the body says resource_exhausted.
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"code": "resource_exhausted", "msg": msg})
	case errors.Is(err, errNotFound):
		writeTwirpError(w, "not_found", msg)
	case errors.Is(err, errBusy):
		writeTwirpError(w, "failed_precondition", msg)
	case errors.Is(err, errInvalid), errors.Is(err, errSize), errors.Is(err, errBadRange):
		writeTwirpError(w, "invalid_argument", msg)
	default:
		writeTwirpError(w, "internal", msg)
	}
}

// twirpRequest is the union of the three methods' requests. Proto JSON
// allows both field spellings and int64 as a string or a number; the
// fields are taken from raw members for that reason.
type twirpRequest struct {
	Key         string
	Version     string
	RestoreKeys []string
	SizeBytes   int64
	hasSize     bool
}

func parseTwirpRequest(raw map[string]json.RawMessage) (twirpRequest, error) {
	var req twirpRequest
	pick := func(names ...string) json.RawMessage {
		for _, n := range names {
			if v, ok := raw[n]; ok && string(v) != "null" {
				return v
			}
		}
		return nil
	}
	for _, f := range []struct {
		v     any
		names []string
	}{
		{&req.Key, []string{"key"}},
		{&req.Version, []string{"version"}},
		{&req.RestoreKeys, []string{"restore_keys", "restoreKeys"}},
	} {
		if v := pick(f.names...); v != nil {
			if err := json.Unmarshal(v, f.v); err != nil {
				return req, fmt.Errorf("%w: field %s: %v", errInvalid, f.names[0], err)
			}
		}
	}
	if v := pick("size_bytes", "sizeBytes"); v != nil {
		n, err := parseInt64(v)
		if err != nil {
			return req, fmt.Errorf("%w: field size_bytes: %v", errInvalid, err)
		}
		req.SizeBytes, req.hasSize = n, true
	}
	return req, nil
}

// parseInt64 reads a proto JSON int64: a number or a decimal string.
func parseInt64(v json.RawMessage) (int64, error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return strconv.ParseInt(s, 10, 64)
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return 0, err
	}
	return n.Int64()
}

// twirp serves POST /twirp/github.actions.results.api.v1.CacheService/M.
func (h *Handler) twirp(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	var fn func(http.ResponseWriter, *http.Request, twirpRequest)
	switch method {
	case "CreateCacheEntry":
		fn = h.createCacheEntry
	case "FinalizeCacheEntryUpload":
		fn = h.finalizeCacheEntryUpload
	case "GetCacheEntryDownloadURL":
		fn = h.getCacheEntryDownloadURL
	}
	if r.Method != http.MethodPost || fn == nil {
		writeTwirpError(w, "bad_route", fmt.Sprintf("no handler for %s %s", r.Method, r.URL.Path))
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/json" {
		writeTwirpError(w, "bad_route", fmt.Sprintf("unexpected Content-Type %q: this server speaks Twirp JSON only", ct))
		return
	}
	need := accessRead
	if method != "GetCacheEntryDownloadURL" {
		need = accessWrite
	}
	switch got := h.accessOf(r); {
	case got == accessNone:
		writeTwirpError(w, "unauthenticated", "a valid bearer token is required")
		return
	case got < need:
		writeTwirpError(w, "permission_denied", writeDenied+"this token may only read")
		return
	}
	var raw map[string]json.RawMessage
	if err := decodeJSON(w, r, &raw); err != nil {
		if errors.Is(err, errInvalid) {
			writeTwirpError(w, "malformed", strings.TrimPrefix(err.Error(), "ghacache: "))
			return
		}
		twirpFail(w, err)
		return
	}
	req, err := parseTwirpRequest(raw)
	if err == nil {
		err = errors.Join(checkKey(req.Key), checkVersion(req.Version))
	}
	if err != nil {
		twirpFail(w, err)
		return
	}
	fn(w, r, req)
}

func (h *Handler) createCacheEntry(w http.ResponseWriter, r *http.Request, req twirpRequest) {
	p, err := h.store.reserve(req.Key, req.Version, 0)
	if err != nil {
		twirpFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		OK              bool   `json:"ok"`
		SignedUploadURL string `json:"signed_upload_url"`
		Message         string `json:"message"`
	}{true, h.blobURL(r, permWrite, p.Name, uploadURLTTL), ""})
}

func (h *Handler) finalizeCacheEntryUpload(w http.ResponseWriter, r *http.Request, req twirpRequest) {
	if !req.hasSize {
		twirpFail(w, fmt.Errorf("%w: size_bytes is required", errInvalid))
		return
	}
	e, err := h.store.commitIdent(req.Key, req.Version, req.SizeBytes)
	if err != nil {
		twirpFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		OK      bool   `json:"ok"`
		EntryID string `json:"entry_id"` // int64 travels as a string
		Message string `json:"message"`
	}{true, strconv.FormatInt(e.ID, 10), ""})
}

func (h *Handler) getCacheEntryDownloadURL(w http.ResponseWriter, r *http.Request, req twirpRequest) {
	keys := []string{req.Key}
	for _, k := range req.RestoreKeys {
		// go-actions-cache repeats the primary key among the restore keys.
		if k != req.Key {
			keys = append(keys, k)
		}
	}
	keys, version, err := lookupArgs(keys, req.Version)
	if err != nil {
		twirpFail(w, err)
		return
	}
	out := struct {
		OK                bool   `json:"ok"`
		SignedDownloadURL string `json:"signed_download_url"`
		MatchedKey        string `json:"matched_key"`
	}{}
	if e := h.store.lookup(keys, version); e != nil {
		out.OK, out.MatchedKey = true, e.Key
		out.SignedDownloadURL = h.blobURL(r, permRead, e.Name, downloadURLTTL)
	}
	writeJSON(w, http.StatusOK, out)
}
