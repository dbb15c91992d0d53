package ghacache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRestartKeepsEntries(t *testing.T) {
	dir := t.TempDir()
	ts := newTestServer(t, Options{Dir: dir})
	ts.v1Save(t, "v1-entry", []byte("one"))
	ts.v2Save(t, "v2-entry", []byte("two"))
	_, before := ts.v1Lookup(t, testVersion, "v1-entry")
	ts.stop()

	fi, err := os.Stat(filepath.Join(dir, secretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v; want 0600", err, fi.Mode())
	}
	ts2 := newTestServer(t, Options{Dir: dir, Token: ts.token})
	for key, want := range map[string]string{"v1-entry": "one", "v2-entry": "two"} {
		got, loc := ts2.v1Lookup(t, testVersion, key)
		if got != key || ts2.download(t, loc) != want {
			t.Errorf("after a restart, %s: matched %q", key, got)
		}
	}
	// A URL signed before the restart is still good (the key is kept in DIR).
	u := ts2.URL + before[len(ts.URL):]
	if got := ts2.download(t, u); got != "one" {
		t.Errorf("download with a URL signed before the restart: %q", got)
	}
	if _, st, _ := ts2.v1Reserve(t, "v1-entry", testVersion, 3); st != 409 {
		t.Errorf("reserve of an entry kept across the restart: %d, want 409", st)
	}
}

func TestDirLocked(t *testing.T) {
	dir := t.TempDir()
	newTestServer(t, Options{Dir: dir})
	if _, err := New(Options{Dir: dir}); !errors.Is(err, errDirLocked) {
		t.Errorf("second New on one dir: %v, want errDirLocked", err)
	}
}

// TestLoadCleansInterruptedWrites: what a kill leaves behind (scratch files,
// a blob whose metadata never landed, a reservation whose directory never
// got its meta.json, metadata whose blob is gone) is removed on start, and
// none of it is visible.
func TestLoadCleansInterruptedWrites(t *testing.T) {
	dir := t.TempDir()
	ts := newTestServer(t, Options{Dir: dir})
	ts.v1Save(t, "kept", []byte("kept"))
	ts.v1Save(t, "lost-blob", []byte("lost"))
	ts.stop()
	os.Remove(filepath.Join(dir, blobsDir, fmt.Sprint(entryID(t, dir, "lost-blob"))))
	junk := []string{
		filepath.Join(entriesDir, ".9.json.tmp123"),
		filepath.Join(blobsDir, "77"),
		filepath.Join(uploadsDir, "99", "chunks"),
		filepath.Join(tmpDir, "upload-123", "meta.json"),
	}
	for _, j := range junk {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, j)), 0o700)
		os.WriteFile(filepath.Join(dir, j), []byte("junk"), 0o600)
	}
	ts2 := newTestServer(t, Options{Dir: dir, Token: ts.token})
	for _, j := range append(junk, filepath.Join(uploadsDir, "99")) {
		if _, err := os.Stat(filepath.Join(dir, j)); err == nil {
			t.Errorf("%s survived the start", j)
		}
	}
	if got, _ := ts2.v1Lookup(t, testVersion, "lost-blob"); got != "" {
		t.Errorf("an entry whose blob is gone is visible")
	}
	if got, _ := ts2.v1Lookup(t, testVersion, "kept"); got != "kept" {
		t.Errorf("the good entry is gone")
	}
}

// entryID reads the id of key from the entries in dir.
func entryID(t *testing.T, dir, key string) int64 {
	names, _ := readDirNames(filepath.Join(dir, entriesDir))
	for _, n := range names {
		e, _, err := readEntry(filepath.Join(dir, entriesDir, n))
		if err == nil && e.Key == key {
			return e.ID
		}
	}
	t.Fatalf("no entry %s in %s", key, dir)
	return 0
}

func TestEvictLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	ts := newTestServer(t, Options{Dir: dir, MaxSize: 100, Now: clock.Now})
	data := bytes.Repeat([]byte("x"), 40)
	for _, k := range []string{"a", "b"} {
		ts.v1Save(t, k, data)
		clock.Add(time.Minute)
	}
	ts.v1Lookup(t, testVersion, "a") // a is now used more recently than b
	clock.Add(time.Minute)
	ts.v2Save(t, "c", data)
	clock.Add(time.Minute)
	present := func(ts *testServer, want map[string]bool) {
		t.Helper()
		for k, w := range want {
			got := ts.h.store.lookupNoTouch(k)
			if got != w {
				t.Errorf("entry %s present: %v, want %v", k, got, w)
			}
		}
	}
	present(ts, map[string]bool{"a": true, "b": false, "c": true})
	ts.v1Lookup(t, testVersion, "a") // a, the older entry, is now the most recently used
	clock.Add(time.Minute)
	ts.stop()

	// Uses survive a restart: c is the least recently used, though newer
	// than a.
	ts2 := newTestServer(t, Options{Dir: dir, MaxSize: 100, Now: clock.Now, Token: ts.token})
	ts2.v1Save(t, "d", data)
	clock.Add(time.Minute)
	present(ts2, map[string]bool{"a": true, "c": false, "d": true})
	if _, st, _ := ts2.v1Reserve(t, "huge", testVersion, 101); st != 400 {
		t.Errorf("reserve of more than MaxSize: %d, want 400", st)
	}
	// A smaller limit on restart evicts at once.
	ts2.stop()
	ts3 := newTestServer(t, Options{Dir: dir, MaxSize: 50, Now: clock.Now, Token: ts.token})
	present(ts3, map[string]bool{"a": false, "d": true})
}

