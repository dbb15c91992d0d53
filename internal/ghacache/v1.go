package ghacache

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// v1Error is the error body of the v1 service (the shape of Azure DevOps'
// WrappedException, which @actions/cache and go-actions-cache read).
type v1Error struct {
	ID             string `json:"$id"`
	InnerException any    `json:"innerException"`
	Message        string `json:"message"`
	TypeName       string `json:"typeName"`
	TypeKey        string `json:"typeKey"`
	ErrorCode      int    `json:"errorCode"`
	EventID        int    `json:"eventId"`
}

func writeV1Error(w http.ResponseWriter, status int, typeKey, msg string) {
	writeJSON(w, status, v1Error{
		ID: "1", Message: msg, TypeKey: typeKey, EventID: 3000,
		TypeName: "Microsoft.Azure.DevOps.ArtifactCache.WebApi." + typeKey + ", Microsoft.Azure.DevOps.ArtifactCache.WebApi",
	})
}

// v1Fail answers err in the v1 shape.
func v1Fail(w http.ResponseWriter, err error) {
	msg := strings.TrimPrefix(err.Error(), "ghacache: ")
	switch {
	case errors.Is(err, errExists):
		writeV1Error(w, http.StatusConflict, "ArtifactCacheItemAlreadyExistsException", msg)
	case errors.Is(err, errTooLarge):
		writeV1Error(w, http.StatusRequestEntityTooLarge, "ArtifactCacheSizeLimitExceededException", msg)
	case errors.Is(err, errNotFound):
		writeV1Error(w, http.StatusNotFound, "ArtifactCacheNotFoundException", msg)
	case errors.Is(err, errBadRange), errors.Is(err, errSize), errors.Is(err, errInvalid), errors.Is(err, errBusy):
		writeV1Error(w, http.StatusBadRequest, "ArgumentException", msg)
	default:
		writeV1Error(w, http.StatusInternalServerError, "InternalServerErrorException", msg)
	}
}

// v1Allow answers 401 or 403 unless r may do what need asks.
func (h *Handler) v1Allow(w http.ResponseWriter, r *http.Request, need access) bool {
	got := h.accessOf(r)
	switch {
	case got == accessNone:
		writeV1Error(w, http.StatusUnauthorized, "UnauthorizedRequestException", "a valid bearer token is required")
		return false
	case got < need:
		writeV1Error(w, http.StatusForbidden, "AccessDeniedException", writeDenied+"this token may only read")
		return false
	}
	return true
}

// v1Entry is the v1 answer to a lookup hit (ArtifactCacheEntry).
type v1Entry struct {
	CacheKey        string    `json:"cacheKey"`
	Scope           string    `json:"scope"`
	CacheVersion    string    `json:"cacheVersion"`
	CreationTime    time.Time `json:"creationTime"`
	ArchiveLocation string    `json:"archiveLocation,omitempty"`
}

// v1Lookup is GET cache?keys=k1,k2&version=v: 200 with the entry, 204 on a
// miss.
func (h *Handler) v1Lookup(w http.ResponseWriter, r *http.Request) {
	if !h.v1Allow(w, r, accessRead) {
		return
	}
	keys, version, err := lookupArgs(strings.Split(r.URL.Query().Get("keys"), ","), r.URL.Query().Get("version"))
	if err != nil {
		v1Fail(w, err)
		return
	}
	e := h.store.lookup(keys, version)
	if e == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, v1Entry{
		CacheKey: e.Key, CacheVersion: e.Version, CreationTime: e.Created,
		ArchiveLocation: h.blobURL(r, permRead, e.Name, downloadURLTTL),
	})
}

// lookupArgs checks the keys and version of a lookup.
func lookupArgs(keys []string, version string) ([]string, string, error) {
	if err := checkVersion(version); err != nil {
		return nil, "", err
	}
	if len(keys) > maxKeys {
		return nil, "", fmt.Errorf("%w: %d keys, the limit is %d", errInvalid, len(keys), maxKeys)
	}
	for i, k := range keys {
		keys[i] = strings.TrimSpace(k)
		if err := checkKey(keys[i]); err != nil {
			return nil, "", err
		}
	}
	return keys, version, nil
}

