package transport

import (
	"context"
	"crypto/x509"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"
)

// Defaults used when the matching Options field is zero.
const (
	// DefaultRetryBudget bounds the time one request may take, all
	// attempts and waits between them included.
	DefaultRetryBudget = time.Minute
	// DefaultResponseHeaderTimeout bounds the wait for response headers
	// once the request (its body included) has been sent.
	DefaultResponseHeaderTimeout = time.Minute
	// DefaultIdleTimeout bounds how long reading a response body may go
	// without progress (see Options.IdleTimeout).
	DefaultIdleTimeout = 30 * time.Second
)

// MaxRedirects is how many redirects one request may follow. It holds
// whatever CheckRedirect the http.Client above sets (go-containerregistry's
// sets one with no limit at all).
const MaxRedirects = 10

// Options configures a Transport. The zero value is usable: a clone of
// http.DefaultTransport with system CAs, plain HTTP only to loopback hosts,
// a one-minute retry budget, a one-minute limit to response headers, a
// 30-second idle limit on bodies, no resumed downloads and no logging.
type Options struct {
	// Base sends single requests. Nil means a clone of
	// http.DefaultTransport. Policy's skip-verify hosts and RootCAs are
	// applied only to an *http.Transport (which is cloned, never
	// modified); another RoundTripper is used as it is, which is for tests.
	Base http.RoundTripper

	// Policy decides which hosts may be reached over plain HTTP and which
	// skip certificate verification. The zero value allows plain HTTP to
	// loopback hosts only and verifies every certificate.
	Policy Policy

	// RootCAs, when not nil, replaces the system pool for verifying
	// servers (LoadCAFile builds one that extends the system pool).
	RootCAs *x509.CertPool

	// RetryBudget bounds the total time of one request: every attempt until
	// its response headers, plus the waits between attempts. Zero means
	// DefaultRetryBudget; negative disables retries (one attempt, no wait).
	RetryBudget time.Duration

	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request body was sent. Zero means DefaultResponseHeaderTimeout;
	// negative means no limit.
	ResponseHeaderTimeout time.Duration

	// IdleTimeout bounds reading a response body: a Read fails when, over
	// this much time spent waiting in Read, less than 1 KiB arrived (so a
	// 1 byte/s trickle fails like silence does). Time the caller spends
	// between Reads does not count. Zero means DefaultIdleTimeout; negative
	// means no limit.
	IdleTimeout time.Duration

	// Resumable reports whether a whole (200) response of known length to
	// req may be resumed with a Range request when its connection drops
	// halfway: true only where the bytes at a URL never change (content
	// addressed blobs). It is asked for the request and for each request
	// that redirected to it. Nil means no download is resumed.
	Resumable func(req *http.Request) bool

	// Logger receives a debug record per attempt (method, redacted URL,
	// status or error, duration) and per retry wait. Nil discards. Headers
	// are never logged.
	Logger *slog.Logger

	// Now is the clock. Nil means time.Now.
	Now func() time.Time

	// Sleep waits between attempts. Nil means a timer that stops early
	// when ctx is done. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error

	// Jitter returns a number in [0, 1) that spreads backoff waits. Nil
	// means math/rand/v2.
	Jitter func() float64
}

// Transport is the retrying, bounded, redacting http.RoundTripper. It is
// safe for concurrent use; requests to the same host share its back-off
// state.
type Transport struct {
	base          http.RoundTripper // policy and TLS applied
	budget        time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
	resumable     func(*http.Request) bool
	logger        *slog.Logger
	now           func() time.Time
	sleep         func(context.Context, time.Duration) error
	jitter        func() float64
	hosts         *hostGate
	unwrapped     http.RoundTripper // Options.Base as given
	closeIdle     []http.RoundTripper
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport for opts. It never fails: values that need
// checking (CA files, insecure host names) are checked by LoadCAFile and
// NewPolicy.
func New(opts Options) *Transport {
	t := &Transport{
		budget:        opts.RetryBudget,
		headerTimeout: opts.ResponseHeaderTimeout,
		idleTimeout:   opts.IdleTimeout,
		resumable:     opts.Resumable,
		logger:        opts.Logger,
		now:           opts.Now,
		sleep:         opts.Sleep,
		jitter:        opts.Jitter,
		hosts:         &hostGate{until: map[string]time.Time{}},
		unwrapped:     opts.Base,
	}
	if t.budget == 0 {
		t.budget = DefaultRetryBudget
	}
	if t.headerTimeout == 0 {
		t.headerTimeout = DefaultResponseHeaderTimeout
	}
	if t.idleTimeout == 0 {
		t.idleTimeout = DefaultIdleTimeout
	}
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.sleep == nil {
		t.sleep = sleepContext
	}
	if t.jitter == nil {
		t.jitter = rand.Float64
	}
	if t.unwrapped == nil {
		t.unwrapped = http.DefaultTransport
	}
	var tls http.RoundTripper
	tls, t.closeIdle = withTLS(t.unwrapped, opts.Policy, opts.RootCAs)
	t.base = &httpGuard{inner: tls, policy: opts.Policy}
	return t
}

// RoundTrip sends req, retrying transient failures within the budget, and
// returns the last response or error. A response carries no credential in
// resp.Request. Its body is bounded by the idle limit and, when
// Options.Resumable allows, resumed after a dropped connection.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if n := redirects(req); n > MaxRedirects {
		closeBody(req)
		return nil, ErrTooManyRedirects
	}
	resp, err := t.retry(req)
	if err != nil {
		return resp, err
	}
	if t.resumes(req, resp) {
		resp.Body = &resumingBody{t: t, req: req, body: resp.Body, size: resp.ContentLength}
	}
	return resp, nil
}

// Unwrap returns Options.Base (http.DefaultTransport when it was nil), so
// that As can look below a Transport.
func (t *Transport) Unwrap() http.RoundTripper { return t.unwrapped }

// CloseIdleConnections closes the idle connections of the transports
// below, as http.Client.CloseIdleConnections expects.
func (t *Transport) CloseIdleConnections() {
	for _, rt := range t.closeIdle {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// Unwrapper is the optional capability of a RoundTripper that wraps
// another: every wrapper of a Transport (auth, logging, rate limits)
// should implement it, so that As still finds the Transport and its
// capabilities (STYLE habit 7).
type Unwrapper interface {
	// Unwrap returns the RoundTripper this one sends through.
	Unwrap() http.RoundTripper
}

// As finds the first RoundTripper in rt's Unwrap chain that is of type T,
// the way errors.As finds an error: As[*transport.Transport](rt) tells
// whether rt already retries and redacts.
func As[T any](rt http.RoundTripper) (T, bool) {
	for rt != nil {
		if v, ok := rt.(T); ok {
			return v, true
		}
		u, ok := rt.(Unwrapper)
		if !ok {
			break
		}
		rt = u.Unwrap()
	}
	var zero T
	return zero, false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
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
