package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCopyRefusesChangedSinceHashed: a file that changed between the
// digest that made the step's key and the copy fails the copy, naming the
// file, rather than copying content the key does not describe.
func TestCopyRefusesChangedSinceHashed(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"src/a.txt": "a", "src/sub/b.txt": "b"} {
		writeFile(t, filepath.Join(dir, name), body)
	}
	tr, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.racyWindow, tr.fineRacyWindow = 0, 0
	m, err := tr.Select([]string{"src/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := tr.CopyInto(context.Background(), m, t.TempDir(), CopyRequest{Dest: "/out/"}); err != nil {
		t.Fatalf("copy of what was hashed: %v", err)
	}
	writeFile(t, filepath.Join(dir, "src", "sub", "b.txt"), "changed after the digest")
	err = tr.CopyInto(context.Background(), m, t.TempDir(), CopyRequest{Dest: "/out/"})
	var ce *ChangedError
	if !errors.As(err, &ce) || ce.Path != "src/sub/b.txt" {
		t.Fatalf("copy after a change: %v, want a ChangedError for src/sub/b.txt", err)
	}
	// A digest after the change hashes it again; the copy then agrees.
	if _, err := tr.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := tr.CopyInto(context.Background(), m, t.TempDir(), CopyRequest{Dest: "/out/"}); err != nil {
		t.Fatalf("copy after the digest saw the change: %v", err)
	}
}

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

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAddRefusesArchiveChangedSinceHashed: ADD extracts a local archive
// straight from its path; an archive changed after its hashing fails as a
// plain copy would, rather than being extracted under the old key. (From
// the review of the copy's stat check.)
func TestAddRefusesArchiveChangedSinceHashed(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.tar")
	if err := os.WriteFile(p, makeTar(t, []tarEntry{{name: "app", body: "old", typ: '0'}}), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := openTree(t, dir, Options{})
	tr.racyWindow = 0
	m, err := tr.Select([]string{"app.tar"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := tr.CopyInto(context.Background(), m, t.TempDir(), CopyRequest{Dest: "/", ExtractArchives: true}); err != nil {
		t.Fatalf("ADD of the archive as hashed: %v", err)
	}
	if err := os.WriteFile(p, makeTar(t, []tarEntry{{name: "app", body: "new and longer", typ: '0'}}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	err = tr.CopyInto(context.Background(), m, out, CopyRequest{Dest: "/", ExtractArchives: true})
	var ce *ChangedError
	if !errors.As(err, &ce) || ce.Path != "app.tar" {
		b, _ := os.ReadFile(filepath.Join(out, "app"))
		t.Fatalf("ADD of an archive changed after it was hashed: %v (extracted %q), want a ChangedError for app.tar", err, b)
	}
}
