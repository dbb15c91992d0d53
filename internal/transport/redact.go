package transport

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces every value redaction hides.
const Redacted = "REDACTED"

// keptQuery are the query keys whose values say what a request was about
// and never carry a secret: the registry protocol's own and the GitHub
// cache's. Every other value (signatures such as sig, se, sv, X-Amz-*,
// tokens, upload state) is replaced: an allow list, so a signing scheme
// nobody thought of is hidden too.
var keptQuery = map[string]bool{
	"scope": true, "service": true, "mount": true, "from": true,
	"digest": true, "n": true, "last": true,
	"keys": true, "version": true, "comp": true, "restype": true, "blockid": true,
}

// credentialHeaders are the headers that carry credentials.
var credentialHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Amz-Security-Token", "X-Goog-Iam-Authorization-Token", "X-Ms-Authorization-Auxiliary",
}

// RedactURL renders u without user info and with query values replaced by
// Redacted, except those of the protocols' own keys (scope, service,
// mount, from, digest, n, last, keys, version, comp, restype, blockid).
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	if r.RawQuery != "" {
		q := r.Query()
		for k, vs := range q {
			if !keptQuery[k] {
				for i := range vs {
					vs[i] = Redacted
				}
			}
		}
		r.RawQuery = q.Encode()
	}
	return r.String()
}

// RedactHeader returns a copy of h without the headers that carry
// credentials (Authorization, Proxy-Authorization, cookies, cloud session
// tokens). h is not modified.
func RedactHeader(h http.Header) http.Header {
	c := h.Clone()
	for _, k := range credentialHeaders {
		c.Del(k)
	}
	return c
}

var (
	urlPattern  = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)
	authPattern = regexp.MustCompile(`(?i)\b(bearer|basic)( +)[A-Za-z0-9._~+/=-]{6,}`)
)

// RedactString redacts every URL in s (see RedactURL) and every
// "Bearer X" or "Basic X" credential.
func RedactString(s string) string {
	if strings.Contains(s, "://") {
		s = urlPattern.ReplaceAllStringFunc(s, func(m string) string {
			// Punctuation that ends a sentence is not part of the URL.
			trail := ""
			for len(m) > 0 && strings.ContainsRune(".,;:)]}", rune(m[len(m)-1])) {
				trail = m[len(m)-1:] + trail
				m = m[:len(m)-1]
			}
			u, err := url.Parse(m)
			if err != nil {
				return Redacted + trail
			}
			return RedactURL(u) + trail
		})
	}
	return authPattern.ReplaceAllString(s, "${1}${2}"+Redacted)
}

// RedactError returns err with every URL and credential in its message
// redacted. The result still matches err with errors.Is and errors.As; a
// *url.Error keeps its type with a redacted URL.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr == err {
		e := &url.Error{Op: uerr.Op, URL: RedactString(uerr.URL), Err: RedactError(uerr.Err)}
		if e.URL == uerr.URL && e.Err == uerr.Err {
			return err
		}
		return e
	}
	msg := err.Error()
	if red := RedactString(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

// redactedError is an error shown with a redacted message.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
