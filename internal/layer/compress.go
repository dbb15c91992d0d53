package layer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/internal/stream"
)

// Compression names how a layer blob is compressed. The values are the
// strings buildx accepts for compression=.
type Compression string

// The compressions kiln writes.
const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "uncompressed"
)

// MediaType returns the OCI layer media type of blobs compressed with c,
// or "" for an unknown compression.
func (c Compression) MediaType() types.MediaType {
	switch c {
	case Gzip:
		return types.OCILayer
	case Zstd:
		return types.OCILayerZStd
	case Uncompressed:
		return types.OCIUncompressedLayer
	}
	return ""
}

// CompressionOf returns the compression a layer media type declares; ok is
// false for a media type that is not a layer kiln can apply and write
// (foreign layers, configs, anything unknown).
func CompressionOf(mt types.MediaType) (c Compression, ok bool) {
	switch mt {
	case types.OCILayer, types.DockerLayer:
		return Gzip, true
	case types.OCILayerZStd:
		return Zstd, true
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return Uncompressed, true
	}
	return "", false
}

// Sniff returns the compression a blob's first bytes show (at least 4 are
// needed to tell zstd); anything that is neither gzip nor zstd is
// Uncompressed.
func Sniff(magic []byte) Compression {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	}
	return Uncompressed
}

// Blob describes a compressed layer: the digest and size of the blob as
// stored, the digest of its uncompressed tar (the diff ID) and its media type.
type Blob struct {
	// Digest is the SHA-256 of the blob (the bytes Compress wrote to dst):
	// the layer's digest in a manifest. For Uncompressed it equals DiffID.
	Digest v1.Hash
	// Size is the blob's length in bytes.
	Size int64
	// DiffID is the SHA-256 of the uncompressed tar (what Compress read
	// from src).
	DiffID v1.Hash
	// MediaType is the OCI layer media type of the compression used
	// (Compression.MediaType).
	MediaType types.MediaType
}

// HashingWriter is a Compress destination that computes the SHA-256 of
// every byte it accepts, as store.BlobWriter does. Compress then takes the
// blob's digest from Digest instead of hashing the same bytes itself.
type HashingWriter interface {
	io.Writer
	// Digest returns the SHA-256 of the bytes Write accepted so far
	// (counting, of a short write, only the bytes taken).
	Digest() v1.Hash
}

// Compress copies the uncompressed tar src to dst, compressed with c, and
// returns the digests of both forms. level 0 means the library default;
// otherwise it is the gzip level (1–9) or the zstd level (1–22, mapped onto
// the encoder's speed classes). The output depends only on the input, c and
// level: gzip headers carry no name and no mtime, and gzip is compressed
// in blocks on all cores with the same bytes on any number of them
// (parallelGzip). The blob's digest is dst's own when dst is a
// HashingWriter. Compress does not close dst.
func Compress(ctx context.Context, dst io.Writer, src io.Reader, c Compression, level int) (Blob, error) {
	mt := c.MediaType()
	if mt == "" {
		return Blob{}, fmt.Errorf("compressing layer: unknown compression %q", c)
	}
	// A dst that hashes what it takes (the store's blob writer) already
	// computes the blob's digest: the same bytes, in the same process, are
	// not hashed a second time.
	var blobHash hash.Hash
	counter := &countWriter{w: dst}
	hw, hashes := dst.(HashingWriter)
	if !hashes {
		blobHash = sha256.New()
		counter.w = io.MultiWriter(dst, blobHash)
	}
	diffHash := sha256.New()

	var zw io.WriteCloser
	switch c {
	case Gzip:
		if level == 0 {
			level = gzip.DefaultCompression
		}
		gw, err := newParallelGzip(counter, level)
		if err != nil {
			return Blob{}, fmt.Errorf("compressing layer with gzip level %d: %w", level, err)
		}
		zw = gw
	case Zstd:
		opts := []zstd.EOption{zstd.WithEncoderCRC(true)}
		if level != 0 {
			opts = append(opts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)))
		}
		ew, err := zstd.NewWriter(counter, opts...)
		if err != nil {
			return Blob{}, fmt.Errorf("compressing layer with zstd level %d: %w", level, err)
		}
		zw = ew
	case Uncompressed:
		zw = nopWriteCloser{counter}
	}

	if _, err := io.Copy(io.MultiWriter(zw, diffHash), stream.Reader(ctx, src)); err != nil {
		zw.Close()
		return Blob{}, fmt.Errorf("compressing layer with %s: %w", c, err)
	}
	if err := zw.Close(); err != nil {
		return Blob{}, fmt.Errorf("compressing layer with %s: %w", c, err)
	}
	var digest v1.Hash
	if hashes {
		digest = hw.Digest()
	} else {
		digest = sumOf(blobHash)
	}
	return Blob{
		Digest:    digest,
		Size:      counter.n,
		DiffID:    sumOf(diffHash),
		MediaType: mt,
	}, nil
}

// Decompress returns the uncompressed stream of r, which may be a gzip,
// zstd or uncompressed tar; the format is sniffed from the magic bytes.
// Closing the result releases the decoder but does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("sniffing layer compression: %w", err)
	}
	switch Sniff(magic) {
	case Gzip:
		gr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("opening gzip layer: %w", err)
		}
		return gr, nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("opening zstd layer: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

func sumOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

type countWriter struct {
	w io.Writer
	n int64
}

// Write passes p on and counts the bytes the underlying writer took.
func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type nopWriteCloser struct{ io.Writer }

// Close does nothing: the underlying writer is the caller's to close.
func (nopWriteCloser) Close() error { return nil }
