package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrTooManyRedirects is returned for a request that would follow more
// than MaxRedirects redirects.
var ErrTooManyRedirects = fmt.Errorf("transport: stopped after %d redirects", MaxRedirects)

// ErrTimeout is what every bound on time matches with errors.Is: no
// response headers in time, or a response body that stalled.
var ErrTimeout = errors.New("transport: timed out")

// timeoutError is a bound on time that was hit. It is a net.Error whose
// Timeout is true, so callers that treat network timeouts alike need no
// special case.
type timeoutError struct {
	what  string
	limit time.Duration
}

func (e *timeoutError) Error() string        { return fmt.Sprintf("%s within %s", e.what, e.limit) }
func (e *timeoutError) Is(target error) bool { return target == ErrTimeout }
func (e *timeoutError) Timeout() bool        { return true }
func (e *timeoutError) Temporary() bool      { return false }

// idleProgress is how many bytes a body must deliver within the idle limit
// to count as moving (the error says "1 KiB").
const idleProgress = 1 << 10

// redirects counts the redirects that led to req: net/http links each
// redirected request to the response that caused it.
func redirects(req *http.Request) int {
	n := 0
	for r := req.Response; r != nil && r.Request != nil; r = r.Request.Response {
		n++
	}
	return n
}

// attempt sends req once, with the time limit to response headers, and
// returns a response whose body has the idle limit.
func (t *Transport) attempt(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	r := req.WithContext(ctx)
	ht := &headerTimer{limit: t.headerTimeout, cancel: cancel}
	if t.headerTimeout > 0 {
		if r.Body == nil || r.Body == http.NoBody {
			ht.start()
		} else {
			// The limit runs from the end of the body: an upload may take
			// as long as it takes.
			r.Body = &onEOF{ReadCloser: r.Body, f: ht.start}
			if r.GetBody != nil {
				getBody := r.GetBody
				r.GetBody = func() (io.ReadCloser, error) {
					b, err := getBody()
					if err != nil {
						return nil, err
					}
					return &onEOF{ReadCloser: b, f: ht.start}, nil
				}
			}
		}
	}
	resp, err := t.base.RoundTrip(r)
	ht.stop()
	if err != nil {
		err = boundCause(ctx, err)
		cancel(nil)
		return nil, err
	}
	if t.idleTimeout > 0 {
		resp.Body = &idleBody{body: resp.Body, ctx: ctx, cancel: cancel, limit: t.idleTimeout,
			what: fmt.Sprintf("%s %s: less than 1 KiB of the response body arrived", req.Method, RedactURL(req.URL))}
	} else {
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	}
	return resp, nil
}

// boundCause returns the bound that cancelled ctx instead of err, the
// "context canceled" net/http reports for it.
func boundCause(ctx context.Context, err error) error {
	var te *timeoutError
	if cause := context.Cause(ctx); errors.As(cause, &te) {
		return te
	}
	return err
}

// headerTimer cancels the attempt when response headers take too long. It
// is started once the request is sent and may be stopped before.
type headerTimer struct {
	limit   time.Duration
	cancel  context.CancelCauseFunc
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func (h *headerTimer) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || h.timer != nil {
		return
	}
	h.timer = time.AfterFunc(h.limit, func() {
		h.cancel(&timeoutError{what: "no response headers", limit: h.limit})
	})
}

func (h *headerTimer) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.timer != nil {
		h.timer.Stop()
	}
}

// onEOF calls f when the body has been read to its end.
type onEOF struct {
	io.ReadCloser
	f func()
}

func (b *onEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.f()
	}
	return n, err
}

// cancelOnClose releases the attempt's context with the body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// idleBody fails a Read when, over limit spent waiting in Read, less than
// idleProgress bytes arrived. Only time inside Read counts: a caller that
// is slow to read (because it writes elsewhere) is not the server's fault.
type idleBody struct {
	body    io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	limit   time.Duration
	what    string        // the request, for the error
	waited  time.Duration // inside Read since the last progress
	arrived int           // bytes since the last progress
}

func (b *idleBody) Read(p []byte) (int, error) {
	if err := context.Cause(b.ctx); err != nil {
		var te *timeoutError
		if errors.As(err, &te) {
			return 0, te
		}
	}
	remaining := b.limit - b.waited
	start := time.Now()
	timer := time.AfterFunc(remaining, func() {
		b.cancel(&timeoutError{what: b.what, limit: b.limit})
	})
	n, err := b.body.Read(p)
	timer.Stop()
	b.waited += time.Since(start)
	b.arrived += n
	if b.arrived >= idleProgress {
		b.waited, b.arrived = 0, 0
	}
	if err != nil && err != io.EOF {
		err = boundCause(b.ctx, err)
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.body.Close()
	b.cancel(nil)
	return err
}
