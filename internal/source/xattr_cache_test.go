package source

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestBinaryXattrsFromChecksumCache: xattr values are bytes, not text (a
// security.capability granting CAP_SETUID holds 0x80), and a file whose
// sum comes from the checksum cache must digest as one that is read. The
// cache once kept xattrs as JSON strings, which encoding/json coerces to UTF-8
// (each invalid byte becomes U+FFFD): a warm build then digests other
// xattrs than a cold one, so its keys differ, and two files whose values
// differ only in such bytes digest the same from the cache.
func TestBinaryXattrsFromChecksumCache(t *testing.T) {
	imagetest.Require(t, "user-xattr")
	digest := func(root, cache string) string {
		t.Helper()
		d, _ := cachedDigest(t, root, cache)
		return d
	}
	tree := func(value []byte) (root, cache string) {
		root = t.TempDir()
		p := filepath.Join(root, "ping")
		if err := os.WriteFile(p, []byte("bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(p, "user.kiln.test", value, 0); err != nil {
			t.Fatal(err)
		}
		return root, filepath.Join(t.TempDir(), "sums.json")
	}
	// The v2 capability layout: magic 0x02000001, then permitted bits
	// (CAP_SETUID is bit 7).
	setuid := []byte{0x01, 0x00, 0x00, 0x02, 0x80, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	other := append([]byte(nil), setuid...)
	other[4] = 0xc0 // CAP_SETGID and CAP_SETUID: another invalid UTF-8 byte

	rootA, cacheA := tree(setuid)
	read := digest(rootA, "")
	if cold := digest(rootA, cacheA); cold != read {
		t.Fatalf("digest filling the cache: %s, want %s", cold, read)
	}
	warmA := digest(rootA, cacheA)
	if warmA != read {
		t.Errorf("digest from the cache: %s, want %s (the read file's)", warmA, read)
	}

	rootB, cacheB := tree(other)
	readB := digest(rootB, "")
	digest(rootB, cacheB)
	warmB := digest(rootB, cacheB)
	if readB != read && warmB == warmA {
		t.Errorf("files with different xattrs digest the same from the cache: %s", warmA)
	}
}
