package imagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CorruptFileOf flips one byte in the middle of the file under dir whose
// bytes hash to h (a server that keeps each blob whole in one file: a cache
// server's entries, a registry's blob data), keeping its length. It fails
// the test when no such file exists.
func CorruptFileOf(t testing.TB, dir string, h v1.Hash) {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != h.Hex {
			return nil
		}
		b[len(b)/2] ^= 0xff
		found = true
		return os.WriteFile(p, b, 0o600)
	})
	if err != nil || !found {
		t.Fatalf("no file under %s holds %s (%v)", dir, h, err)
	}
}

// SyncBuffer is a bytes.Buffer that a server goroutine and a test may use
// at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
