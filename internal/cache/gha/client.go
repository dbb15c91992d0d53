package gha

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/cache"
)

// client is the HTTP side both protocols share: the bearer token for the
// service, redaction for messages, and downloads from signed URLs.
type client struct {
	http      *http.Client
	token     string
	userAgent string
	// secrets are scrubbed from every message.
	secrets []string
	// hideHost and hidePath are a URL prefix shown as "/…/" in messages.
	hideHost string
	hidePath string
}

// entry is a cache entry a lookup found: its key as the service spells it
// and a URL its bytes can be read from without the token.
type entry struct {
	Key string
	URL string
}

// service is one protocol's view of the cache service.
type service interface {
	// lookup returns the entry stored under key, else the newest entry
	// whose key starts with one of prefixes. A miss is cache.ErrNotFound.
	lookup(ctx context.Context, key string, prefixes ...string) (entry, error)
	// save creates the entry key holding size bytes read from r. An entry
	// that is already there is an error isExists recognises.
	save(ctx context.Context, key string, size int64, r io.Reader) error
	// azure reports whether downloads are Azure Blob reads (which want
	// x-ms-version).
	azure() bool
}

// serviceRequest makes a request to the cache service itself, which takes
// the bearer token. Blob URLs (signed) never get the token.
func (c *client) serviceRequest(ctx context.Context, method, u string, body []byte, contentType string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("gha: making request: %s", c.scrub(err.Error()))
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", c.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// do sends req. A request that gets no answer is a *transport.Error
// naming service, with the redacted URL only (the url.Error of net/http
// carries the full one); it still matches the context's error.
func (c *client) do(req *http.Request, service string) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.requestError(req, service, err)
	}
	return resp, nil
}

// maxJSON caps a service answer read as JSON.
const maxJSON = 1 << 20

// decodeJSON reads a 2xx answer's JSON body into v and closes it. An empty
// body leaves v as it is.
func (c *client) decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON))
	if err != nil {
		return fmt.Errorf("gha: reading answer of %s %s: %s", resp.Request.Method, c.redact(resp.Request.URL), c.scrub(err.Error()))
	}
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("gha: decoding answer of %s %s: %v", resp.Request.Method, c.redact(resp.Request.URL), err)
	}
	return nil
}

// drain discards what is left of a body so the connection can be reused.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// azureVersion is the Azure Storage REST version kiln speaks, the one
// azblob v1.5.0 (BuildKit's) sends.
const azureVersion = "2024-11-04"

// open starts reading the entry at off (a ranged GET when off > 0). size
// is the entry's length when known (-1 otherwise). The answer is checked
// before any byte is returned: a 206 must say the range asked for, and a
// 200 to a ranged request (some servers ignore Range and x-ms-range and
// send the whole blob) has its first off bytes discarded. 404 is
// cache.ErrNotFound.
func (c *client) open(ctx context.Context, e entry, azure bool, off, size int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("gha: making download request for %s: %s", e.Key, c.scrub(err.Error()))
	}
	req.Header.Set("User-Agent", c.userAgent)
	if azure {
		req.Header.Set("x-ms-version", azureVersion)
	}
	if off > 0 {
		// Azure prefers x-ms-range when both are sent; plain file servers
		// (nektos/act, Gitea's v1 artifact URL) read Range.
		r := "bytes=" + strconv.FormatInt(off, 10) + "-"
		req.Header.Set("Range", r)
		req.Header.Set("x-ms-range", r)
	}
	resp, err := c.do(req, storageName)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 && size >= 0 && resp.ContentLength != size {
			drain(resp)
			return nil, fmt.Errorf("gha: entry %s: the service sent %d bytes, want %d: %w", e.Key, resp.ContentLength, size, cache.ErrDigestMismatch)
		}
		if off > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
				resp.Body.Close()
				return nil, fmt.Errorf("gha: entry %s: skipping to byte %d of a whole-blob answer: %s", e.Key, off, c.scrub(err.Error()))
			}
		}
		return resp.Body, nil
	case http.StatusPartialContent:
		if err := checkContentRange(resp.Header.Get("Content-Range"), off, size); err != nil {
			drain(resp)
			// A server that answers another range than asked cannot be
			// trusted with this blob: a miss, never wrong bytes.
			return nil, fmt.Errorf("gha: entry %s: %v: %w", e.Key, err, cache.ErrDigestMismatch)
		}
		return resp.Body, nil
	case http.StatusNotFound:
		drain(resp)
		return nil, fmt.Errorf("gha: entry %s: blob gone: %w", e.Key, cache.ErrNotFound)
	}
	return nil, c.newError(resp, storageName)
}

