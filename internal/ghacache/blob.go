package ghacache

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxBlockListBody caps a Put Block List body (50,000 ids of at most 88
// base64 characters, in XML).
const maxBlockListBody = 8 << 20

// writeBlobError answers an Azure Storage error: the status, the
// x-ms-error-code header and an XML body, which both Azure SDKs parse.
func writeBlobError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>", code)
	xml.EscapeText(w, []byte(msg))
	io.WriteString(w, "</Message></Error>")
}

// blobFail answers err in the Azure shape.
func blobFail(w http.ResponseWriter, err error) {
	msg := strings.TrimPrefix(err.Error(), "ghacache: ")
	switch {
	case errors.Is(err, errExists):
		writeBlobError(w, http.StatusConflict, "BlobImmutableDueToPolicy", msg)
	case errors.Is(err, errNotFound):
		writeBlobError(w, http.StatusNotFound, "BlobNotFound", msg)
	case errors.Is(err, errTooLarge):
		writeBlobError(w, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", msg)
	case errors.Is(err, errBadBlock):
		writeBlobError(w, http.StatusBadRequest, "InvalidBlockList", msg)
	case errors.Is(err, errInvalid):
		writeBlobError(w, http.StatusBadRequest, "InvalidInput", msg)
	default:
		writeBlobError(w, http.StatusInternalServerError, "InternalError", msg)
	}
}

// blobHeaders sets what Azure sends on every blob answer.
func blobHeaders(w http.ResponseWriter, r *http.Request) {
	if v := r.Header.Get("x-ms-version"); v != "" {
		w.Header().Set("x-ms-version", v)
	}
	if v := r.Header.Get("x-ms-client-request-id"); v != "" {
		w.Header().Set("x-ms-client-request-id", v)
	}
}

// blobPut serves Put Blob, Put Block (comp=block&blockid=) and Put Block
// List (comp=blocklist) on a signed upload URL.
func (h *Handler) blobPut(w http.ResponseWriter, r *http.Request) {
	blobHeaders(w, r)
	name, q := r.PathValue("name"), r.URL.Query()
	if err := h.verify(q, permWrite, name); err != nil {
		writeBlobError(w, http.StatusForbidden, "AuthenticationFailed", err.Error())
		return
	}
	if q.Get("comp") != "blocklist" && r.ContentLength > h.opts.MaxSize {
		blobFail(w, fmt.Errorf("a body of %d bytes, over the limit of %d: %w", r.ContentLength, h.opts.MaxSize, errTooLarge))
		return
	}
	var err error
	switch q.Get("comp") {
	case "":
		if bt := r.Header.Get("x-ms-blob-type"); bt != "BlockBlob" {
			writeBlobError(w, http.StatusBadRequest, "InvalidHeaderValue", fmt.Sprintf("x-ms-blob-type %q: only BlockBlob is supported", bt))
			return
		}
		err = h.store.putBlob(name, r.Body)
	case "block":
		var id []byte
		id, err = base64.StdEncoding.DecodeString(q.Get("blockid"))
		if err != nil {
			err = fmt.Errorf("blockid %q is not base64: %w", q.Get("blockid"), errBadBlock)
			break
		}
		err = h.store.putBlock(name, id, r.Body)
	case "blocklist":
		var ids [][]byte
		if ids, err = parseBlockList(r.Body); err == nil {
			err = h.store.putBlockList(name, ids)
		}
	default:
		writeBlobError(w, http.StatusBadRequest, "UnsupportedQueryParameter", fmt.Sprintf("comp=%s is not supported", q.Get("comp")))
		return
	}
	if err != nil {
		blobFail(w, err)
		return
	}
	w.Header().Set("x-ms-request-server-encrypted", "false")
	w.WriteHeader(http.StatusCreated)
}

// parseBlockList reads <BlockList> and returns its ids in document order.
// Latest and Uncommitted name staged blocks; Committed would name blocks of
// an earlier commit, which this server does not keep.
func parseBlockList(body io.Reader) ([][]byte, error) {
	dec := xml.NewDecoder(io.LimitReader(body, maxBlockListBody))
	var ids [][]byte
	var in string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: block list: %v", errInvalid, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			in = t.Name.Local
			if in == "Committed" {
				return nil, fmt.Errorf("committed blocks cannot be re-committed here: %w", errBadBlock)
			}
		case xml.EndElement:
			in = ""
		case xml.CharData:
			if in != "Latest" && in != "Uncommitted" {
				continue
			}
			id, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(t)))
			if err != nil {
				return nil, fmt.Errorf("block id %q is not base64: %w", t, errBadBlock)
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// blobGet serves Get Blob (and its HEAD) on a signed download URL, with
// one byte range from x-ms-range, else Range.
func (h *Handler) blobGet(w http.ResponseWriter, r *http.Request) {
	blobHeaders(w, r)
	name := r.PathValue("name")
	if err := h.verify(r.URL.Query(), permRead, name); err != nil {
		writeBlobError(w, http.StatusForbidden, "AuthenticationFailed", err.Error())
		return
	}
	f, e, err := h.store.open(name)
	if err != nil {
		blobFail(w, err)
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("ETag", fmt.Sprintf("\"0x%X\"", e.Created.UnixNano()))
	hd.Set("Last-Modified", e.Created.UTC().Format(http.TimeFormat))
	hd.Set("x-ms-blob-type", "BlockBlob")
	rng := r.Header.Get("x-ms-range")
	if rng == "" {
		rng = r.Header.Get("Range")
	}
	start, end, err := parseRange(rng, e.Size)
	if err != nil {
		hd.Set("Content-Range", fmt.Sprintf("bytes */%d", e.Size))
		writeBlobError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", err.Error())
		return
	}
	status := http.StatusOK
	if rng != "" {
		status = http.StatusPartialContent
		hd.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, e.Size))
	}
	hd.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	hd.Set("x-ms-blob-content-length", strconv.FormatInt(e.Size, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	io.Copy(w, io.NewSectionReader(f, start, end-start+1))
}

// parseRange parses one range "bytes=a-b", "bytes=a-" or "bytes=-n" of a
// blob of size bytes into inclusive bounds; "" is the whole blob.
func parseRange(s string, size int64) (int64, int64, error) {
	if s == "" {
		return 0, size - 1, nil
	}
	spec, ok := strings.CutPrefix(s, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 || strings.Contains(spec, ",") {
		return 0, 0, fmt.Errorf("range %q: want one range bytes=START-[END]", s)
	}
	if a == "" { // the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, fmt.Errorf("range %q of a %d-byte blob", s, size)
		}
		return max(size-n, 0), size - 1, nil
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, fmt.Errorf("range %q of a %d-byte blob", s, size)
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, fmt.Errorf("range %q of a %d-byte blob", s, size)
		}
		end = min(e, size-1)
	}
	return start, end, nil
}
