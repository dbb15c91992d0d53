package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	retryFirstDelay = 250 * time.Millisecond
	retryMaxDelay   = 15 * time.Second
)

// attemptsHeader carries, on resp.Request of a response this transport
// gave up retrying, how often it was tried and for how long ("3 2.5s"); it
// is never sent. NewError and Attempts read it back; it survives callers
// (go-containerregistry) that keep only the request in their errors.
const attemptsHeader = "X-Kiln-Attempts"

// RetryError is a connection error of a request that this transport tried
// more than once, or would have retried but for the budget. Callers that
// retry on their own (go-containerregistry's upload loop) should not retry
// it again.
type RetryError struct {
	// Attempts is how many times the request was sent.
	Attempts int
	// Elapsed is the time the attempts and waits took.
	Elapsed time.Duration
	// Err is the last attempt's error.
	Err error
}

func (e *RetryError) Error() string {
	if e.Attempts <= 1 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (%s)", e.Err, gaveUp(e.Attempts, e.Elapsed))
}

// Unwrap returns the last attempt's error.
func (e *RetryError) Unwrap() error { return e.Err }

func gaveUp(attempts int, elapsed time.Duration) string {
	return fmt.Sprintf("gave up after %d attempts in %s", attempts, elapsed.Round(100*time.Millisecond))
}

// Attempts returns how often the request behind resp was sent and how long
// that took, when this transport retried it and then gave up; 0 otherwise.
// req is resp.Request (or a copy of it kept in another package's error).
func Attempts(req *http.Request) (int, time.Duration) {
	if req == nil {
		return 0, 0
	}
	n, d, ok := strings.Cut(req.Header.Get(attemptsHeader), " ")
	if !ok {
		return 0, 0
	}
	attempts, err := strconv.Atoi(n)
	if err != nil {
		return 0, 0
	}
	elapsed, err := time.ParseDuration(d)
	if err != nil {
		return 0, 0
	}
	return attempts, elapsed
}

// retry sends req until it gets an answer that is not transient, or the
// budget is spent.
func (t *Transport) retry(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	host := req.URL.Host
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var spent time.Duration // attempts and waits
	if d := t.hosts.wait(host, t.now()); d > 0 && t.budget > 0 && d <= t.budget {
		// Another request to this host was throttled: wait with it
		// rather than be throttled too.
		t.logger.DebugContext(ctx, "http host back-off", "host", host, "wait", d)
		if err := t.sleep(ctx, d); err != nil {
			closeBody(req)
			return nil, err
		}
		spent += d
	}
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			var err error
			if r, err = rewind(req); err != nil {
				return nil, err
			}
		}
		start := t.now()
		resp, err := t.attempt(r)
		spent += t.now().Sub(start)
		t.log(ctx, r, resp, err, attempt, t.now().Sub(start))
		if resp != nil {
			// Callers keep resp.Request in their errors, which outlive the
			// request; keep no credential there.
			resp.Request = withoutCredentials(resp.Request)
		}
		if !retryable(resp, err) || ctx.Err() != nil {
			return resp, err
		}
		delay := t.backoff(attempt - 1)
		if resp != nil {
			ra, ok := retryAfter(resp.Header.Get("Retry-After"), t.now())
			if ok {
				delay = ra
			}
			if ok || resp.StatusCode == http.StatusTooManyRequests {
				t.hosts.block(host, t.now().Add(delay))
			}
		}
		delay = max(delay, t.hosts.wait(host, t.now()))
		if t.budget < 0 || !replayable || spent+delay > t.budget {
			return t.giveUp(resp, err, attempt, spent, replayable)
		}
		if resp != nil {
			// Drain a little so the connection can be reused, then close.
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
		}
		t.logger.DebugContext(ctx, "http request retry", "method", r.Method, "url", RedactURL(r.URL), "wait", delay, "attempt", attempt+1)
		if err := t.sleep(ctx, delay); err != nil {
			return nil, err
		}
		spent += delay
	}
}

// giveUp returns the last answer, saying how often it was tried.
func (t *Transport) giveUp(resp *http.Response, err error, attempts int, spent time.Duration, replayable bool) (*http.Response, error) {
	if err != nil {
		if replayable && t.budget >= 0 {
			err = &RetryError{Attempts: attempts, Elapsed: spent, Err: err}
		}
		return resp, err
	}
	if attempts > 1 && resp.Request != nil {
		resp.Request.Header.Set(attemptsHeader, fmt.Sprintf("%d %s", attempts, spent))
	}
	return resp, nil
}

func (t *Transport) log(ctx context.Context, r *http.Request, resp *http.Response, err error, attempt int, d time.Duration) {
	if !t.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"method", r.Method, "url", RedactURL(r.URL), "attempt", attempt, "duration", d}
	if err != nil {
		attrs = append(attrs, "error", RedactError(err).Error())
	} else {
		attrs = append(attrs, "status", resp.StatusCode)
	}
	t.logger.DebugContext(ctx, "http request", attrs...)
}

// withoutCredentials returns a shallow copy of r whose headers carry no
// credential (see RedactHeader).
func withoutCredentials(r *http.Request) *http.Request {
	if r == nil {
		return nil
	}
	c := *r
	c.Header = RedactHeader(r.Header)
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
		return nil, fmt.Errorf("rewinding request body: %w", err)
	}
	r.Body = body
	return r, nil
}

// retryable reports whether a response or transport error is transient.
func retryable(resp *http.Response, err error) bool {
	if err != nil {
		return Transient(err)
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Transient reports whether err is a connection the server dropped, which
// a retry may cure (this package's Transport retries those itself). Refused
// connections and timeouts (this package's bounds included) are not
// retried: they mean a wrong address or a dead host far more often than a
// blip, and retrying them only delays the error by a minute.
func Transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// backoff is the wait before retry number attempt+1: 250ms doubling up to
// 15s, with ±20% jitter so parallel requests do not retry in lockstep.
func (t *Transport) backoff(attempt int) time.Duration {
	d := min(retryFirstDelay<<min(attempt, 10), retryMaxDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*t.jitter()))
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

// hostGate is the back-off shared by every request to one host: when a
// host throttles (429, or Retry-After on any retried answer), requests to
// it wait until the time it named, instead of each being throttled in turn.
// Services throttle per client, not per request (the GitHub cache per
// repository), so parallel requests must wait together.
type hostGate struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// block makes requests to host wait until t.
func (g *hostGate) block(host string, t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.After(g.until[host]) {
		g.until[host] = t
	}
}

// wait returns how long a request to host must still wait at now.
func (g *hostGate) wait(host string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	u, ok := g.until[host]
	if !ok {
		return 0
	}
	if !u.After(now) {
		delete(g.until, host)
		return 0
	}
	return u.Sub(now)
}
