package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultRetryMaxWait is the retry budget used when Options.RetryMaxWait is zero.
const DefaultRetryMaxWait = time.Minute

// Options configures a Client. The zero value is usable: anonymous access,
// system CAs, plain HTTP only for loopback registries, linux/GOARCH images,
// a one-minute retry budget and no logging.
type Options struct {
	// Insecure lists registries, as HOST:PORT exactly as written in image
	// references, that may be reached over plain HTTP and whose TLS
	// certificates are not verified (buildx's registry.insecure). Loopback
	// registries (localhost, 127.0.0.0/8, [::1]) may always use plain HTTP
	// without being listed; their certificates are still verified when they
	// speak TLS.
	Insecure []string

	// CAFile is a PEM file of extra CA certificates trusted for every
	// registry, on top of the system pool. Empty means system CAs only.
	CAFile string

	// DockerConfigDir is the directory holding config.json (the CLI resolves
	// DOCKER_CONFIG or ~/.docker). Credentials are looked up there, including
	// credsStore and credHelpers, and Login writes there. Empty means
	// anonymous access and Login fails.
	DockerConfigDir string

	// Transport is the base transport every request goes through, below
	// retries and auth. Nil means a clone of http.DefaultTransport. CAFile
	// and the TLS part of Insecure can only be applied to an *http.Transport;
	// New rejects them with another kind of Transport.
	Transport http.RoundTripper

	// Logger receives debug records of each HTTP attempt (method, redacted
	// URL, status, retry waits). Nil discards. Headers are never logged.
	Logger *slog.Logger

	// Platform selects the manifest when a reference names an index. The
	// zero value means linux/runtime.GOARCH.
	Platform v1.Platform

	// UserAgent is sent with every request. Empty means "kiln".
	UserAgent string

	// RetryMaxWait bounds the total time one request may spend waiting
	// between retries. Zero means DefaultRetryMaxWait; negative disables
	// retries.
	RetryMaxWait time.Duration

	// Sleep waits between retries. Nil means a timer that stops early when
	// ctx is done. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client talks to OCI registries. It is safe for concurrent use.
type Client struct {
	insecure  map[string]bool
	keychain  authn.Keychain
	transport http.RoundTripper
	logger    *slog.Logger
	platform  v1.Platform
	userAgent string
	configDir string
	// puller and pusher are shared by every call, so a registry is pinged
	// and a token fetched once per repository and scope, not once per
	// request (with token auth that is most of a warm build's requests).
	puller *ggcrremote.Puller
	pusher *ggcrremote.Pusher
}

// New validates opts and returns a Client. It fails when CAFile cannot be
// read or holds no certificate, or when CAFile or Insecure need TLS settings
// that opts.Transport cannot take.
func New(opts Options) (*Client, error) {
	c := &Client{
		insecure:  map[string]bool{},
		logger:    opts.Logger,
		platform:  opts.Platform,
		userAgent: opts.UserAgent,
		configDir: opts.DockerConfigDir,
	}
	for _, h := range opts.Insecure {
		h = strings.TrimPrefix(strings.TrimPrefix(h, "http://"), "https://")
		h = strings.TrimSuffix(h, "/")
		if h == "" {
			return nil, errors.New("remote: empty insecure registry name")
		}
		c.insecure[h] = true
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.platform.OS == "" && c.platform.Architecture == "" {
		c.platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if c.userAgent == "" {
		c.userAgent = "kiln"
	}
	base, err := c.baseTransport(opts)
	if err != nil {
		return nil, err
	}
	maxWait := opts.RetryMaxWait
	if maxWait == 0 {
		maxWait = DefaultRetryMaxWait
	}
	sleep := opts.Sleep
	if sleep == nil {
		sleep = sleepContext
	}
	base = &httpGuard{inner: base, allow: c.allowHTTP}
	c.transport = &retryTransport{inner: base, maxWait: maxWait, sleep: sleep, logger: c.logger}
	c.keychain = &configKeychain{dir: opts.DockerConfigDir}
	shared := c.baseOptions()
	if c.puller, err = ggcrremote.NewPuller(shared...); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	if c.pusher, err = ggcrremote.NewPusher(shared...); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	return c, nil
}

// httpGuard keeps plain HTTP to the registries that may use it: loopback
// and --insecure-registry hosts. go-containerregistry picks HTTP on its own
// for private-range addresses and *.localhost, which would send credentials
// in clear to anyone on the path; their requests go out over TLS instead.
type httpGuard struct {
	inner http.RoundTripper
	allow func(hostport string) bool
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allow(req.URL.Host) {
		// go-containerregistry picks http for private-range and *.localhost
		// registries: speak TLS to them instead, never plain text.
		r := req.Clone(req.Context())
		r.URL.Scheme = "https"
		return g.inner.RoundTrip(r)
	}
	return g.inner.RoundTrip(req)
}

// allowHTTP reports whether the registry hostport may be reached over
// plain HTTP: a loopback host, or one listed as insecure.
func (c *Client) allowHTTP(hostport string) bool {
	if c.isInsecure(hostport) {
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

// baseTransport returns the network transport with CAFile and the
// skip-verify rule for insecure registries applied.
func (c *Client) baseTransport(opts Options) (http.RoundTripper, error) {
	var pool *x509.CertPool
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading registry CA file: %w", err)
		}
		pool, err = x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading registry CA file %s: no PEM certificate found", opts.CAFile)
		}
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	ht, ok := base.(*http.Transport)
	if !ok {
		if pool != nil || len(c.insecure) > 0 {
			return nil, errors.New("remote: CAFile and Insecure need Options.Transport to be an *http.Transport or nil")
		}
		return base, nil
	}
	secure := ht.Clone()
	if pool != nil {
		secure.TLSClientConfig = tlsConfig(secure.TLSClientConfig)
		secure.TLSClientConfig.RootCAs = pool
	}
	if len(c.insecure) == 0 {
		return secure, nil
	}
	skip := secure.Clone()
	skip.TLSClientConfig = tlsConfig(skip.TLSClientConfig)
	skip.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for registries the user named insecure
	return &hostRouter{insecure: c.insecure, secure: secure, skipVerify: skip}, nil
}

func tlsConfig(c *tls.Config) *tls.Config {
	if c == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c.Clone()
}

// hostRouter sends requests for insecure registries through a transport
// that does not verify certificates, and everything else (token servers,
// blob redirects) through the verifying one.
type hostRouter struct {
	insecure   map[string]bool
	secure     http.RoundTripper
	skipVerify http.RoundTripper
}

func (h *hostRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.insecure[req.URL.Host] || h.insecure[req.URL.Hostname()] {
		return h.skipVerify.RoundTrip(req)
	}
	return h.secure.RoundTrip(req)
}

// ParseReference parses an image reference (tag or digest; a missing
// registry means Docker Hub, a missing tag means latest) and marks it
// insecure when its registry is listed in Options.Insecure.
func (c *Client) ParseReference(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	if !c.allowHTTP(r.Context().RegistryStr()) {
		return r, nil
	}
	r, err = name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	return r, nil
}

// parseRegistry is ParseReference for a bare registry host.
func (c *Client) parseRegistry(registry string) (name.Registry, error) {
	registry = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(registry, "https://"), "http://"), "/")
	var opts []name.Option
	if c.allowHTTP(registry) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(registry, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("parsing registry %q: %w", registry, err)
	}
	return reg, nil
}

func (c *Client) isInsecure(registry string) bool {
	if c.insecure[registry] {
		return true
	}
	host, _, err := net.SplitHostPort(registry)
	if err != nil {
		host = registry
	}
	return c.insecure[host]
}

// remoteOptions is the one place ggcr remote options are assembled.
//
// ggcr's own retries are narrowed: retryTransport below already retries
// 429, 5xx and dropped connections per request (honouring Retry-After), so
// ggcr only restarts a whole blob upload when the upload session itself
// broke (see restartUpload).
func (c *Client) remoteOptions(ctx context.Context) []ggcrremote.Option {
	return append(c.baseOptions(), ggcrremote.WithContext(ctx), ggcrremote.Reuse(c.puller), ggcrremote.Reuse(c.pusher))
}

// baseOptions are the options every call shares, without a context.
func (c *Client) baseOptions() []ggcrremote.Option {
	return []ggcrremote.Option{
		ggcrremote.WithAuthFromKeychain(c.keychain),
		ggcrremote.WithTransport(c.transport),
		ggcrremote.WithPlatform(c.platform),
		ggcrremote.WithUserAgent(c.userAgent),
		ggcrremote.WithRetryStatusCodes(),
		ggcrremote.WithRetryPredicate(restartUpload),
		ggcrremote.WithRetryBackoff(ggcrremote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
	}
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
