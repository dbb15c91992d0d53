package stream

import (
	"bytes"
	"context"
	"errors"
	"io"
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
