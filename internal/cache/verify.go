package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// VerifyReader wraps rc so that reading it to the end checks that its bytes
// hash to want and number size (size < 0: any size). A mismatch is an
// error wrapping ErrDigestMismatch, returned by the Read that reaches the end
// (or that exceeds size). An rc that is itself a VerifyReader of the same
// digest and size (a VerifyingFetcher's blob checked again by its reader)
// is returned as it is: it makes the very same check, so its bytes are not
// hashed twice.
func VerifyReader(rc io.ReadCloser, want v1.Hash, size int64) io.ReadCloser {
	if v, ok := rc.(*verifier); ok && v.want == want && v.size == size {
		return v
	}
	return &verifier{rc: rc, h: sha256.New(), want: want, size: size}
}

type verifier struct {
	rc   io.ReadCloser
	h    hash.Hash
	want v1.Hash
	size int64
	n    int64
	err  error
	// checked: every byte is in and hashes to want.
	checked bool
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("blob %s: more than %d bytes: %w", v.want, v.size, ErrDigestMismatch)
		return 0, v.err
	}
	// The digest is checked as soon as every byte is in (the size is
	// known), or at EOF, before the last bytes are handed over: a reader
	// of a wrong blob never gets all of it, so an upload it feeds ends
	// short with this error rather than whole, for the server to refuse
	// first with its own. A transport that checks digests itself
	// (go-containerregistry does) reports a mismatch as its own error on
	// the last read; once every byte is in, this check decides what it was.
	if !v.checked && (err == io.EOF || (v.size >= 0 && v.n == v.size)) {
		got := hex.EncodeToString(v.h.Sum(nil))
		if v.want.Algorithm != "sha256" || got != v.want.Hex || (v.size >= 0 && v.n != v.size) {
			v.err = fmt.Errorf("blob %s: got sha256:%s (%d bytes): %w", v.want, got, v.n, ErrDigestMismatch)
			return 0, v.err
		}
		v.checked = true
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }
