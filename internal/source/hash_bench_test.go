package source

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// bigTree writes n files of size bytes each (random, so nothing dedups)
// under dir, 100 to a directory.
func bigTree(tb testing.TB, dir string, n, size int) {
	tb.Helper()
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		rand.Read(buf)
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkDigestFresh is the digest of a fresh checkout (no checksum
// cache): 5,000 files, 200 MB in all, as CI sees every build.
func BenchmarkDigestFresh(b *testing.B) {
	dir := b.TempDir()
	bigTree(b, dir, 5000, 40<<10)
	b.SetBytes(5000 * 40 << 10)
	for b.Loop() {
		tr, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		m, err := tr.Select([]string{"."})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tr.Digest(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDigestSameOnAnyCores: the digest of a tree of many files does not
// depend on how many cores hashed it, nor on the checksum cache.
func TestDigestSameOnAnyCores(t *testing.T) {
	dir := t.TempDir()
	bigTree(t, dir, 700, 3000)
	// Files of other sizes, an empty one and a hard link among them.
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "d000", "f00001"), filepath.Join(dir, "d006", "link")); err != nil {
		t.Fatal(err)
	}
	digest := func(procs int, cache string) string {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		tr, err := Open(dir, Options{CacheFile: cache})
		if err != nil {
			t.Fatal(err)
		}
		tr.racyWindow = 0
		m, err := tr.Select([]string{"d000", "."})
		if err != nil {
			t.Fatal(err)
		}
		d, err := tr.Digest(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Save(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cache := filepath.Join(t.TempDir(), "sums.json")
	want := digest(1, "")
	for _, procs := range []int{2, 3, 8} {
		if got := digest(procs, ""); got != want {
			t.Errorf("GOMAXPROCS=%d: %s, with 1: %s", procs, got, want)
		}
	}
	if got := digest(8, cache); got != want {
		t.Errorf("filling the checksum cache: %s, want %s", got, want)
	}
	if got := digest(8, cache); got != want {
		t.Errorf("from the checksum cache: %s, want %s", got, want)
	}
	// And it changes when one file does.
	if err := os.WriteFile(filepath.Join(dir, "d003", "f00350"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := digest(8, ""); got == want {
		t.Error("digest unchanged after a file changed")
	}
}

// TestPrefetch: a Digest after (or while) Prefetch hashes the same files
// reads none of them again and gives the digest a fresh Tree gives; a
// file changed since it was prefetched is read again.
func TestPrefetch(t *testing.T) {
	dir := t.TempDir()
	bigTree(t, dir, 300, 5000)
	ctx := context.Background()
	fresh, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := fresh.Select([]string{"."})
	want, err := fresh.Digest(ctx, all)
	if err != nil {
		t.Fatal(err)
	}

	tr, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr.racyWindow = 0
	m, _ := tr.Select([]string{"."})
	done := make(chan struct{})
	go func() { tr.Prefetch(ctx, m); close(done) }()
	got, err := tr.Digest(ctx, m) // while the prefetch runs
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if got != want {
		t.Errorf("digest beside a prefetch: %s, want %s", got, want)
	}
	if n := tr.reads.Load(); n != 300 {
		t.Errorf("prefetch and digest together read %d files, want each of the 300 once", n)
	}
	if got, _ := tr.Digest(ctx, m); got != want {
		t.Errorf("second digest: %s, want %s", got, want)
	}
	if n := tr.reads.Load(); n != 300 {
		t.Errorf("second digest read files again: %d reads", n)
	}
	if err := os.WriteFile(filepath.Join(dir, "d001", "f00150"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.Digest(ctx, m); got == want {
		t.Error("digest unchanged after a file changed")
	}
	if n := tr.reads.Load(); n != 301 {
		t.Errorf("after one file changed: %d reads, want 301", n)
	}

	// Files changed just before they were hashed are hashed again.
	racy, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	racy.racyWindow, racy.fineRacyWindow = time.Hour, time.Hour
	m, _ = racy.Select([]string{"."})
	racy.Prefetch(ctx, m)
	if _, err := racy.Digest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n := racy.reads.Load(); n != 2*300 {
		t.Errorf("racy files: %d reads by a prefetch and a digest after it, want 600", n)
	}
}

// TestDigestLeavesAtime: hashing a file does not update its access time
// (O_NOATIME; the tests run as root, who may use it on any file), where a
// plain read of the same file on the same file system does: on a relatime
// mount the first read after a write would otherwise dirty the inode.
func TestDigestLeavesAtime(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-48 * time.Hour)
	for _, name := range []string{"hashed", "control"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("content of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	atime := func(name string) time.Time {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Unix())
	}
	if _, err := os.ReadFile(filepath.Join(dir, "control")); err != nil {
		t.Fatal(err)
	}
	if !atime("control").After(old.Add(time.Hour)) {
		t.Fatalf("a plain read did not update the access time here (mounted noatime?): the test cannot tell O_NOATIME's effect")
	}
	tr, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := tr.Select([]string{"hashed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if tr.Hashed() != 1 {
		t.Fatalf("hashed %d files, want 1", tr.Hashed())
	}
	if got := atime("hashed"); got.After(old.Add(time.Hour)) {
		t.Errorf("hashing moved the access time from %v to %v", old, got)
	}
}

// TestKeyListingJoinsPrefetch: a KeyListing of the matches a Prefetch is
// walking waits for that walk and returns its digest and listing, without
// walking again (the copy's own check after copying catches a change the
// walk missed); once the Prefetch has ended, KeyListing walks as
// DigestListing does. A Prefetch of other matches is not joined.
func TestKeyListingJoinsPrefetch(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"a": "first a", "b": "b", "c": "c"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	tr, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr.racyWindow, tr.fineRacyWindow = 0, 0
	m, _ := tr.Select([]string{"."})
	other, _ := tr.Select([]string{"a"})
	before, _, err := tr.DigestListing(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	// Hold the prefetch in its hashing of b: a hashing of b that has not
	// ended, as another caller's would be, makes it wait.
	fi, err := os.Lstat(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	hold := &sumCall{st: statKeyOf(fi.Sys().(*syscall.Stat_t)), done: make(chan struct{})}
	tr.memoMu.Lock()
	tr.memo["b"] = hold
	tr.memoMu.Unlock()
	prefetched := make(chan struct{})
	go func() { tr.Prefetch(ctx, m); close(prefetched) }()
	var f *flight
	for f == nil {
		time.Sleep(time.Millisecond)
		f = tr.flightOf(m)
	}
	if tr.flightOf(other) != nil {
		t.Error("a prefetch of . is a flight of a")
	}
	// A change of a: whether or not the prefetch saw it, a joined digest is
	// the prefetch's, and a later walk sees it.
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("second a, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		d   string
		l   *Listing
		err error
	}
	joined := make(chan result)
	go func() {
		d, l, err := tr.joinListing(ctx, f, m)
		joined <- result{d, l, err}
	}()
	select {
	case r := <-joined:
		t.Fatalf("joinListing returned before the prefetch ended: %v", r)
	case <-time.After(50 * time.Millisecond):
	}
	hold.content = content{sum: "not b's real sum"}
	close(hold.done)
	<-prefetched
	r := <-joined
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.l != f.listing || r.d != f.digest {
		t.Error("joinListing did not return the prefetch's own digest and listing")
	}
	if r.d == before {
		t.Error("the prefetch digested the held b as before: the hold did not hold")
	}
	if tr.flightOf(m) != nil {
		t.Error("a prefetch that ended is still a flight")
	}
	// Not in flight: KeyListing walks, and sees a as it is now.
	tr.memoMu.Lock()
	delete(tr.memo, "b")
	tr.memoMu.Unlock()
	now, _, err := tr.KeyListing(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if now == before || now == r.d {
		t.Error("KeyListing after the prefetch ended did not walk the sources again")
	}
}
