package stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReaderStopsWhenDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := Reader(ctx, strings.NewReader("abcdef"))
	buf := make([]byte, 3)
	if n, err := r.Read(buf); n != 3 || err != nil {
		t.Fatalf("first read = %d, %v", n, err)
	}
	cancel()
	if _, err := r.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel = %v, want context.Canceled", err)
	}
}

func TestWriterStopsWhenDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var b bytes.Buffer
	w := Writer(ctx, &b)
	if _, err := w.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Write([]byte("cd")); !errors.Is(err, context.Canceled) || b.String() != "ab" {
		t.Errorf("write after cancel = %v (buffer %q), want context.Canceled and ab", err, b.String())
	}
}

func TestCount(t *testing.T) {
	var n int64
	rc := Count(io.NopCloser(strings.NewReader("hello world")), func(k int64) { n += k })
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	if n != 11 {
		t.Errorf("counted %d bytes, want 11", n)
	}
	if err := rc.Close(); err != nil {
		t.Error(err)
	}
}

// TestWriterReadFrom: a copy into an *os.File through Writer is handed to
// the file's ReadFrom (copy_file_range between files) in chunks; it copies
// exactly what r holds, keeps an io.LimitedReader's limit, and stops once
// ctx is done.
func TestWriterReadFrom(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (copyChunk*2+1000)/16)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		limit int64 // -1: all of it
	}{{"whole file", -1}, {"limited", copyChunk + 7}, {"limit past the end", int64(len(data)) + 100}} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			out, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			var r io.Reader = in
			want := data
			var lr *io.LimitedReader
			if tc.limit >= 0 {
				lr = &io.LimitedReader{R: in, N: tc.limit}
				r = lr
				want = data[:min(tc.limit, int64(len(data)))]
			}
			n, err := io.Copy(Writer(context.Background(), out), r)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("io.Copy = %d, %v; want %d, nil", n, err, len(want))
			}
			got, _ := os.ReadFile(out.Name())
			if !bytes.Equal(got, want) {
				t.Errorf("copied %d bytes that differ from the %d wanted", len(got), len(want))
			}
			if lr != nil && lr.N != tc.limit-int64(len(want)) {
				t.Errorf("LimitedReader.N = %d after the copy, want %d", lr.N, tc.limit-int64(len(want)))
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		in, _ := os.Open(src)
		defer in.Close()
		var b bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := io.Copy(Writer(ctx, &b), in); !errors.Is(err, context.Canceled) || b.Len() != 0 {
			t.Errorf("copy after cancel = %v with %d bytes, want context.Canceled and none", err, b.Len())
		}
	})
}

// readFromRecorder is a writer that copies through ReadFrom and counts
// the calls.
type readFromRecorder struct {
	bytes.Buffer
	calls int
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.calls++
	return r.Buffer.ReadFrom(src)
}

// TestWriterReadFromChunks: the copy goes through the writer's own
// ReadFrom, one call per chunk (ctx is checked between them).
func TestWriterReadFromChunks(t *testing.T) {
	data := make([]byte, copyChunk*2+1)
	var w readFromRecorder
	// Hiding bytes.Reader's WriteTo, which io.Copy would prefer.
	n, err := io.Copy(Writer(context.Background(), &w), struct{ io.Reader }{bytes.NewReader(data)})
	if err != nil || n != int64(len(data)) || w.Len() != len(data) {
		t.Fatalf("io.Copy = %d, %v (%d written), want %d", n, err, w.Len(), len(data))
	}
	if w.calls != 3 {
		t.Errorf("ReadFrom called %d times, want 3 (two whole chunks and the rest)", w.calls)
	}
}
