package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/cache"
)

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func keyOf(s string) string { return digestOf([]byte(s)).Hex }

func openStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	s := openStore(t, root)
	for _, d := range []string{"blobs/sha256", "records", "locks", "tmp", "sn", "cc"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("layout dir %s: %v", d, err)
		}
	}
	if got, want := s.SnapshotRoot(), filepath.Join(root, "sn"); got != want {
		t.Errorf("SnapshotRoot() = %q, want %q", got, want)
	}
	d, err := s.TempDir("b")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d, filepath.Join(root, "tmp")+"/") {
		t.Errorf("TempDir() = %q, not under root/tmp", d)
	}
	if a, b := s.ContextCacheFile("/ctx/a"), s.ContextCacheFile("/ctx/b"); a == b || filepath.Dir(a) != filepath.Join(root, "cc") {
		t.Errorf("ContextCacheFile gave %q and %q", a, b)
	}
}

func TestBlobs(t *testing.T) {
	content := []byte("layer bytes")
	good := digestOf(content)
	bad := digestOf([]byte("other"))
	tests := []struct {
		name    string
		write   func(s *Store) error
		wantErr bool
		stored  bool
	}{
		{"WriteBlob ok", func(s *Store) error {
			return s.WriteBlob(context.Background(), bytes.NewReader(content), good)
		}, false, true},
		{"WriteBlob mismatch", func(s *Store) error {
			return s.WriteBlob(context.Background(), bytes.NewReader(content), bad)
		}, true, false},
		{"WriteBlob cancelled", func(s *Store) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return s.WriteBlob(ctx, bytes.NewReader(content), good)
		}, true, false},
		{"Commit", func(s *Store) error {
			w, err := s.NewBlobWriter()
			if err != nil {
				return err
			}
			defer w.Close()
			w.Write(content[:3])
			w.Write(content[3:])
			if w.Size() != int64(len(content)) || w.Digest() != good {
				return fmt.Errorf("Size/Digest = %d/%s", w.Size(), w.Digest())
			}
			h, err := w.Commit()
			if h != good {
				return fmt.Errorf("Commit() = %s, want %s", h, good)
			}
			return err
		}, false, true},
		{"CommitAs mismatch", func(s *Store) error {
			w, err := s.NewBlobWriter()
			if err != nil {
				return err
			}
			defer w.Close()
			w.Write(content)
			_, err = w.CommitAs(bad)
			return err
		}, true, false},
		{"Close discards", func(s *Store) error {
			w, err := s.NewBlobWriter()
			if err != nil {
				return err
			}
			w.Write(content)
			return w.Close()
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			err := tt.write(s)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if got := s.HasBlob(good); got != tt.stored {
				t.Errorf("HasBlob = %v, want %v", got, tt.stored)
			}
			if s.HasBlob(bad) {
				t.Errorf("blob stored under the wrong digest")
			}
			rc, err := s.OpenBlob(good)
			if !tt.stored {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("OpenBlob error = %v, want ErrNotFound", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(b, content) {
					t.Errorf("OpenBlob read %q, want %q", b, content)
				}
			}
			// No temporary files are left behind.
			ents, _ := os.ReadDir(filepath.Join(s.Root(), blobsDir))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), tmpPrefix) {
					t.Errorf("leftover temp file %s", e.Name())
				}
			}
		})
	}
}