// v1List is GET caches?key=k (diagnostics): the entries with that key.
func (h *Handler) v1List(w http.ResponseWriter, r *http.Request) {
	if !h.v1Allow(w, r, accessRead) {
		return
	}
	list := h.store.list(r.URL.Query().Get("key"))
	out := struct {
		TotalCount     int       `json:"totalCount"`
		ArtifactCaches []v1Entry `json:"artifactCaches"`
	}{TotalCount: len(list), ArtifactCaches: []v1Entry{}}
	for _, e := range list {
		out.ArtifactCaches = append(out.ArtifactCaches, v1Entry{CacheKey: e.Key, CacheVersion: e.Version, CreationTime: e.Created})
	}
	writeJSON(w, http.StatusOK, out)
}

// v1Reserve is POST caches {"key","version","cacheSize"?}: {"cacheId"}.
func (h *Handler) v1Reserve(w http.ResponseWriter, r *http.Request) {
	if !h.v1Allow(w, r, accessWrite) {
		return
	}
	var req struct {
		Key       string `json:"key"`
		Version   string `json:"version"`
		CacheSize *int64 `json:"cacheSize"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		v1Fail(w, err)
		return
	}
	if err := errors.Join(checkKey(req.Key), checkVersion(req.Version)); err != nil {
		v1Fail(w, err)
		return
	}
	var size int64
	if req.CacheSize != nil {
		if size = *req.CacheSize; size < 0 {
			v1Fail(w, fmt.Errorf("%w: negative cacheSize", errInvalid))
			return
		}
	}
	if size > h.opts.MaxSize {
		// GitHub answers an announced size over the cap with 400, whose
		// message @actions/cache shows.
		writeV1Error(w, http.StatusBadRequest, "ArtifactCacheSizeLimitExceededException",
			fmt.Sprintf("cache size of %d bytes is over the limit of %d bytes", size, h.opts.MaxSize))
		return
	}
	p, err := h.store.reserve(req.Key, req.Version, size)
	if err != nil {
		v1Fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		CacheID int64 `json:"cacheId"`
	}{p.ID})
}

// v1Upload is PATCH caches/{id} with Content-Range: bytes a-b/* and the
// chunk as body.
func (h *Handler) v1Upload(w http.ResponseWriter, r *http.Request) {
	if !h.v1Allow(w, r, accessWrite) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		v1Fail(w, errNotFound)
		return
	}
	sp, err := parseContentRange(r.Header.Get("Content-Range"))
	if err != nil {
		v1Fail(w, err)
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != sp.end-sp.start+1 {
		v1Fail(w, fmt.Errorf("Content-Length %d for range %d-%d: %w", r.ContentLength, sp.start, sp.end, errBadRange))
		return
	}
	if err := h.store.writeChunk(id, sp, r.Body); err != nil {
		v1Fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseContentRange parses "bytes a-b/*" (or "/total").
func parseContentRange(s string) (span, error) {
	var sp span
	rest, ok := strings.CutPrefix(s, "bytes ")
	rng, total, ok2 := strings.Cut(rest, "/")
	a, b, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return sp, fmt.Errorf("%w: Content-Range %q, want bytes START-END/*", errInvalid, s)
	}
	var err1, err2 error
	sp.start, err1 = strconv.ParseInt(a, 10, 64)
	sp.end, err2 = strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || sp.start < 0 || sp.end < sp.start {
		return sp, fmt.Errorf("Content-Range %q: %w", s, errBadRange)
	}
	if total != "*" {
		n, err := strconv.ParseInt(total, 10, 64)
		if err != nil || sp.end >= n {
			return sp, fmt.Errorf("Content-Range %q: %w", s, errBadRange)
		}
	}
	return sp, nil
}

// v1Commit is POST caches/{id} {"size"}: the entry becomes visible if size
// is exactly what was uploaded.
func (h *Handler) v1Commit(w http.ResponseWriter, r *http.Request) {
	if !h.v1Allow(w, r, accessWrite) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		v1Fail(w, errNotFound)
		return
	}
	var req struct {
		Size *int64 `json:"size"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		v1Fail(w, err)
		return
	}
	if req.Size == nil {
		v1Fail(w, fmt.Errorf("%w: size is required", errInvalid))
		return
	}
	if _, err := h.store.commitID(id, *req.Size); err != nil {
		v1Fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
