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

// copyChunk is how much a ctxWriter's ReadFrom hands its writer at once:
// ctx is checked between chunks.
const copyChunk = 8 << 20

// ReadFrom lets the underlying writer copy from r itself when it can (an
// *os.File copies from another file in the kernel: copy_file_range),
// copyChunk bytes at a time, so that ctx is still checked between chunks;
// a writer that cannot is written to through Write. An *io.LimitedReader
// r is unwrapped (and its N kept up to date), so that the underlying
// ReadFrom sees the file inside it.
func (c ctxWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.w.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	limit := int64(-1)
	lr, limited := r.(*io.LimitedReader)
	if limited {
		limit, r = lr.N, lr.R
	}
	var n int64
	var err error
	for limit != 0 {
		if err = c.ctx.Err(); err != nil {
			break
		}
		chunk := int64(copyChunk)
		if limit >= 0 && limit < chunk {
			chunk = limit
		}
		var k int64
		k, err = rf.ReadFrom(io.LimitReader(r, chunk))
		n += k
		if limit > 0 {
			limit -= k
		}
		if err != nil || k < chunk {
			break // an error, or the end of r
		}
	}
	if limited {
		lr.N = max(limit, 0)
	}
	return n, err
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
