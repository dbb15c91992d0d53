package cache

import (
	"errors"
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
// speaks HTTP through package transport gets it from CountedImporter and
// CountedExporter. A backend without it makes no requests of its own
// (local, inline), which the summary shows apart from a count of 0.
type RequestCounter interface {
	Requests() int64
}
