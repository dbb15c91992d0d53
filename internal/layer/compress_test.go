package layer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"math/rand"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestCompressRoundTrip(t *testing.T) {
	t.Parallel()
	// Half random, half repetitive: compressible, but not trivially.
	rnd := rand.New(rand.NewSource(1))
	src := make([]byte, 3<<20)
	rnd.Read(src[:1<<20])
	for i := 1 << 20; i < len(src); i++ {
		src[i] = byte(i / 1000)
	}
	tests := []struct {
		c         Compression
		level     int
		mediaType types.MediaType
		magic     []byte
	}{
		{Gzip, 0, types.OCILayer, []byte{0x1f, 0x8b}},
		{Gzip, 1, types.OCILayer, []byte{0x1f, 0x8b}},
		{Gzip, 9, types.OCILayer, []byte{0x1f, 0x8b}},
		{Zstd, 0, types.OCILayerZStd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{Zstd, 19, types.OCILayerZStd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{Uncompressed, 0, types.OCIUncompressedLayer, src[:4]},
	}
	for _, tt := range tests {
		t.Run(string(tt.c)+"-"+string(rune('0'+tt.level%10)), func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			blob, err := Compress(context.Background(), &out, bytes.NewReader(src), tt.c, tt.level)
			if err != nil {
				t.Fatalf("Compress: %v", err)
			}
			if got, want := blob.Digest.String(), sha(out.Bytes()); got != want {
				t.Errorf("Digest = %s, want %s", got, want)
			}
			if got, want := blob.Size, int64(out.Len()); got != want {
				t.Errorf("Size = %d, want %d", got, want)
			}
			if got, want := blob.DiffID.String(), sha(src); got != want {
				t.Errorf("DiffID = %s, want %s", got, want)
			}
			if blob.MediaType != tt.mediaType {
				t.Errorf("MediaType = %s, want %s", blob.MediaType, tt.mediaType)
			}
			if !bytes.HasPrefix(out.Bytes(), tt.magic) {
				t.Errorf("output starts % x, want magic % x", out.Bytes()[:4], tt.magic)
			}
			if tt.c != Uncompressed && out.Len() >= len(src)*3/4 {
				t.Errorf("compressed size %d of %d bytes: not compressed", out.Len(), len(src))
			}
			if tt.c == Gzip {
				// No FNAME/FCOMMENT flags and a zero MTIME in the header.
				if flg, mtime := out.Bytes()[3], out.Bytes()[4:8]; flg != 0 || !bytes.Equal(mtime, []byte{0, 0, 0, 0}) {
					t.Errorf("gzip header flags %x mtime % x, want 0 and 0", flg, mtime)
				}
			}

			rc, err := Decompress(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("reading decompressed: %v", err)
			}
			must(t, rc.Close())
			if !bytes.Equal(got, src) {
				t.Errorf("round trip gave %d bytes differing from the %d in", len(got), len(src))
			}

			var again bytes.Buffer
			if _, err := Compress(context.Background(), &again, bytes.NewReader(src), tt.c, tt.level); err != nil {
				t.Fatalf("Compress again: %v", err)
			}
			if !bytes.Equal(again.Bytes(), out.Bytes()) {
				t.Errorf("two compressions of the same input differ")
			}
		})
	}
}

func TestCompressErrors(t *testing.T) {
	t.Parallel()
	if _, err := Compress(context.Background(), io.Discard, bytes.NewReader(nil), "brotli", 0); err == nil {
		t.Errorf("Compress with unknown compression: got nil error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Compress(ctx, io.Discard, bytes.NewReader(make([]byte, 10)), Gzip, 0); err == nil {
		t.Errorf("Compress with cancelled context: got nil error")
	}
}

func TestDecompressEmptyAndShort(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{nil, {0x1}, []byte("abc")} {
		rc, err := Decompress(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("Decompress(%q): %v", in, err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("Decompress(%q) read %q, %v; want the input back", in, got, err)
		}
	}
}

// hashingBuffer is a HashingWriter that hashes what it takes, and counts
// the Digest calls, so a test can tell Compress used it.
type hashingBuffer struct {
	bytes.Buffer
	h       hash.Hash
	digests int
}

func (b *hashingBuffer) Write(p []byte) (int, error) {
	n, err := b.Buffer.Write(p)
	b.h.Write(p[:n])
	return n, err
}

func (b *hashingBuffer) Digest() v1.Hash {
	b.digests++
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(b.h.Sum(nil))}
}

// TestCompressHashingWriter: the blob digest of a dst that hashes its own
// bytes is dst's, and it is the digest of the bytes written.
func TestCompressHashingWriter(t *testing.T) {
	t.Parallel()
	src := bytes.Repeat([]byte("layer tar bytes "), 50000)
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			dst := &hashingBuffer{h: sha256.New()}
			blob, err := Compress(context.Background(), dst, bytes.NewReader(src), c, 0)
			if err != nil {
				t.Fatalf("Compress: %v", err)
			}
			if dst.digests != 1 {
				t.Errorf("Compress asked dst for its digest %d times, want once", dst.digests)
			}
			if got, want := blob.Digest.String(), sha(dst.Bytes()); got != want {
				t.Errorf("Digest = %s, want %s (the bytes written)", got, want)
			}
			if got, want := blob.Size, int64(dst.Len()); got != want {
				t.Errorf("Size = %d, want %d", got, want)
			}
		})
	}
}
