package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestCopyContent: a file source is copied whole in the kernel (past
// several sendfile chunks, after bytes already in the destination), a
// stream source is read through, and a done context stops the copy.
func TestCopyContent(t *testing.T) {
	t.Parallel()
	data := make([]byte, 2*sendChunk+12345)
	rand.New(rand.NewSource(1)).Read(data)
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "src")
	if err := os.WriteFile(srcPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		stream bool
	}{{"file", false}, {"stream", true}} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.Open(srcPath)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			dst.Write([]byte("head"))
			var r io.Reader = src
			if tc.stream {
				r = bytes.NewReader(data)
			}
			if err := copyContent(context.Background(), dst, r); err != nil {
				t.Fatalf("copyContent: %v", err)
			}
			got, _ := os.ReadFile(dst.Name())
			if !bytes.Equal(got, append([]byte("head"), data...)) {
				t.Errorf("copied %d bytes, want %d equal to the source after the head", len(got), len(data)+4)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		src, _ := os.Open(srcPath)
		defer src.Close()
		dst, _ := os.Create(filepath.Join(t.TempDir(), "dst"))
		defer dst.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := copyContent(ctx, dst, src); !errors.Is(err, context.Canceled) {
			t.Errorf("copyContent after cancel: %v, want context.Canceled", err)
		}
		if fi, _ := dst.Stat(); fi.Size() != 0 {
			t.Errorf("copyContent after cancel wrote %d bytes", fi.Size())
		}
	})
}
