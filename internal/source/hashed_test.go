package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHashContentSizes: the content hash is the file's whole content
// whatever its size against the read buffer, and whatever size the
// caller's stat said (a stale one, smaller or larger, reads to the end).
func TestHashContentSizes(t *testing.T) {
	dir := t.TempDir()
	bufLen := 128 << 10
	for _, n := range []int{0, 1, bufLen - 1, bufLen, bufLen + 1, 2 * bufLen} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		p := filepath.Join(dir, fmt.Sprint(n))
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(body)
		for _, size := range []int64{int64(n), int64(n) / 2, int64(n) + 7} {
			h := sha256.New()
			if _, err := hashContent(context.Background(), h, p, size); err != nil {
				t.Fatal(err)
			}
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Errorf("%d bytes, stat size %d: hash of %x, want the whole file's", n, size, got[:6])
			}
		}
	}
}

// TestRacyWindow: timestamps with sub-second parts are racy for the fine
// window only; whole-second ones for the long window.
func TestRacyWindow(t *testing.T) {
	tr, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	fine := func(ago time.Duration) statKey {
		ns := now.Add(-ago).UnixNano()
		if ns%int64(time.Second) == 0 {
			ns++
		}
		return statKey{Mtime: ns, Ctime: ns}
	}
	whole := func(ago time.Duration) statKey {
		ns := now.Add(-ago).Truncate(time.Second).UnixNano()
		return statKey{Mtime: ns, Ctime: ns}
	}
	for _, c := range []struct {
		name string
		st   statKey
		want bool
	}{
		{"sub-second stamp 5 ms ago", fine(5 * time.Millisecond), true},
		{"sub-second stamp 500 ms ago", fine(500 * time.Millisecond), false},
		{"whole-second stamp 1 s ago", whole(time.Second), true},
		{"whole-second stamp 3 s ago", whole(3 * time.Second), false},
		{"whole-second mtime, sub-second ctime 500 ms ago", statKey{Mtime: whole(time.Second).Mtime, Ctime: fine(500 * time.Millisecond).Ctime}, false},
	} {
		if got := tr.racy(c.st); got != c.want {
			t.Errorf("%s: racy %t, want %t", c.name, got, c.want)
		}
	}
}

// TestListingFirstChange: the first path whose line differs, else the
// first one only the earlier listing has, else the first new one.
func TestListingFirstChange(t *testing.T) {
	l := func(pl ...string) *Listing {
		x := &Listing{}
		for i := 0; i < len(pl); i += 2 {
			x.paths, x.lines = append(x.paths, pl[i]), append(x.lines, pl[i+1])
		}
		return x
	}
	was := l("a", "1", "b", "2", "c", "3")
	for _, c := range []struct {
		now  *Listing
		want string
	}{
		{l("a", "1", "b", "2", "c", "3"), ""},
		{l("a", "1", "b", "2*", "c", "3*"), "b"},
		{l("a", "1", "c", "3"), "b"},
		{l("a", "1", "b", "2", "c", "3", "d", "4"), "d"},
	} {
		if got := was.FirstChange(c.now); got != c.want {
			t.Errorf("FirstChange(%v) = %q, want %q", c.now.paths, got, c.want)
		}
	}
	if files := was.Files(); len(files) != 3 || files[1].Path != "b" || len(files[1].Digest) != 64 {
		t.Errorf("Files() = %v", files)
	}
}

// TestFineRacyWindowLocal: a context on this machine's own disk gets the
// fine window; the file systems another machine stamps keep the long one.
func TestFineRacyWindowLocal(t *testing.T) {
	tr, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.fineRacyWindow != 50*time.Millisecond {
		t.Errorf("fine racy window on the test's local disk: %v, want 50ms", tr.fineRacyWindow)
	}
	if dev, err := Open("/dev/shm", Options{}); err == nil && dev.fineRacyWindow != 50*time.Millisecond {
		t.Errorf("fine racy window on tmpfs: %v, want 50ms", dev.fineRacyWindow)
	}
	for fsType, want := range map[int64]time.Duration{
		unix.EXT4_SUPER_MAGIC: 50 * time.Millisecond, unix.TMPFS_MAGIC: 50 * time.Millisecond,
		unix.XFS_SUPER_MAGIC: 50 * time.Millisecond, unix.BTRFS_SUPER_MAGIC: 50 * time.Millisecond,
		unix.NFS_SUPER_MAGIC: 2 * time.Second, unix.FUSE_SUPER_MAGIC: 2 * time.Second,
		unix.SMB2_SUPER_MAGIC: 2 * time.Second, unix.V9FS_MAGIC: 2 * time.Second,
	} {
		if got := fineRacyWindowOn(fsType); got != want {
			t.Errorf("fine racy window on file system %#x: %v, want %v", fsType, got, want)
		}
	}
}

// countWriter counts the bytes written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(b []byte) (int, error) { w.n += int64(len(b)); return len(b), nil }

// TestHashContentCancelled: the hashing of a file stops when its context
// ends, within cancelReads reads, rather than at the file's end: here a
// 64 MB file with a context ended before the first read reads nothing.
// Through a Tree, a file whose hashing was cancelled gets no sum: it is
// hashed again by the next Digest, and the cache keeps nothing for it.
func TestHashContentCancelled(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 64<<20); err != nil { // sparse: quick to make
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var w countWriter
	if _, err := hashContent(ctx, &w, p, 64<<20); !errors.Is(err, context.Canceled) {
		t.Fatalf("hashContent with an ended context: %v, want context.Canceled", err)
	}
	if w.n != 0 {
		t.Errorf("hashContent with an ended context hashed %d bytes", w.n)
	}

	cache := filepath.Join(t.TempDir(), "sums")
	tr, err := Open(dir, Options{CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	tr.racyWindow, tr.fineRacyWindow = 0, 0
	m, _ := tr.Select([]string{"big"})
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	e := entry{src: "big", fi: fi, st: fi.Sys().(*syscall.Stat_t)}
	if _, err := tr.fileSum(ctx, e); !errors.Is(err, context.Canceled) {
		t.Fatalf("fileSum with an ended context: %v", err)
	}
	if len(tr.memo) != 0 || len(tr.cache.entries) != 0 {
		t.Errorf("a cancelled hashing left a sum: memo %d, cache %d", len(tr.memo), len(tr.cache.entries))
	}
	if _, err := tr.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if tr.Hashed() != 1 {
		t.Errorf("after a cancelled hashing, a Digest read %d files, want 1", tr.Hashed())
	}
}
