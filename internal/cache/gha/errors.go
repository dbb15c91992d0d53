package gha

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Error is an HTTP answer the cache service (or its blob storage) gave
// that kiln could not use. Its URL is redacted: no query value (a SAS
// signature is one), no user info, and no path prefix of a v1 base URL
// (nektos/act puts its only credential there). No token appears in it.
type Error struct {
	// Method and URL are the request's; URL is redacted.
	Method string
	URL    string
	// Status is the HTTP status code.
	Status int
	// Code is the service's own error code when it sent one: a Twirp code
	// (already_exists), a v1 typeKey, or an Azure error code.
	Code string
	// Message is the service's own message, scrubbed of the token.
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gha: %s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" && e.Message != e.Code {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// errExists is an entry that is already there: 409 (GitHub's
// already_exists, v1's ArtifactCacheItemAlreadyExistsException) or a 200
// {"ok":false} from a v2 CreateCacheEntry, which Gitea and falcondev answer
// for an existing key.
var errExists = errors.New("gha: cache entry already exists")

// isExists reports whether err says the entry is already there.
func isExists(err error) bool {
	if errors.Is(err, errExists) {
		return true
	}
	var e *Error
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

// isForbidden reports whether err is a 403 (or 401): on a write, a token
// that may only read.
func isForbidden(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusForbidden || e.Status == http.StatusUnauthorized ||
		e.Code == "permission_denied" || e.Code == "unauthenticated")
}

// maxErrorBody caps how much of an error answer is read.
const maxErrorBody = 64 << 10

// newError reads resp's body (and closes it) into an Error.
func (c *client) newError(resp *http.Response) *Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{Method: resp.Request.Method, URL: c.redact(resp.Request.URL), Status: resp.StatusCode}
	e.Code, e.Message = errorText(body)
	e.Message = c.scrub(e.Message)
	e.Code = c.scrub(e.Code)
	return e
}

// errorText finds the code and message in an error body of any of the
// shapes the services send: Twirp {"code","msg"}, v1 {"message","typeKey"},
// Gitea {"error"}, Azure <Error><Code/><Message/></Error>, or plain text.
// A UTF-8 byte order mark (some v1 servers send one) is dropped.
func errorText(body []byte) (code, msg string) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "", ""
	}
	var j struct {
		Code    string `json:"code"`
		Msg     string `json:"msg"`
		Message string `json:"message"`
		TypeKey string `json:"typeKey"`
		Error   string `json:"error"`
	}
	if body[0] == '{' && json.Unmarshal(body, &j) == nil {
		code = j.Code
		if code == "" {
			code = j.TypeKey
		}
		msg = firstNonEmpty(j.Msg, j.Message, j.Error)
		return code, oneLine(msg)
	}
	var x struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if body[0] == '<' && xml.Unmarshal(body, &x) == nil {
		return x.Code, oneLine(x.Message)
	}
	return "", oneLine(string(body))
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// oneLine keeps a server message to one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// scrub removes the credentials kiln holds from a server's words.
func (c *client) scrub(s string) string {
	for _, secret := range c.secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

// keptQuery reports whether a query parameter's value is safe to show.
func keptQuery(k string) bool {
	switch strings.ToLower(k) {
	case "comp", "blockid", "keys", "version", "key", "page", "per_page":
		return true
	}
	return false
}

// redact renders u for messages: no user info, every query value but
// the kept ones replaced, and the client's hidden path prefix elided.
func (c *client) redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	r.RawQuery = redactQuery(u.RawQuery)
	if c.hidePath != "" && c.hidePath != "/" && strings.HasPrefix(r.Path, c.hidePath) && u.Host == c.hideHost {
		rest := url.URL{Path: strings.TrimPrefix(r.Path, c.hidePath), RawQuery: r.RawQuery}
		return c.scrub(r.Scheme + "://" + r.Host + "/…/" + rest.String())
	}
	return c.scrub(r.String())
}

func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if ok && !keptQuery(k) {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

// redactURLString redacts a URL given as text (for config errors).
func redactURLString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = redactQuery(u.RawQuery)
	return u.String()
}
