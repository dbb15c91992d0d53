// Package stream holds the io wrappers kiln's packages share: a reader or
// writer that stops once its context is done, and a reader that counts
// what it yields. It sits below every box of DESIGN's data flow and knows
// none of them.
package stream

import (
	"context"
	"io"
)

// Reader returns r that fails with ctx's error once ctx is done, so a long
// copy stops soon after a cancellation.
func Reader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Writer returns w that fails with ctx's error once ctx is done.
func Writer(ctx context.Context, w io.Writer) io.Writer { return ctxWriter{ctx, w} }

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Count returns rc that calls add with the number of bytes of every read;
// Close closes rc.
func Count(rc io.ReadCloser, add func(int64)) io.ReadCloser { return &counter{rc, add} }

type counter struct {
	rc  io.ReadCloser
	add func(int64)
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.add(int64(n))
	return n, err
}

func (c *counter) Close() error { return c.rc.Close() }
