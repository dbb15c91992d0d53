package transport

import (
	"context"
	"net/http"
	"sync/atomic"
)

// Counter counts the HTTP requests made on behalf of one piece of work (a
// cache import or export), wherever in the program they are made: it
// travels in the request's context (WithCounter), so the one client stack
// every part shares counts for each caller separately. Every attempt a
// Transport sends that the server answers counts: retries, resumed
// downloads, redirects followed and token requests made under the same
// context, which is what the server sees. An attempt with no HTTP answer
// (no connection, a failed TLS handshake such as go-containerregistry's
// https probe of a plain-HTTP registry) does not count: no server saw a
// request. The zero value is ready; it is safe for concurrent use.
type Counter struct{ n atomic.Int64 }

// Requests returns the number of requests counted so far.
func (c *Counter) Requests() int64 { return c.n.Load() }

type counterKey struct{}

// WithCounter returns ctx whose requests count in c, in place of any
// counter ctx had: a request counts once, for the nearest piece of work
// that made it (an export reading a blob through an import's fetcher
// makes a request of the import).
func WithCounter(ctx context.Context, c *Counter) context.Context {
	if prev, _ := ctx.Value(counterKey{}).(*Counter); prev == c {
		return ctx
	}
	return context.WithValue(ctx, counterKey{}, c)
}

// count adds one request to the counter of req's context, if any.
func count(req *http.Request) {
	if c, _ := req.Context().Value(counterKey{}).(*Counter); c != nil {
		c.n.Add(1)
	}
}
