package remote

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
)

// blobURLPath matches the path of a blob GET: content-addressed, so its
// bytes never change and a download that broke can go on where it stopped.
var blobURLPath = regexp.MustCompile(`/v2/.+/blobs/sha256:[0-9a-f]{64}$`)

// blobRequest is the transport's Options.Resumable: a blob download,
// fetched directly or through a redirect from the registry's blob URL,
// may be resumed with a Range request when its connection drops.
func blobRequest(req *http.Request) bool { return blobURLPath.MatchString(req.URL.Path) }

// maxErrorBody bounds the error body fetched for a HEAD.
const maxErrorBody = 64 << 10

// headErrorBody gives a HEAD answered 401 or 403, which has no body, the
// body the registry sends for the same request as a GET: its error
// document ("UNAUTHORIZED: authentication required"), so the message the
// user sees is the registry's own. Any failure keeps the answer as it was.
type headErrorBody struct {
	next http.RoundTripper
}

func (h *headErrorBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodHead &&
		(resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		h.withErrorBody(req, resp)
	}
	return resp, err
}

// Unwrap returns the transport below, so its capabilities stay visible.
func (h *headErrorBody) Unwrap() http.RoundTripper { return h.next }

// CloseIdleConnections forwards to the transport below.
func (h *headErrorBody) CloseIdleConnections() {
	if c, ok := h.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (h *headErrorBody) withErrorBody(req *http.Request, resp *http.Response) {
	g := req.Clone(req.Context())
	g.Method = http.MethodGet
	g.Body, g.GetBody, g.ContentLength = nil, nil, 0
	gresp, err := h.next.RoundTrip(g)
	if err != nil {
		return
	}
	defer gresp.Body.Close()
	if gresp.StatusCode != resp.StatusCode {
		return
	}
	body, err := io.ReadAll(io.LimitReader(gresp.Body, maxErrorBody))
	if err != nil || len(body) == 0 {
		return
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	if ct := gresp.Header.Get("Content-Type"); ct != "" {
		resp.Header.Set("Content-Type", ct)
	}
}
