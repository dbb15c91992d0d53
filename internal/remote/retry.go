package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

const (
	retryFirstDelay = 250 * time.Millisecond
	retryMaxDelay   = 15 * time.Second
)

// retryTransport retries one HTTP request on 408, 429, 5xx and dropped
// connections, with exponential backoff that honours Retry-After. The total
// time spent waiting for one request is bounded by maxWait; when the next
// wait would exceed it, the last response (or error) is returned as is, so
// the registry's own message reaches the user.
//
// A request whose body cannot be replayed (no GetBody) is tried once; ggcr
// restarts such uploads as a whole (see restartUpload).
//
// A blob download whose connection drops halfway through the body goes on
// with a Range request for the rest (see resumingBody), and a HEAD answered
// 401 or 403 gets the body of the same GET, so that the registry's own
// error message reaches the user (see withErrorBody).
type retryTransport struct {
	inner   http.RoundTripper
	maxWait time.Duration
	sleep   func(context.Context, time.Duration) error
	logger  *slog.Logger
}

// attemptsHeader carries, on the request kept in a registry error, how
// often it was tried; it is never sent.
const attemptsHeader = "X-Kiln-Attempts"

// retriesExhausted marks an error this transport already retried, so the
// layer above (ggcr's upload loop) does not retry it again.
type retriesExhausted struct{ err error }

func (e *retriesExhausted) Error() string { return e.err.Error() }
func (e *retriesExhausted) Unwrap() error { return e.err }

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.retry(req)
	if err != nil {
		return resp, err
	}
	switch {
	case req.Method == http.MethodHead && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		t.withErrorBody(req.Context(), req, resp)
	case resumable(req, resp):
		resp.Body = &resumingBody{t: t, req: req, body: resp.Body, size: resp.ContentLength}
	}
	return resp, nil
}

// retry sends req until it gets an answer that is not transient, or the
// budget is spent.
func (t *retryTransport) retry(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var waited time.Duration
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			var err error
			if r, err = rewind(req); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		resp, err := t.inner.RoundTrip(r)
		t.log(ctx, r, resp, err, attempt, time.Since(start))
		if resp != nil {
			// ggcr keeps resp.Request in its errors, which escape this
			// package when a lazy layer is read later; keep no credential
			// there.
			resp.Request = withoutCredentials(resp.Request)
		}

		if !retryable(resp, err) || ctx.Err() != nil {
			return resp, err
		}
		delay := backoff(attempt)
		if resp != nil {
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				delay = ra
			}
		}
		replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		if t.maxWait < 0 || !replayable || waited+delay > t.maxWait {
			if err != nil && replayable && t.maxWait >= 0 {
				err = &retriesExhausted{err: err}
			}
			if resp != nil && attempt > 0 && resp.Request != nil {
				// Say in the eventual error that this was not a first try
				// (toError reads it back).
				resp.Request.Header.Set(attemptsHeader, fmt.Sprintf("%d attempts in %s", attempt+1, waited.Round(time.Second)))
			}
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused, then close.
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
		}
		t.logger.DebugContext(ctx, "registry request retry", "method", r.Method, "url", redactURL(r.URL), "wait", delay, "attempt", attempt+1)
		if err := t.sleep(ctx, delay); err != nil {
			return nil, err
		}
		waited += delay
	}
}

func (t *retryTransport) log(ctx context.Context, r *http.Request, resp *http.Response, err error, attempt int, d time.Duration) {
	if !t.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"method", r.Method, "url", redactURL(r.URL), "attempt", attempt, "duration", d}
	if err != nil {
		attrs = append(attrs, "error", redactError(err).Error())
	} else {
		attrs = append(attrs, "status", resp.StatusCode)
	}
	t.logger.DebugContext(ctx, "registry request", attrs...)
}

// withoutCredentials returns a shallow copy of r whose headers carry no
// Authorization or Cookie.
func withoutCredentials(r *http.Request) *http.Request {
	if r == nil {
		return nil
	}
	c := *r
	c.Header = r.Header.Clone()
	c.Header.Del("Authorization")
	c.Header.Del("Proxy-Authorization")
	c.Header.Del("Cookie")
	return &c
}

// rewind returns a copy of req with a fresh body for another attempt.
func rewind(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return r, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r.Body = body
	return r, nil
}

// retryable reports whether a response or transport error is transient.
func retryable(resp *http.Response, err error) bool {
	if err != nil {
		return transientNetError(err)
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// transientNetError is true for a connection the server dropped. Refused
// connections and timeouts are not retried: they mean a wrong address or a
// dead host far more often than a blip, and retrying them only delays the
// error by a minute.
func transientNetError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return false
}

// backoff is the wait before retry number attempt+1: 250ms doubling up to
// 15s, with ±20% jitter so parallel uploads do not retry in lockstep.
func backoff(attempt int) time.Duration {
	d := retryFirstDelay << min(attempt, 10)
	if d > retryMaxDelay {
		d = retryMaxDelay
	}
	jitter := 0.8 + 0.4*rand.Float64() //nolint:gosec // jitter, not crypto
	return time.Duration(float64(d) * jitter)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// restartUpload is ggcr's retry predicate: whether a whole blob upload
// should start again from a new session. That is the case when the session
// broke (a dropped connection this transport could not replay, or the
// registry forgetting the upload), not for errors already retried here.
func restartUpload(err error) bool {
	if err == nil {
		return false
	}
	var done *retriesExhausted
	if errors.As(err, &done) {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			return true
		}
		for _, d := range terr.Errors {
			if d.Code == transport.BlobUploadInvalidErrorCode || d.Code == transport.BlobUploadUnknownErrorCode {
				return true
			}
		}
		return false
	}
	return transientNetError(err)
}
