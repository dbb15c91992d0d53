package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestVerifyReaderWithholdsWrongEnd: a reader of a wrong blob whose size
// is known gets an ErrDigestMismatch before its last bytes, whatever the
// chunking, so an upload it feeds can never send the wrong blob whole; a
// right blob reads whole and ends with EOF.
func TestVerifyReaderWithholdsWrongEnd(t *testing.T) {
	right := bytes.Repeat([]byte("kiln layer bytes "), 1000)
	sum := sha256.Sum256(right)
	want := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	wrong := append([]byte(nil), right...)
	wrong[len(wrong)/2] ^= 0xff
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"data+EOF": iotest.DataErrReader,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := io.ReadAll(VerifyReader(io.NopCloser(wrap(bytes.NewReader(wrong))), want, int64(len(wrong))))
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("wrong blob: err = %v, want ErrDigestMismatch", err)
			}
			if len(got) >= len(wrong) {
				t.Errorf("wrong blob: %d of its %d bytes handed over, want fewer", len(got), len(wrong))
			}
			got, err = io.ReadAll(VerifyReader(io.NopCloser(wrap(bytes.NewReader(right))), want, int64(len(right))))
			if err != nil || !bytes.Equal(got, right) {
				t.Errorf("right blob: %d bytes, err %v; want all %d, no error", len(got), err, len(right))
			}
			got, err = io.ReadAll(VerifyReader(io.NopCloser(wrap(bytes.NewReader(append(right, 'x')))), want, int64(len(right))))
			if !errors.Is(err, ErrDigestMismatch) || len(got) > len(right) {
				t.Errorf("longer blob: %d bytes, err %v; want at most %d and ErrDigestMismatch", len(got), err, len(right))
			}
		})
	}
}

// TestVerifyReader: the bytes are checked against digest and size, and a
// verifier of the same digest and size is not wrapped again (its check is
// the same), while one of another digest or size is.
func TestVerifyReader(t *testing.T) {
	data := []byte("blob bytes")
	sum := sha256.Sum256(data)
	good := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	other := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(make([]byte, 32))}
	open := func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }
	for _, tc := range []struct {
		name    string
		rc      io.ReadCloser
		want    v1.Hash
		size    int64
		wantErr bool
	}{
		{"right", VerifyReader(open(), good, int64(len(data))), good, int64(len(data)), false},
		{"wrong digest", VerifyReader(open(), other, int64(len(data))), other, int64(len(data)), true},
		{"wrong size", VerifyReader(open(), good, 3), good, 3, true},
		{"any size", VerifyReader(open(), good, -1), good, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := io.ReadAll(tc.rc)
			if gotErr := errors.Is(err, ErrDigestMismatch); gotErr != tc.wantErr {
				t.Errorf("reading: %v, want a mismatch: %v", err, tc.wantErr)
			}
		})
	}
	inner := VerifyReader(open(), good, int64(len(data)))
	if again := VerifyReader(inner, good, int64(len(data))); again != inner {
		t.Errorf("VerifyReader of a verifier with the same digest and size wrapped it again")
	}
	// An outer check of another digest or size still runs: the inner
	// one passes the bytes, the outer one refuses them.
	for _, tc := range []struct {
		name string
		want v1.Hash
		size int64
	}{{"other digest", other, int64(len(data))}, {"other size", good, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			rc := VerifyReader(VerifyReader(open(), good, int64(len(data))), tc.want, tc.size)
			if _, err := io.ReadAll(rc); !errors.Is(err, ErrDigestMismatch) {
				t.Errorf("outer check of %s/%d: %v, want a mismatch", tc.want, tc.size, err)
			}
		})
	}
}
