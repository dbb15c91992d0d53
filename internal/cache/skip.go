package cache

import (
	"errors"
	"net/http"
	"sync/atomic"
)

// SkipError is what an Importer or Exporter returns when it deliberately
// did nothing: the GitHub Actions cache in read-only mode
// (ACTIONS_CACHE_MODE), a token without write scope, … The build records
// it in its summary as a skipped import or export, with Reason, and goes
// on: it is neither a failure nor a warning.
type SkipError struct {
	// Reason says why, in words, for the summary ("ACTIONS_CACHE_MODE=read").
	Reason string
}

// Error is the message: one line.
func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Is makes a SkipError an ErrSkipped, the one sentinel the build branches on.
func (e *SkipError) Is(target error) bool { return target == ErrSkipped }

// SkipReason is why err (an ErrSkipped) skipped: a SkipError's Reason, or
// err's message.
func SkipReason(err error) string {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason
	}
	return err.Error()
}

// RequestCounter is an optional Importer/Exporter capability: how many
// HTTP requests it has made so far, for the build summary. A backend that
// speaks HTTP through Deps.Transport gets it by wrapping its transport with
// CountRequests.
type RequestCounter interface {
	Requests() int64
}

// CountRequests returns rt (http.DefaultTransport when nil) counting in n
// every request it carries, retries included.
func CountRequests(rt http.RoundTripper, n *atomic.Int64) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return countingTransport{rt: rt, n: n}
}

type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}
