package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

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
