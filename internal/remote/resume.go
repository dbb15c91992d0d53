package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// blobURLPath matches the path of a blob GET: content-addressed, so its
// bytes never change and a download that broke can go on where it stopped.
var blobURLPath = regexp.MustCompile(`/v2/.+/blobs/sha256:[0-9a-f]{64}$`)

// maxResumes bounds how often one blob download is resumed.
const maxResumes = 5

// resumable reports whether the body of resp, the answer to req, can be
// resumed with a Range request when the connection drops halfway: a whole
// (200) blob of known length, fetched directly or through a redirect from
// the registry's blob URL.
func resumable(req *http.Request, resp *http.Response) bool {
	if req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		return false
	}
	if req.Header.Get("Range") != "" {
		return false
	}
	if blobURLPath.MatchString(req.URL.Path) {
		return true
	}
	// A redirect (to blob storage) keeps the request that led to it.
	for r := req.Response; r != nil && r.Request != nil; r = r.Request.Response {
		if blobURLPath.MatchString(r.Request.URL.Path) {
			return true
		}
	}
	return false
}

// resumingBody is a blob body that, when the connection drops before its
// last byte, asks for the rest (Range: bytes=N-END) and goes on, within the
// transport's retry budget. The caller (go-containerregistry) checks the
// digest of the whole as usual.
type resumingBody struct {
	t       *retryTransport
	req     *http.Request
	body    io.ReadCloser
	n, size int64
	resumes int
	waited  time.Duration
}

func (b *resumingBody) Read(p []byte) (int, error) {
	for {
		n, err := b.body.Read(p)
		b.n += int64(n)
		if err == nil || b.n >= b.size || !transientNetError(err) {
			return n, err
		}
		if b.resume(err) != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume replaces the broken body with the rest of the blob.
func (b *resumingBody) resume(cause error) error {
	ctx := b.req.Context()
	if b.resumes >= maxResumes || ctx.Err() != nil || b.t.maxWait < 0 {
		return cause
	}
	delay := backoff(b.resumes)
	if b.waited+delay > b.t.maxWait {
		return cause
	}
	b.resumes++
	b.t.logger.DebugContext(ctx, "registry download resume", "url", redactURL(b.req.URL), "offset", b.n, "size", b.size, "wait", delay, "error", redactError(cause).Error())
	if err := b.t.sleep(ctx, delay); err != nil {
		return err
	}
	b.waited += delay
	r := b.req.Clone(ctx)
	// The end is explicit: some registries (go-containerregistry's) do not
	// take an open range.
	r.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", b.n, b.size-1))
	resp, err := b.t.retry(r)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && contentRangeStart(resp.Header.Get("Content-Range")) == b.n:
	case resp.StatusCode == http.StatusOK && resp.ContentLength == b.size:
		// The server ignored Range: skip what we have.
		if _, err := io.CopyN(io.Discard, resp.Body, b.n); err != nil {
			resp.Body.Close()
			return err
		}
	default:
		resp.Body.Close()
		return fmt.Errorf("resuming download: %s", resp.Status)
	}
	b.body.Close()
	b.body = resp.Body
	return nil
}

func (b *resumingBody) Close() error { return b.body.Close() }

// contentRangeStart returns N of "bytes N-M/T", or -1.
func contentRangeStart(v string) int64 {
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return -1
	}
	start, _, ok := strings.Cut(v, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// maxErrorBody bounds the error body fetched for a HEAD.
const maxErrorBody = 64 << 10

// withErrorBody gives a HEAD answered 401 or 403, which has no body, the
// body the registry sends for the same request as a GET: its error
// document ("UNAUTHORIZED: authentication required"), so the message the
// user sees is the registry's own. Any failure keeps resp as it was.
func (t *retryTransport) withErrorBody(ctx context.Context, req *http.Request, resp *http.Response) {
	g := req.Clone(ctx)
	g.Method = http.MethodGet
	g.Body, g.GetBody, g.ContentLength = nil, nil, 0
	gresp, err := t.inner.RoundTrip(g)
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
