package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// ErrEmptyHost is a Policy built from an empty insecure host name.
var ErrEmptyHost = errors.New("transport: empty insecure host name")

// Policy decides which hosts are spoken to over plain HTTP and which are
// not asked for a valid certificate. Its zero value allows plain HTTP to
// loopback hosts (localhost, 127.0.0.0/8, [::1]) only and verifies every
// certificate. A Policy is read-only once built and safe to share.
type Policy struct {
	insecure map[string]bool
}

// NewPolicy returns the Policy that also allows plain HTTP to, and skips
// certificate verification for, the hosts in insecure: HOST or HOST:PORT
// as written in references (buildx's registry.insecure; a leading
// http:// or https:// and a trailing slash are ignored). An empty name is
// ErrEmptyHost.
func NewPolicy(insecure []string) (Policy, error) {
	p := Policy{insecure: map[string]bool{}}
	for _, h := range insecure {
		h = strings.TrimPrefix(strings.TrimPrefix(h, "http://"), "https://")
		h = strings.TrimSuffix(h, "/")
		if h == "" {
			return Policy{}, ErrEmptyHost
		}
		p.insecure[h] = true
	}
	return p, nil
}

// Insecure reports whether hostport was named insecure, as HOST:PORT or as
// its HOST alone.
func (p Policy) Insecure(hostport string) bool {
	if len(p.insecure) == 0 {
		return false
	}
	if p.insecure[hostport] {
		return true
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	return p.insecure[host]
}

// AllowHTTP reports whether hostport may be reached over plain HTTP: a
// loopback host, or one named insecure. Private-range addresses and
// *.localhost names are not loopback: credentials sent to them in clear
// cross a network.
func (p Policy) AllowHTTP(hostport string) bool {
	if p.Insecure(hostport) {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadCAFile returns the system pool plus the PEM certificates in path. A
// file that cannot be read or holds no certificate is an error naming
// path; the caller says what the file was for.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// httpGuard keeps plain HTTP to the hosts Policy allows. A client asking
// for http:// elsewhere (go-containerregistry does so on its own for
// private-range addresses and *.localhost) gets TLS instead, never clear
// text.
type httpGuard struct {
	inner  http.RoundTripper
	policy Policy
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req
	if req.URL.Scheme == "http" && !g.policy.AllowHTTP(req.URL.Host) {
		r = req.Clone(req.Context())
		r.URL.Scheme = "https"
	}
	resp, err := g.inner.RoundTrip(r)
	if resp != nil {
		count(req) // every attempt the server answered: what it saw
	}
	return resp, err
}

// withTLS applies rootCAs and the skip-verify hosts of policy to base when
// it is an *http.Transport (a clone; base is not modified), and returns the
// transport to send through with the ones whose idle connections to close.
func withTLS(base http.RoundTripper, policy Policy, rootCAs *x509.CertPool) (http.RoundTripper, []http.RoundTripper) {
	ht, ok := base.(*http.Transport)
	if !ok {
		return base, []http.RoundTripper{base}
	}
	secure := ht.Clone()
	if rootCAs != nil {
		secure.TLSClientConfig = tlsConfig(secure.TLSClientConfig)
		secure.TLSClientConfig.RootCAs = rootCAs
	}
	if len(policy.insecure) == 0 {
		return secure, []http.RoundTripper{secure}
	}
	skip := secure.Clone()
	skip.TLSClientConfig = tlsConfig(skip.TLSClientConfig)
	skip.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts the user named insecure
	return &hostRouter{policy: policy, secure: secure, skipVerify: skip}, []http.RoundTripper{secure, skip}
}

func tlsConfig(c *tls.Config) *tls.Config {
	if c == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c.Clone()
}

// hostRouter sends requests for insecure hosts through a transport that
// does not verify certificates, and everything else (token servers, blob
// storage redirects) through the verifying one.
type hostRouter struct {
	policy     Policy
	secure     http.RoundTripper
	skipVerify http.RoundTripper
}

func (h *hostRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.policy.Insecure(req.URL.Host) {
		return h.skipVerify.RoundTrip(req)
	}
	return h.secure.RoundTrip(req)
}
