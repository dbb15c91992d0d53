package transport

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxResumes is how often one download is resumed after its connection
// dropped (see Options.Resumable).
const MaxResumes = 5

// resumes reports whether the body of resp, the answer to req, is resumed
// with a Range request when the connection drops halfway: a whole (200)
// body of known length that Options.Resumable allows, for req or for a
// request that redirected to it.
func (t *Transport) resumes(req *http.Request, resp *http.Response) bool {
	if t.resumable == nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		return false
	}
	if req.Header.Get("Range") != "" {
		return false
	}
	if t.resumable(req) {
		return true
	}
	for r := req.Response; r != nil && r.Request != nil; r = r.Request.Response {
		if t.resumable(r.Request) {
			return true
		}
	}
	return false
}

// resumingBody is a body that, when the connection drops before its last
// byte, asks for the rest (Range: bytes=N-END) and goes on, within the
// transport's retry budget. The caller checks the digest of the whole.
type resumingBody struct {
	t       *Transport
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
		if err == nil || b.n >= b.size || !Transient(err) {
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

// resume replaces the broken body with the rest of the download.
func (b *resumingBody) resume(cause error) error {
	ctx := b.req.Context()
	if b.resumes >= MaxResumes || ctx.Err() != nil || b.t.budget < 0 {
		return cause
	}
	delay := b.t.backoff(b.resumes)
	if b.waited+delay > b.t.budget {
		return cause
	}
	b.resumes++
	b.t.logger.DebugContext(ctx, "http download resume", "url", RedactURL(b.req.URL), "offset", b.n, "size", b.size, "wait", delay, "error", RedactError(cause).Error())
	if err := b.t.sleep(ctx, delay); err != nil {
		return err
	}
	b.waited += delay
	r := b.req.Clone(ctx)
	// The end is explicit: some servers (go-containerregistry's registry)
	// do not take an open range.
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
