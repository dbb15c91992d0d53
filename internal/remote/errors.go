package remote

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Error is a failed exchange with a registry. It carries what a user needs
// to act on the failure and nothing that could leak a secret: the URL has
// no user info and no query values except the registry protocol's own
// (digest, mount, from, scope, service, n, last), and no header is kept.
type Error struct {
	// Registry is the registry the operation addressed, e.g. "ghcr.io" or
	// "127.0.0.1:5000" (the URL may name a token server instead).
	Registry string
	// Method and URL identify the request that failed. Both are empty when
	// the failure happened before any request was made.
	Method string
	URL    string
	// Status is the HTTP status code, or 0 when no response arrived (then
	// Err holds the network or TLS error).
	Status int
	// Code is the registry's first error code, e.g. "MANIFEST_UNKNOWN" or
	// "DENIED"; empty when the body held no OCI error document.
	Code string
	// Message is the registry's own explanation: the errors[].message
	// entries joined, or the start of the raw body when it was not JSON.
	Message string
	// Hint, when set, tells the user what to do next, e.g. to log in.
	Hint string
	// Err is the underlying network error when Status is 0.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "registry %s", e.Registry)
	if e.Method != "" {
		fmt.Fprintf(&b, ": %s %s", e.Method, e.URL)
	}
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
		if e.Code != "" {
			fmt.Fprintf(&b, ": %s", e.Code)
		}
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
	case e.Err != nil:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

// Unwrap returns the network error, if any.
func (e *Error) Unwrap() error { return e.Err }

// maxMessage bounds how much of a non-JSON error body is kept.
const maxMessage = 300

// toError turns what ggcr returned into an *Error for registry, scrubbing
// URLs. Errors that are neither HTTP nor network failures (a bad manifest,
// a digest mismatch) are returned unchanged.
func toError(registry string, err error) error {
	if err == nil {
		return nil
	}
	// A certificate failure comes first: for a loopback registry ggcr pings
	// https and http at once, and the http attempt's "400: HTTP request to
	// an HTTPS server" would otherwise hide the real cause.
	var uerr *url.Error
	if errors.As(err, &uerr) && isCertError(uerr.Err) {
		e := urlError(registry, uerr)
		e.Hint = fmt.Sprintf("if %s uses a private CA pass --registry-ca FILE, or --insecure-registry %s to skip verification", registry, registry)
		return e
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		e := &Error{Registry: registry, Status: terr.StatusCode}
		if terr.Request != nil {
			e.Method = terr.Request.Method
			e.URL = redactURL(terr.Request.URL)
			if n := terr.Request.Header.Get(attemptsHeader); n != "" {
				e.Hint = "gave up after " + n
			}
		}
		var msgs []string
		for _, d := range terr.Errors {
			if e.Code == "" {
				e.Code = string(d.Code)
			}
			if d.Message != "" {
				msgs = append(msgs, d.Message)
			}
		}
		if len(terr.Errors) == 0 {
			msgs = append(msgs, rawBody(terr))
		}
		e.Message = strings.Join(msgs, "; ")
		if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
			e.Hint = fmt.Sprintf("check your credentials for %s: run `kiln login %s`", registry, registry)
		}
		return e
	}
	if errors.As(err, &uerr) {
		return urlError(registry, uerr)
	}
	return err
}

func urlError(registry string, uerr *url.Error) *Error {
	e := &Error{Registry: registry, Method: strings.ToUpper(uerr.Op), Err: uerr.Err}
	if u, perr := url.Parse(uerr.URL); perr == nil {
		e.URL = redactURL(u)
	}
	return e
}

func isCertError(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid)
}

// rawBody recovers the raw error body ggcr keeps unexported, from its
// message "… unexpected status code 503 Service Unavailable: BODY".
func rawBody(terr *transport.Error) string {
	s := terr.Error()
	i := strings.Index(s, "unexpected status code ")
	if i < 0 {
		return ""
	}
	s = s[i:]
	status := fmt.Sprintf("unexpected status code %d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
	body, ok := strings.CutPrefix(s, status+": ")
	if !ok {
		return ""
	}
	body = strings.Join(strings.Fields(body), " ")
	if len(body) > maxMessage {
		body = body[:maxMessage] + "…"
	}
	return body
}

// allowedQuery are the query keys of the registry protocol itself; any
// other value (signed redirect URLs, upload state) is replaced.
var allowedQuery = map[string]bool{
	"scope": true, "service": true, "mount": true, "from": true,
	"digest": true, "n": true, "last": true,
}

// redactURL renders u without user info and with non-protocol query values
// replaced by "REDACTED".
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	if r.RawQuery != "" {
		q := r.Query()
		for k, vs := range q {
			if !allowedQuery[k] {
				for i := range vs {
					vs[i] = "REDACTED"
				}
			}
		}
		r.RawQuery = q.Encode()
	}
	return r.String()
}

// redactError returns err with the URL of a *url.Error redacted.
func redactError(err error) error {
	var uerr *url.Error
	if !errors.As(err, &uerr) {
		return err
	}
	u, perr := url.Parse(uerr.URL)
	if perr != nil {
		return &url.Error{Op: uerr.Op, URL: "(unparsable URL)", Err: uerr.Err}
	}
	return &url.Error{Op: uerr.Op, URL: redactURL(u), Err: uerr.Err}
}
