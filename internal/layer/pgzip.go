package layer

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// gzipBlockSize is how much input each block of a parallel gzip stream
// holds. It is fixed, never derived from the machine, so that the output
// depends only on the input and the level.
const gzipBlockSize = 1 << 20

// gzipDictSize is the window of deflate: each block is compressed with the
// last this many bytes of the block before it as its dictionary, so that
// matches across a block boundary are found as a single stream finds them.
const gzipDictSize = 32 << 10

// parallelGzip is a gzip writer that compresses blocks of gzipBlockSize
// input bytes on several cores (pigz's scheme). Each block but the last is
// a raw deflate stream ended by a sync flush (an empty stored block, so it
// ends on a byte boundary and is not final); the last is ended by a final
// block. Their concatenation, between the usual 10-byte header (no name,
// no mtime) and the CRC-32 and size trailer, is one standard gzip member,
// which any gunzip reads.
//
// The output is the same for the same input and level on any number of
// cores: the block boundaries and every block's dictionary are fixed by
// the input alone. An input of at most one block is compressed exactly as
// klauspost's gzip.Writer compresses it (one deflate stream, closed).
type parallelGzip struct {
	w     io.Writer
	level int

	buf     []byte // the block being filled
	prev    []byte // the last gzipDictSize bytes of the block before it
	started bool   // a block was handed out (so buf is not the first)
	crc     uint32
	size    uint32

	// jobs carries blocks to the workers; order carries, in input order,
	// each block's result channel to the writer goroutine.
	jobs    chan gzipJob
	order   chan chan gzipResult
	workers sync.WaitGroup
	written chan error // the writer goroutine's end
	// failed is set by the writer goroutine when a write to w failed, so
	// that Write stops taking input.
	failed atomic.Pointer[error]
	err    error
	closed bool
}

type gzipJob struct {
	data, dict []byte
	final      bool
	out        chan gzipResult
}

type gzipResult struct {
	b   []byte
	err error
}

// newParallelGzip returns a parallelGzip writing to w at level (a gzip
// level, 1–9 or gzip.DefaultCompression). Close writes the trailer; it does
// not close w.
func newParallelGzip(w io.Writer, level int) (*parallelGzip, error) {
	if _, err := flate.NewWriter(io.Discard, level); err != nil {
		return nil, fmt.Errorf("gzip: invalid compression level: %d", level)
	}
	return &parallelGzip{w: w, level: level, buf: (*inBufs.Get().(*[]byte))[:0]}, nil
}

// header is the 10 bytes klauspost's gzip.Writer starts a member with when
// no name, comment, extra field or mtime is set.
func (z *parallelGzip) header() []byte {
	h := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	switch z.level {
	case gzip.BestCompression:
		h[8] = 2
	case gzip.BestSpeed:
		h[8] = 4
	}
	return h
}

func (z *parallelGzip) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n := len(p)
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(len(p))
	for len(p) > 0 {
		k := min(len(p), gzipBlockSize-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		// A full block is handed out only when more input follows, so
		// that the last block is known to be last when it is compressed.
		if len(z.buf) == gzipBlockSize && len(p) > 0 {
			if err := z.send(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// send hands the filled block to a worker (starting the workers and the
// writer at the first block) and begins a new one.
func (z *parallelGzip) send(final bool) error {
	if !z.started {
		z.start()
	}
	if err := z.failed.Load(); err != nil {
		z.err = *err
		return z.err
	}
	out := make(chan gzipResult, 1)
	z.order <- out
	// The next block's dictionary is this block's tail, copied: the block
	// itself goes back to the pool once compressed.
	dict := z.prev
	tail := z.buf[max(0, len(z.buf)-gzipDictSize):]
	if len(tail) < gzipDictSize {
		tail = append(append([]byte(nil), z.prev...), tail...)
		tail = tail[max(0, len(tail)-gzipDictSize):]
	}
	z.prev = append(make([]byte, 0, gzipDictSize), tail...)
	z.jobs <- gzipJob{data: z.buf, dict: dict, final: final, out: out}
	z.buf = (*inBufs.Get().(*[]byte))[:0]
	return nil
}

// inBufs and outBufs recycle the blocks' input and output buffers.
var (
	inBufs  = sync.Pool{New: func() any { b := make([]byte, 0, gzipBlockSize); return &b }}
	outBufs = sync.Pool{New: func() any { b := make([]byte, 0, gzipBlockSize+gzipBlockSize/8); return &b }}
)

// start writes the header and starts the workers and the writer.
func (z *parallelGzip) start() {
	z.started = true
	n := runtime.GOMAXPROCS(0)
	// At most n blocks are being compressed and n wait to be written, so
	// memory stays about 4n MiB whatever the layer's size.
	z.jobs = make(chan gzipJob)
	z.order = make(chan chan gzipResult, n)
	z.written = make(chan error, 1)
	for range n {
		z.workers.Go(func() {
			var fw *flate.Writer // reused for blocks with a dictionary
			for j := range z.jobs {
				b, err := deflateBlock(&fw, j.data, j.dict, z.level, j.final)
				inBufs.Put(&j.data)
				j.out <- gzipResult{b, err}
			}
		})
	}
	// The writer writes the blocks in input order; after a failure it only
	// drains them, so that nothing waits on it.
	go func() {
		_, err := z.w.Write(z.header())
		for out := range z.order {
			r := <-out
			if err == nil {
				err = r.err
			}
			if err == nil {
				_, err = z.w.Write(r.b)
			}
			if r.b != nil {
				outBufs.Put(&r.b)
			}
			if err != nil && z.failed.Load() == nil {
				z.failed.Store(&err)
			}
		}
		z.written <- err
	}()
}

// deflateBlock compresses data with dict as its window, ended by a sync
// flush, or by a final block when final. A block with a dictionary reuses
// *reuse (a writer reset with the dictionary compresses as a new one
// does: the tests compare outputs on different numbers of cores, where
// blocks land on different workers).
func deflateBlock(reuse **flate.Writer, data, dict []byte, level int, final bool) ([]byte, error) {
	out := &sliceWriter{b: (*outBufs.Get().(*[]byte))[:0]}
	var fw *flate.Writer
	var err error
	switch {
	case len(dict) == 0:
		fw, err = flate.NewWriter(out, level)
	case *reuse == nil:
		fw, err = flate.NewWriterDict(out, level, dict)
		*reuse = fw
	default:
		fw = *reuse
		fw.ResetDict(out, dict)
	}
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(data); err != nil {
		return nil, err
	}
	if final {
		err = fw.Close()
	} else {
		err = fw.Flush()
	}
	return out.b, err
}

type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// Close compresses the last block, waits for every block to be written
// and writes the trailer.
func (z *parallelGzip) Close() error {
	if z.closed {
		return z.err
	}
	z.closed = true
	if z.err != nil {
		z.stop()
		return z.err
	}
	if err := z.send(true); err != nil {
		z.stop()
		return err
	}
	z.stop()
	if z.err != nil {
		return z.err
	}
	var t [8]byte
	binary.LittleEndian.PutUint32(t[:4], z.crc)
	binary.LittleEndian.PutUint32(t[4:], z.size)
	_, z.err = z.w.Write(t[:])
	return z.err
}

// stop ends the workers and the writer and keeps the writer's error.
func (z *parallelGzip) stop() {
	if !z.started {
		return
	}
	close(z.jobs)
	close(z.order)
	z.workers.Wait()
	if err := <-z.written; err != nil && z.err == nil {
		z.err = err
	}
}
