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
