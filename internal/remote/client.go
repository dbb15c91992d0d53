package remote

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/transport"
)

// DefaultRetryMaxWait is the retry budget used when Options.RetryMaxWait is zero.
const DefaultRetryMaxWait = transport.DefaultRetryBudget

// Options configures a Client. The zero value is usable: anonymous access,
// system CAs, plain HTTP only for loopback registries, linux/GOARCH images,
// a one-minute retry budget, transport's default bounds and no logging.
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
	// retries and auth (transport.Options.Base). Nil means a clone of
	// http.DefaultTransport. CAFile and the TLS part of Insecure can only
	// be applied to an *http.Transport; New rejects them with another kind
	// of Transport.
	Transport http.RoundTripper

	// Logger receives debug records of each HTTP attempt (method, redacted
	// URL, status, retry waits). Nil discards. Headers are never logged.
	Logger *slog.Logger

	// Platform selects the manifest when a reference names an index. The
	// zero value means linux/runtime.GOARCH.
	Platform v1.Platform

	// UserAgent is sent with every request. Empty means "kiln".
	UserAgent string

	// RetryMaxWait bounds the total time of one request, its attempts and
	// the waits between them (transport.Options.RetryBudget). Zero means
	// DefaultRetryMaxWait; negative disables retries.
	RetryMaxWait time.Duration

	// ResponseHeaderTimeout bounds the wait for a registry's answer once a
	// request is sent (transport.Options.ResponseHeaderTimeout). Zero
	// means transport's default; negative means no limit.
	ResponseHeaderTimeout time.Duration

	// IdleTimeout bounds a stalled download (transport.Options.IdleTimeout).
	// Zero means transport's default; negative means no limit.
	IdleTimeout time.Duration

	// Sleep waits between retries. Nil means a timer that stops early when
	// ctx is done. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client talks to OCI registries. It is safe for concurrent use.
type Client struct {
	policy    transport.Policy
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
	// held is the manifest last read or written at each tag (HeldManifest).
	held heldManifests
	// blobs are the blobs known to be in each repository (BlobExists).
	blobs heldBlobs
}

// New validates opts and returns a Client. It fails when CAFile cannot be
// read or holds no certificate, or when CAFile or Insecure need TLS settings
// that opts.Transport cannot take.
func New(opts Options) (*Client, error) {
	c := &Client{
		logger:    opts.Logger,
		platform:  opts.Platform,
		userAgent: opts.UserAgent,
		configDir: opts.DockerConfigDir,
	}
	var err error
	if c.policy, err = transport.NewPolicy(opts.Insecure); err != nil {
		return nil, errors.New("remote: empty insecure registry name")
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
	var pool *x509.CertPool
	if opts.CAFile != "" {
		if pool, err = transport.LoadCAFile(opts.CAFile); err != nil {
			return nil, fmt.Errorf("reading registry CA file: %w", err)
		}
	}
	if _, ok := opts.Transport.(*http.Transport); opts.Transport != nil && !ok && (pool != nil || len(opts.Insecure) > 0) {
		return nil, errors.New("remote: CAFile and Insecure need Options.Transport to be an *http.Transport or nil")
	}
	c.transport = newPingMemo(&manifestCap{next: &headErrorBody{next: transport.New(transport.Options{
		Base:                  opts.Transport,
		Policy:                c.policy,
		RootCAs:               pool,
		RetryBudget:           opts.RetryMaxWait,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		IdleTimeout:           opts.IdleTimeout,
		Resumable:             blobRequest,
		Logger:                c.logger,
		Sleep:                 opts.Sleep,
	})}}, c.allowHTTP)
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

// allowHTTP reports whether the registry hostport may be reached over
// plain HTTP: a loopback host, or one listed as insecure.
func (c *Client) allowHTTP(hostport string) bool { return c.policy.AllowHTTP(hostport) }

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

// remoteOptions is the one place ggcr remote options are assembled.
//
// ggcr's own retries are narrowed: the transport below already retries
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
