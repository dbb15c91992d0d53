package layer

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// mixedInput is n bytes that compress somewhat: runs of text and of
// random bytes, with repeats that cross block boundaries.
func mixedInput(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	out := make([]byte, 0, n)
	for len(out) < n {
		switch r.IntN(3) {
		case 0:
			for range 1 + r.IntN(2000) {
				out = append(out, "the quick brown fox jumps over the lazy dog "[r.IntN(10):]...)
			}
		case 1:
			b := make([]byte, 1+r.IntN(100_000))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			out = append(out, b...)
		default:
			if len(out) > 40_000 {
				off := r.IntN(len(out) - 30_000)
				out = append(out, out[off:off+r.IntN(30_000)]...)
			}
		}
	}
	return out[:n]
}

// pgzip compresses in with parallelGzip on procs cores, written in chunks
// of chunk bytes.
func pgzip(t *testing.T, in []byte, level, procs, chunk int) []byte {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	var out bytes.Buffer
	z, err := newParallelGzip(&out, level)
	if err != nil {
		t.Fatal(err)
	}
	for p := in; len(p) > 0; {
		k := min(chunk, len(p))
		if _, err := z.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestParallelGzipDeterministic: the same input gives the same bytes at
// any number of cores and however it is written, and they are a gzip
// stream the standard library and gunzip read back.
func TestParallelGzipDeterministic(t *testing.T) {
	in := mixedInput(3*gzipBlockSize+12345, 1)
	for _, level := range []int{gzip.DefaultCompression, gzip.BestSpeed, 6, gzip.BestCompression} {
		want := pgzip(t, in, level, 1, 1<<20)
		for _, c := range []struct{ procs, chunk int }{{2, 32 << 10}, {3, 13}, {8, 7 << 20}, {2, gzipBlockSize}} {
			if c.chunk == 13 && level != gzip.BestSpeed {
				continue // small writes are slow; one level shows them
			}
			if got := pgzip(t, in, level, c.procs, c.chunk); !bytes.Equal(got, want) {
				t.Errorf("level %d, %d cores, chunks of %d: %d bytes differ from 1 core's %d", level, c.procs, c.chunk, len(got), len(want))
			}
		}
		zr, err := stdgzip.NewReader(bytes.NewReader(want))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("level %d: compress/gzip reads back %d bytes (%v), want the %d written", level, len(got), err, len(in))
		}
		if level == gzip.DefaultCompression {
			if _, err := exec.LookPath("gzip"); err == nil {
				cmd := exec.Command("gzip", "-dc")
				cmd.Stdin = bytes.NewReader(want)
				out, err := cmd.Output()
				if err != nil || !bytes.Equal(out, in) {
					t.Errorf("gzip -dc: %d bytes, %v", len(out), err)
				}
			}
		}
	}
	// Parallel blocks cost little: within 2% of one stream.
	var one bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&one, gzip.DefaultCompression)
	zw.Write(in)
	zw.Close()
	if got := len(pgzip(t, in, gzip.DefaultCompression, 2, 1<<20)); float64(got) > 1.02*float64(one.Len()) {
		t.Errorf("parallel: %d bytes, one stream: %d", got, one.Len())
	}
}

// TestParallelGzipSmallIsGzip: an input of at most one block is compressed
// to exactly what gzip.Writer writes, so small layers keep their digests.
func TestParallelGzipSmallIsGzip(t *testing.T) {
	for _, n := range []int{0, 1, 1000, gzipBlockSize - 1, gzipBlockSize} {
		in := mixedInput(n, 2)
		var want bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&want, gzip.DefaultCompression)
		zw.Write(in)
		zw.Close()
		if got := pgzip(t, in, gzip.DefaultCompression, 2, 64<<10); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%d bytes: parallel gzip differs from gzip.Writer", n)
		}
	}
}

type failWriter struct{ n int }

var errFull = errors.New("test: disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errFull
	}
	return len(p), nil
}

// TestParallelGzipWriteError: a failing destination fails the Write or
// Close that follows, and nothing hangs.
func TestParallelGzipWriteError(t *testing.T) {
	in := mixedInput(12*gzipBlockSize, 3)
	z, err := newParallelGzip(&failWriter{n: 3 << 20}, gzip.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for p := in; len(p) > 0 && werr == nil; p = p[min(len(p), 64<<10):] {
		_, werr = z.Write(p[:min(len(p), 64<<10)])
	}
	cerr := z.Close()
	if !errors.Is(werr, errFull) && !errors.Is(cerr, errFull) {
		t.Fatalf("Write: %v, Close: %v, want %v", werr, cerr, errFull)
	}
	if _, err := newParallelGzip(io.Discard, 42); err == nil {
		t.Error("level 42 accepted")
	}
}

// BenchmarkGzip compares one gzip stream with parallel blocks on 32 MB
// of partly compressible input.
func BenchmarkGzip(b *testing.B) {
	in := mixedInput(32<<20, 4)
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			zw, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
			zw.Write(in)
			zw.Close()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			zw, _ := newParallelGzip(io.Discard, gzip.DefaultCompression)
			zw.Write(in)
			zw.Close()
		}
	})
}