// lookupNoTouch reports whether key exists, without counting a use.
func (s *store) lookupNoTouch(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byIdent[identOf(key, testVersion)] != nil
}

func TestConcurrentWriters(t *testing.T) {
	ts := newTestServer(t, Options{})
	const n = 8
	var wg sync.WaitGroup
	want := map[string][]byte{}
	for i := range n {
		key := fmt.Sprintf("own-%d", i)
		want[key] = randomBytes(64<<10+i, uint64(i))
	}
	// Distinct keys, each uploaded in four chunks sent at once.
	for key, data := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, st, _ := ts.v1Reserve(t, key, testVersion, int64(len(data)))
			if st != 200 {
				t.Errorf("reserve %s: %d", key, st)
				return
			}
			var cw sync.WaitGroup
			q := len(data) / 4
			for c := range 4 {
				end := min((c+1)*q, len(data))
				if c == 3 {
					end = len(data)
				}
				cw.Add(1)
				go func() {
					defer cw.Done()
					if st := ts.v1Patch(t, id, int64(c*q), data[c*q:end]); st != 204 {
						t.Errorf("patch %s chunk %d: %d", key, c, st)
					}
				}()
			}
			cw.Wait()
			if st, out := ts.v1Commit(t, id, int64(len(data))); st != 204 {
				t.Errorf("commit %s: %d %s", key, st, out)
			}
		}()
	}
	// One key, many writers: exactly one reservation wins.
	var mu sync.Mutex
	won := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, m := ts.twirp(t, "CreateCacheEntry", map[string]any{"key": "contested", "version": testVersion})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case st == 200 && m["ok"] == true:
				won++
			case st != 409:
				t.Errorf("contested CreateCacheEntry: %d %v", st, m)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d writers reserved the contested key, want 1", won)
	}
	for key, data := range want {
		got, loc := ts.v1Lookup(t, testVersion, key)
		if got != key || ts.download(t, loc) != string(data) {
			t.Errorf("%s after concurrent writes: matched %q or wrong bytes", key, got)
		}
	}
}

// TestReservationExpires: an abandoned reservation stops holding its key
// after pendingTTL, so a later save may take it.
func TestReservationExpires(t *testing.T) {
	clock := newFakeClock()
	ts := newTestServer(t, Options{Now: clock.Now})
	if _, st, _ := ts.v1Reserve(t, "abandoned", testVersion, 4); st != 200 {
		t.Fatal(st)
	}
	if _, st, _ := ts.v1Reserve(t, "abandoned", testVersion, 4); st != 409 {
		t.Errorf("reserve while another is live: %d, want 409", st)
	}
	clock.Add(pendingTTL + time.Second)
	if _, st, _ := ts.v1Reserve(t, "abandoned", testVersion, 4); st != 200 {
		t.Errorf("reserve after the first expired: %d, want 200", st)
	}
}

// TestFailedChunkLeavesNoTail: a chunk refused for carrying too many bytes
// wrote one byte past its range; the entry committed after a good resend is
// exactly its size, and so it is still there after a restart.
func TestFailedChunkLeavesNoTail(t *testing.T) {
	dir := t.TempDir()
	ts := newTestServer(t, Options{Dir: dir})
	id, _, _ := ts.v1Reserve(t, "tail", testVersion, -1)
	// Streamed, so that no Content-Length gives the excess away up front.
	req, _ := http.NewRequest("PATCH", fmt.Sprintf("%s/_apis/artifactcache/caches/%d", ts.URL, id), io.MultiReader(strings.NewReader("0123456789X")))
	req.Header.Set("Authorization", "Bearer "+ts.token)
	req.Header.Set("Content-Range", "bytes 0-9/*")
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("chunk with a byte too many: %d, want 400", resp.StatusCode)
	}
	if st := ts.v1Patch(t, id, 0, []byte("0123456789")); st != 204 {
		t.Fatalf("resend: %d", st)
	}
	if st, out := ts.v1Commit(t, id, 10); st != 204 {
		t.Fatalf("commit: %d %s", st, out)
	}
	ts.stop()
	ts2 := newTestServer(t, Options{Dir: dir, Token: ts.token})
	if got, loc := ts2.v1Lookup(t, testVersion, "tail"); got != "tail" || ts2.download(t, loc) != "0123456789" {
		t.Errorf("after a restart: matched %q", got)
	}
}
