package remote

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"

	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/internal/transport"
)

// toError turns what ggcr returned into a *transport.Error whose Service
// is "registry REGISTRY", with the registry's own code and message and a
// hint where the user can act (log in, name a CA). Errors that are
// neither HTTP nor network failures (a bad manifest, a digest mismatch)
// are returned unchanged.
func toError(registry string, err error) error {
	if err == nil {
		return nil
	}
	if cause, ok := pingCause(err); ok {
		err = cause
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
	var terr *ggcrtransport.Error
	if errors.As(err, &terr) {
		e := &transport.Error{Service: service(registry), Status: terr.StatusCode}
		if terr.Request != nil {
			e.Method = terr.Request.Method
			e.URL = transport.RedactURL(terr.Request.URL)
			e.Attempts, e.Elapsed = transport.Attempts(terr.Request)
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
		e.Message = transport.RedactString(strings.Join(msgs, "; "))
		if len(terr.Errors) == 0 {
			// Not a registry document: blob storage XML, Twirp, HTML, text.
			e.Code, e.Message = transport.ParseMessage([]byte(rawBody(terr)))
		}
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

// pingCause finds the errors ggcr's ping joins when it tried https and
// http at once (a registry that may speak plain HTTP): https's first, in a
// slice type of its own that only its Error, Is and As reach. When https
// failed only because the server speaks plain HTTP, the http attempt's
// error is the cause (a redirect loop, a silent server), not "server gave
// HTTP response to HTTPS client", which As would pick.
func pingCause(err error) (error, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() != reflect.Slice || v.Len() != 2 {
			continue
		}
		first, ok1 := v.Index(0).Interface().(error)
		second, ok2 := v.Index(1).Interface().(error)
		var uerr *url.Error
		if ok1 && ok2 && errors.Is(first, http.ErrSchemeMismatch) && errors.As(second, &uerr) {
			return second, true
		}
		return nil, false
	}
	return nil, false
}

// service is how a registry is named in errors.
func service(registry string) string { return "registry " + registry }

func urlError(registry string, uerr *url.Error) *transport.Error {
	e := transport.NewRequestError(nil, uerr)
	e.Service = service(registry)
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
func rawBody(terr *ggcrtransport.Error) string {
	s := terr.Error()
	i := strings.Index(s, "unexpected status code ")
	if i < 0 {
		return ""
	}
	status := fmt.Sprintf("unexpected status code %d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
	body, _ := strings.CutPrefix(s[i:], status+": ")
	if body == s[i:] {
		return ""
	}
	return body
}
