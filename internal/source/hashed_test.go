package source

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
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
			if _, err := hashContent(h, p, size); err != nil {
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