func testRecord(name string, layers ...string) *cache.Record {
	r := &cache.Record{Key: cache.Key("sha256:" + keyOf(name)), CreatedBy: "RUN " + name, Stage: "build",
		Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, l := range layers {
		r.Layers = append(r.Layers, cache.Layer{Digest: digestOf([]byte(l)), DiffID: digestOf([]byte("diff-" + l)),
			Size: int64(len(l)), MediaType: types.OCILayer})
	}
	return r
}

func TestRecords(t *testing.T) {
	s := openStore(t, t.TempDir())
	want := testRecord("a", "l1", "l2")
	if err := s.PutRecord(want); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Root(), recordsDir, want.Key.Hex()+".json")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	got, err := s.Record(want.Key)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.ModTime().Before(time.Now().Add(-time.Minute)) {
		t.Errorf("record mtime not touched: %v", fi.ModTime())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Record mismatch (-want +got):\n%s", diff)
	}
	// A record file of an earlier kiln, whose key had no "sha256:" prefix,
	// reads with the prefix.
	prev := *want
	prev.Key = cache.Key(want.Key.Hex())
	raw, _ := json.Marshal(prev)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Record(want.Key); err != nil || got.Key != want.Key {
		t.Errorf("Record of an unprefixed file = %v, %v; want key %s", got, err, want.Key)
	}

	tests := []struct {
		name    string
		key     string
		content string
		wantNF  bool
	}{
		{"missing", keyOf("missing"), "", true},
		{"corrupt json", keyOf("c1"), "{not json", true},
		{"bad layer digest", keyOf("c2"), `{"key":"x","layers":[{"digest":"sha256:zz"}]}`, true},
		{"path key", "../../etc/passwd", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.content != "" {
				os.WriteFile(filepath.Join(s.Root(), recordsDir, tt.key+".json"), []byte(tt.content), 0o644)
			}
			_, err := s.Record(cache.Key(tt.key))
			if err == nil {
				t.Fatal("Record: no error")
			}
			if errors.Is(err, ErrNotFound) != tt.wantNF {
				t.Errorf("Record error = %v, want ErrNotFound %v", err, tt.wantNF)
			}
		})
	}
	// A record a power loss emptied (records are written unsynced) is a
	// miss too.
	empty := keyOf("c3")
	if err := os.WriteFile(filepath.Join(s.Root(), recordsDir, empty+".json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(cache.Key(empty)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Record of an empty record file: error = %v, want ErrNotFound", err)
	}
	if err := s.PutRecord(&cache.Record{Key: "a/b"}); err == nil {
		t.Error("PutRecord with a path key: no error")
	}
}

func TestConcurrentWrites(t *testing.T) {
	s := openStore(t, t.TempDir())
	content := bytes.Repeat([]byte("0123456789"), 100000)
	h := digestOf(content)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			w, err := s.NewBlobWriter() // not WriteBlob: it would skip once present
			if err == nil {
				w.Write(content)
				_, err = w.CommitAs(h)
				w.Close()
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			r := testRecord("same", "l1")
			r.CreatedBy = fmt.Sprint("writer ", i)
			errs <- s.PutRecord(r)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	checkConsistent(t, s, h, content, keyOf("same"))
}

func checkConsistent(t *testing.T, s *Store, h v1.Hash, content []byte, key string) {
	t.Helper()
	rc, err := s.OpenBlob(h)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if digestOf(b) != h || len(b) != len(content) {
		t.Errorf("blob corrupt: %d bytes", len(b))
	}
	r, err := s.Record(cache.Key(key))
	if err != nil {
		t.Fatalf("Record after concurrent writes: %v", err)
	}
	if !strings.HasPrefix(r.CreatedBy, "writer ") {
		t.Errorf("CreatedBy = %q", r.CreatedBy)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), recordsDir))
	if len(ents) != 1 {
		t.Errorf("records dir has %d entries, want 1", len(ents))
	}
}

// helperEnv, set to a state dir, makes the test binary the helper process
// of TestTwoProcesses instead of running tests.
const helperEnv = "KILN_STORE_HELPER"

