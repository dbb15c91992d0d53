package stream

import (
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is what every TooLargeError matches with errors.Is.
var ErrTooLarge = errors.New("stream: too large")

// TooLargeError is a document read from outside that is bigger than the
// cap kiln allows for it.
type TooLargeError struct {
	// What names the document ("registry manifest r/app:1").
	What string
	// Limit is the cap, in bytes.
	Limit int64
}

// Error names the document and the cap.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is too large: more than %s, the limit", e.What, Size(e.Limit))
}

// Is makes errors.Is(err, ErrTooLarge) hold.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// ReadAllLimited reads r to its end, like io.ReadAll, but fails with a
// *TooLargeError naming what once more than limit bytes arrive. It never
// holds more than limit+1 bytes of r.
func ReadAllLimited(r io.Reader, what string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{What: what, Limit: limit}
	}
	return b, nil
}

// LimitReader returns rc that fails with a *TooLargeError naming what once
// more than limit bytes were read from it, for documents that a library
// reads on its own. The caller closes it.
func LimitReader(rc io.ReadCloser, what string, limit int64) io.ReadCloser {
	return &limited{rc: rc, what: what, left: limit, limit: limit}
}

type limited struct {
	rc          io.ReadCloser
	what        string
	left, limit int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, &TooLargeError{What: l.what, Limit: l.limit}
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n - int(-l.left), &TooLargeError{What: l.what, Limit: l.limit}
	}
	return n, err
}

func (l *limited) Close() error { return l.rc.Close() }

// Size formats a byte count for messages: "4 MiB", "512 KiB", "100 B".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
