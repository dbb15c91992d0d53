package gha

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-build/kiln/internal/transport"
)

// Service names of the errors this package returns (transport.Error's
// Service): the cache service itself, and the blob storage its signed URLs
// point at. A 403 means "read-only token" only from the first.
const (
	serviceName = "gha cache"
	storageName = "gha blob storage"
)

// errExists is an entry that is already there: 409 (GitHub's
// already_exists, v1's ArtifactCacheItemAlreadyExistsException) or a 200
// {"ok":false} from a v2 CreateCacheEntry, which Gitea and falcondev answer
// for an existing key.
var errExists = errors.New("gha: cache entry already exists")

// errNotFinalized is a v2 upload the service would not finalize
// ({"ok":false}): another job's reservation won, or the entry was evicted
// while it was written. Nothing was stored.
var errNotFinalized = errors.New("gha: the service did not finalize the upload")

// isExists reports whether err says the entry is already there.
func isExists(err error) bool {
	if errors.Is(err, errExists) {
		return true
	}
	var e *transport.Error
	if !errors.As(err, &e) {
		return false
	}
	code := strings.ToLower(e.Code)
	switch {
	case e.Status == http.StatusConflict, code == "already_exists", strings.Contains(code, "alreadyexists"):
		return true
	case e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.Message), "already exist"):
		// Gitea's older handler: 400 {"error":"already exist"}.
		return true
	}
	return false
}

// isForbidden reports whether err is a 401 or 403 (or Twirp's
// permission_denied / unauthenticated).
func isForbidden(err error) bool {
	var e *transport.Error
	return errors.As(err, &e) && (e.Status == http.StatusForbidden || e.Status == http.StatusUnauthorized ||
		e.Code == "permission_denied" || e.Code == "unauthenticated")
}

// isServiceForbidden is isForbidden for an answer of the cache service
// itself: on a write, a token that may only read. Blob storage's 403 is
// an expired or bad signature, not that.
func isServiceForbidden(err error) bool {
	var e *transport.Error
	return isForbidden(err) && errors.As(err, &e) && e.Service == serviceName
}

// maxErrorBody caps how much of an error answer is read.
const maxErrorBody = 64 << 10

// newError reads resp's body (and closes it) into a *transport.Error: the
// server's code and message (a v1 typeKey counts as the code), the URL
// redacted with the client's hidden path prefix elided, and the client's
// secrets scrubbed. A UTF-8 byte order mark (some v1 servers send one) is
// dropped.
func (c *client) newError(resp *http.Response, service string) *transport.Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	e := transport.NewError(resp)
	e.Service = service
	if e.Code == "" {
		var v1Err struct {
			TypeKey string `json:"typeKey"`
		}
		if json.Unmarshal(bytes.TrimSpace(body), &v1Err) == nil {
			e.Code = v1Err.TypeKey
		}
	}
	e.Code, e.Message = c.scrub(e.Code), c.scrub(e.Message)
	e.URL = c.redact(resp.Request.URL)
	return e
}

// requestError is the *transport.Error of a request that got no answer.
func (c *client) requestError(req *http.Request, service string, err error) *transport.Error {
	e := transport.NewRequestError(req, err)
	e.Service = service
	e.URL = c.redact(req.URL)
	if e.Err != nil {
		if s := c.scrub(e.Err.Error()); s != e.Err.Error() {
			e.Err = scrubbed{msg: s, err: e.Err}
		}
	}
	return e
}

// scrubbed shows an error with secrets removed from its message.
type scrubbed struct {
	msg string
	err error
}

func (s scrubbed) Error() string { return s.msg }
func (s scrubbed) Unwrap() error { return s.err }

// scrub removes the credentials kiln holds from a server's words.
func (c *client) scrub(s string) string {
	for _, secret := range c.secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

// redact renders u for messages as transport.RedactURL does (no user
// info, no query value but the protocol's own), with the client's hidden
// path prefix shown as "/…/".
func (c *client) redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	s := transport.RedactURL(u)
	if c.hidePath != "" && c.hidePath != "/" && u.Host == c.hideHost && strings.HasPrefix(u.Path, c.hidePath) {
		prefix := u.Scheme + "://" + u.Host + c.hidePath
		if strings.HasPrefix(s, prefix) {
			s = u.Scheme + "://" + u.Host + "/…/" + strings.TrimPrefix(s, prefix)
		}
	}
	return c.scrub(s)
}

// redactURLString redacts a URL given as text (for config errors).
func redactURLString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return transport.RedactURL(u)
}

// oneLine keeps a server message to one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