// TestMain dispatches the helper process before any test runs, so that the
// helper is not written as a test that skips in the normal run.
func TestMain(m *testing.M) {
	if root := os.Getenv(helperEnv); root != "" {
		if err := helper(root); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var helperContent = bytes.Repeat([]byte("abcdefgh"), 200000)

// helper writes the shared blob and record many times, then takes the
// shared lock twice and logs its critical sections to root/log.
func helper(root string) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	defer s.Close()
	id := fmt.Sprint(os.Getpid())
	for i := range 20 {
		w, err := s.NewBlobWriter()
		if err != nil {
			return err
		}
		w.Write(helperContent)
		if _, err := w.CommitAs(digestOf(helperContent)); err != nil {
			return err
		}
		r := testRecord("same", "l1")
		r.CreatedBy = fmt.Sprint("writer ", id, " ", i)
		if err := s.PutRecord(r); err != nil {
			return err
		}
	}
	for range 3 {
		unlock, err := s.Lock(context.Background(), "step")
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(root, "log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "enter %s\n", id)
		// Hold the lock a while, so that broken locking would show as
		// interleaved lines; this waits for nothing.
		time.Sleep(30 * time.Millisecond)
		fmt.Fprintf(f, "leave %s\n", id)
		f.Close()
		unlock()
	}
	return nil
}

func TestTwoProcesses(t *testing.T) {
	root := t.TempDir()
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+root)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	s := openStore(t, root)
	checkConsistent(t, s, digestOf(helperContent), helperContent, keyOf("same"))
	log, err := os.ReadFile(filepath.Join(root, "log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.ReplaceAll(string(log), "\n", " "))
	if len(lines) != 2*2*3*2 {
		t.Fatalf("log has %d words, want 24:\n%s", len(lines), log)
	}
	for i := 0; i < len(lines); i += 4 {
		if lines[i] != "enter" || lines[i+2] != "leave" || lines[i+1] != lines[i+3] {
			t.Fatalf("critical sections interleave:\n%s", log)
		}
	}
}

func TestLock(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	unlock, err := s.Lock(ctx, "sha256:"+keyOf("k"))
	if err != nil {
		t.Fatal(err)
	}

	// A different name is independent.
	u2, err := s.Lock(ctx, "other name/with slash")
	if err != nil {
		t.Fatal(err)
	}
	u2()

	// The same name waits, and gives up when ctx is done.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(cctx, "sha256:"+keyOf("k")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock on a held name = %v, want deadline exceeded", err)
	}

	// A waiter gets the lock once it is released, not before. The lock is
	// released only once the waiter has found it held: Lock consults its
	// context's Done only when it has to wait.
	var mu sync.Mutex
	released := false
	got := make(chan bool)
	waiting := &waitSignal{Context: ctx, waiting: make(chan struct{})}
	go func() {
		u, err := s.Lock(waiting, "sha256:"+keyOf("k"))
		if err != nil {
			t.Error(err)
			got <- false
			return
		}
		mu.Lock()
		got <- released
		mu.Unlock()
		u()
	}()
	select {
	case <-waiting.waiting:
	case ok := <-got:
		t.Fatalf("second Lock returned (ok %v) without waiting for the held lock", ok)
	}
	mu.Lock()
	released = true
	unlock()
	mu.Unlock()
	if ok := <-got; !ok {
		t.Error("second Lock returned before the first was released")
	}
}

// waitSignal is a context that closes waiting the first time Done is
// called: the moment a Lock call starts to wait.
type waitSignal struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (w *waitSignal) Done() <-chan struct{} {
	w.once.Do(func() { close(w.waiting) })
	return w.Context.Done()
}

// fakeSnapshots is a SnapshotSet in memory.
type fakeSnapshots struct {
	infos   map[v1.Hash]SnapshotInfo
	removed []v1.Hash
}

func (f *fakeSnapshots) Usage(ctx context.Context) ([]SnapshotInfo, error) {
	var out []SnapshotInfo
	for _, i := range f.infos {
		out = append(out, i)
	}
	return out, nil
}

func (f *fakeSnapshots) Remove(ctx context.Context, id v1.Hash) error {
	delete(f.infos, id)
	f.removed = append(f.removed, id)
	return nil
}

func TestPruneRefusesWhileOpen(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	if _, err := Prune(context.Background(), root, PruneOptions{All: true}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Prune while open = %v, want ErrInUse", err)
	}
	s.Close()
	if _, err := Prune(context.Background(), root, PruneOptions{All: true}); err != nil {
		t.Fatalf("Prune after Close: %v", err)
	}
}

func TestOpenWaitsForPrune(t *testing.T) {
	root := t.TempDir()
	openStore(t, root).Close()
	f, _ := openLockFile(filepath.Join(root, lockFile))
	defer f.Close()
	if ok, err := tryFlock(f, unix.LOCK_EX); !ok || err != nil {
		t.Fatal("taking exclusive lock:", err)
	}
	opened := make(chan *Store)
	go func() {
		s, err := Open(root)
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	select {
	case <-opened:
		t.Fatal("Open did not wait for the exclusive lock")
	case <-time.After(50 * time.Millisecond):
	}
	f.Close()
	if s := <-opened; s != nil {
		s.Close()
	}
}

// pruneFixture builds a store with three records used at increasing times:
// old → [A], mid → [A B], new → [C], plus an unreferenced blob D, a stray
// temp dir and snapshots for every chain prefix and one orphan.
func pruneFixture(t *testing.T) (root string, snaps *fakeSnapshots) {
	root = t.TempDir()
	s := openStore(t, root)
	ctx := context.Background()
	blob := func(name string, size int) {
		b := bytes.Repeat([]byte(name), size)
		if err := s.WriteBlob(ctx, bytes.NewReader(b), digestOf(b)); err != nil {
			t.Fatal(err)
		}
	}
	blob("A", 1000)
	blob("B", 2000)
	blob("C", 4000)
	blob("D", 8000)
	lay := func(name string, size int) cache.Layer {
		return cache.Layer{Digest: digestOf(bytes.Repeat([]byte(name), size)), DiffID: digestOf([]byte("diff" + name)), Size: int64(size)}
	}
	recs := map[string][]cache.Layer{
		"old": {lay("A", 1000)},
		"mid": {lay("A", 1000), lay("B", 2000)},
		"new": {lay("C", 4000)},
	}
	snaps = &fakeSnapshots{infos: map[v1.Hash]SnapshotInfo{}}
	addSnap := func(id v1.Hash, size int64) { snaps.infos[id] = SnapshotInfo{ChainID: id, Size: size} }
	for i, name := range []string{"old", "mid", "new"} {
		r := &cache.Record{Key: cache.Key("sha256:" + keyOf(name)), Layers: recs[name], CreatedBy: name}
		if err := s.PutRecord(r); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(time.Duration(i-10) * time.Hour)
		os.Chtimes(filepath.Join(root, recordsDir, r.Key.Hex()+".json"), when, when)
		_, ids := refs(&storedRecord{layers: r.Layers})
		for _, id := range ids {
			addSnap(id, 100)
		}
	}
	addSnap(digestOf([]byte("orphan")), 100)
	d, _ := s.TempDir("x")
	os.WriteFile(filepath.Join(d, "junk"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(root, blobsDir, tmpPrefix+"123"), []byte("partial"), 0o644)
	s.Close()
	return root, snaps
}

func TestPrune(t *testing.T) {
	tests := []struct {
		name        string
		opts        PruneOptions
		wantRecords []string
		wantBlobs   []string
		wantSnaps   int
		wantReport  PruneReport
	}{
		{"unreferenced only", PruneOptions{}, []string{"mid", "new", "old"}, []string{"A", "B", "C"}, 3,
			PruneReport{Records: 0, Blobs: 1, Snapshots: 1}},
		{"all", PruneOptions{All: true}, nil, nil, 0,
			PruneReport{Records: 3, Blobs: 4, Snapshots: 4}},
		// All records: 7000 blob bytes + 300 snapshot bytes. Dropping "old"
		// frees nothing ("mid" shares A); dropping "mid" frees A, B and two
		// snapshots: 4100 left.
		{"keep 5000 LRU", PruneOptions{KeepBytes: 5000}, []string{"new"}, []string{"C"}, 1,
			PruneReport{Records: 2, Blobs: 3, Snapshots: 3}},
		{"keep everything", PruneOptions{KeepBytes: 1 << 30}, []string{"mid", "new", "old"}, []string{"A", "B", "C"}, 3,
			PruneReport{Records: 0, Blobs: 1, Snapshots: 1}},
		{"keep 1 byte", PruneOptions{KeepBytes: 1}, nil, nil, 0,
			PruneReport{Records: 3, Blobs: 4, Snapshots: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, snaps := pruneFixture(t)
			before, _ := Usage(root)
			tt.opts.Snapshots = snaps
			rep, err := Prune(context.Background(), root, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := Usage(root)
			if diff := cmp.Diff(tt.wantReport, rep, cmp.FilterPath(func(p cmp.Path) bool {
				return p.String() == "Freed" || p.String() == "Kept"
			}, cmp.Ignore())); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			// Freed is what really went (the fake snapshots' sizes are not
			// on disk, so they are not part of it).
			if got, want := rep.Freed, before-after; got != want {
				t.Errorf("Freed = %d, want %d (measured)", got, want)
			}
			var gotRecs, gotBlobs []string
			for _, name := range []string{"mid", "new", "old"} {
				if _, err := os.Stat(filepath.Join(root, recordsDir, keyOf(name)+".json")); err == nil {
					gotRecs = append(gotRecs, name)
				}
			}
			ents, _ := os.ReadDir(filepath.Join(root, blobsDir))
			for _, e := range ents {
				for _, n := range []string{"A", "B", "C", "D"} {
					if e.Name() == digestOf(bytes.Repeat([]byte(n), map[string]int{"A": 1000, "B": 2000, "C": 4000, "D": 8000}[n])).Hex {
						gotBlobs = append(gotBlobs, n)
					}
				}
				if strings.HasPrefix(e.Name(), tmpPrefix) {
					t.Errorf("temp blob %s left", e.Name())
				}
			}
			if diff := cmp.Diff(tt.wantRecords, gotRecs); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBlobs, sortStrings(gotBlobs)); diff != "" {
				t.Errorf("blobs (-want +got):\n%s", diff)
			}
			if len(snaps.infos) != tt.wantSnaps {
				t.Errorf("%d snapshots left, want %d", len(snaps.infos), tt.wantSnaps)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, tmpDir)); len(ents) != 0 {
				t.Errorf("tmp not emptied: %d entries", len(ents))
			}
			// Kept is the blobs and records left on disk (the lock file is
			// empty) plus the snapshots left.
			if want := after + int64(len(snaps.infos))*100; rep.Kept != want {
				t.Errorf("Kept = %d, want %d", rep.Kept, want)
			}
		})
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

func TestPruneMissingRoot(t *testing.T) {
	rep, err := Prune(context.Background(), filepath.Join(t.TempDir(), "nope"), PruneOptions{All: true})
	if err != nil || rep != (PruneReport{}) {
		t.Errorf("Prune(missing) = %+v, %v", rep, err)
	}
}

func TestChainID(t *testing.T) {
	// Values from the OCI image spec's chain ID example shape: sha256 of
	// "parent diffID" joined by a space.
	a, b := digestOf([]byte("a")), digestOf([]byte("b"))
	if got := ChainID(v1.Hash{}, a, true); got != a {
		t.Errorf("first chain ID = %s, want the diff ID", got)
	}
	want := digestOf([]byte(a.String() + " " + b.String()))
	if got := ChainID(a, b, false); got != want {
		t.Errorf("ChainID = %s, want %s", got, want)
	}
}

func TestStateDirIsPrivate(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
}

// TestTryLock: TryLock takes a free lock at once, reports a held one
// without waiting (Lock's holders included), and frees it on unlock.
func TestTryLock(t *testing.T) {
	s := openStore(t, t.TempDir())
	unlock, ok, err := s.TryLock("mount-x")
	if err != nil || !ok {
		t.Fatalf("TryLock of a free lock = %v, %v", ok, err)
	}
	if _, ok, err := s.TryLock("mount-x"); err != nil || ok {
		t.Fatalf("TryLock of a held lock = %v, %v; want false", ok, err)
	}
	unlock()
	u, err := s.Lock(context.Background(), "mount-x")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.TryLock("mount-x"); ok {
		t.Errorf("TryLock took a lock that Lock holds")
	}
	u()
	if u, ok, _ := s.TryLock("mount-x"); !ok {
		t.Errorf("TryLock after unlock = false")
	} else {
		u()
	}
}

// TestPruneRemovesOldChecksumCaches: any prune removes the JSON checksum
// caches of kiln before the binary format, and counts them as freed; the
// current ones stay unless --all.
func TestPruneRemovesOldChecksumCaches(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	cur := s.ContextCacheFile("/ctx/a")
	s.Close()
	old := strings.TrimSuffix(cur, filepath.Ext(cur)) + ".json"
	for _, p := range []string{cur, old} {
		if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Prune(context.Background(), root, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old JSON checksum cache after prune: %v", err)
	}
	if _, err := os.Stat(cur); err != nil {
		t.Errorf("current checksum cache after prune: %v", err)
	}
	if rep.Freed < 10 {
		t.Errorf("Freed = %d, want the old file's bytes counted", rep.Freed)
	}
}
