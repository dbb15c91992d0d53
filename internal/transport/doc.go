// Package transport is kiln's one HTTP client stack, shared by every part
// that talks HTTP: the registry client (package remote) and the GitHub
// Actions cache client (package cache/gha).
//
// It owns, below any protocol:
//
//   - retries (Transport): exponential backoff with jitter, Retry-After
//     (seconds or an HTTP date), 408, 429, 500, 502, 503, 504 and dropped
//     connections, only for requests that can be replayed, within one time
//     budget per request, with a back-off shared by every request to a
//     throttled host;
//   - bounds, so nothing hangs: at most MaxRedirects redirects whatever the
//     http.Client's CheckRedirect says, a time limit to response headers,
//     and an idle limit on response bodies;
//   - redaction (RedactURL, RedactHeader, RedactError, RedactString): no
//     signature, token, password or Authorization value reaches a message or
//     a log;
//   - the plain-HTTP and TLS policy (Policy, LoadCAFile): plain HTTP only to
//     loopback hosts and hosts the user named insecure, extra CAs;
//   - request counts (Counter, WithCounter): every attempt answered counts
//     in the counter its request's context carries, so a cache import or
//     export can tell how many requests it made through the shared stack;
//   - one error type (*Error): method, redacted URL, status and the
//     server's own message, parsed from registry, Twirp, Azure and plain
//     bodies.
//
// It does not know any protocol: which status means "not found", how a
// registry authenticates or how a cache entry is committed belong to the
// clients above it. It never reads the environment and never prints;
// debug records go to an injected *slog.Logger. In a build's data flow it
// sits under remote and the gha backend, between them and the network.
package transport