// checkContentRange checks a 206's "bytes START-END/TOTAL" against the
// offset asked for and the size expected.
func checkContentRange(cr string, off, size int64) error {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return fmt.Errorf("partial answer without a byte Content-Range (%q)", cr)
	}
	span, total, _ := strings.Cut(rest, "/")
	start, end, _ := strings.Cut(span, "-")
	s, err1 := strconv.ParseInt(start, 10, 64)
	e, err2 := strconv.ParseInt(end, 10, 64)
	if err1 != nil || err2 != nil || s != off || e < s {
		return fmt.Errorf("asked for bytes from %d, got Content-Range %q", off, cr)
	}
	if size >= 0 {
		if total != "*" && total != strconv.FormatInt(size, 10) {
			return fmt.Errorf("Content-Range %q: the blob is %d bytes", cr, size)
		}
		if e != size-1 {
			return fmt.Errorf("Content-Range %q: asked for the rest of a %d-byte blob", cr, size)
		}
	}
	return nil
}

// maxResumes bounds how often a download cut short is resumed.
const maxResumes = 3

// resumer reads an entry to its end, resuming with a ranged GET from where
// it stopped when the connection breaks. It never returns more or fewer
// bytes than size without an error.
type resumer struct {
	ctx     context.Context
	c       *client
	e       entry
	azure   bool
	size    int64
	n       int64
	rc      io.ReadCloser
	resumes int
	// reopen re-resolves the entry's URL (a signed URL can expire).
	reopen func(ctx context.Context) (entry, error)
}

// start opens the download at the current offset, asking once for a fresh
// URL when the signed one is refused (it can expire).
func (r *resumer) start() error {
	rc, err := r.c.open(r.ctx, r.e, r.azure, r.n, r.size)
	if err != nil && isForbidden(err) && r.reopen != nil {
		e, lerr := r.reopen(r.ctx)
		r.reopen = nil
		if lerr != nil {
			return lerr
		}
		r.e = e
		rc, err = r.c.open(r.ctx, r.e, r.azure, r.n, r.size)
	}
	if err != nil {
		return err
	}
	r.rc = rc
	return nil
}

func (r *resumer) Read(p []byte) (int, error) {
	for {
		if r.rc == nil {
			if err := r.start(); err != nil {
				return 0, err
			}
		}
		n, err := r.rc.Read(p)
		r.n += int64(n)
		if r.size >= 0 && r.n > r.size {
			return n, fmt.Errorf("gha: entry %s: more than %d bytes: %w", r.e.Key, r.size, cache.ErrDigestMismatch)
		}
		if err == io.EOF && r.size >= 0 && r.n < r.size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		// The connection broke: resume from byte r.n on the next round.
		r.rc.Close()
		r.rc = nil
		if r.resumes >= maxResumes || r.size < 0 || r.ctx.Err() != nil {
			return n, fmt.Errorf("gha: reading entry %s at byte %d: %s", r.e.Key, r.n, r.c.scrub(err.Error()))
		}
		r.resumes++
		if n > 0 {
			return n, nil
		}
	}
}

func (r *resumer) Close() error {
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}
