package gha

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

// The tests in this file run the blob leg of kiln's v2 client against
// Azurite (npm azurite@3.35.0, a real Azure Blob server no one here
// wrote): Put Blob, Put Block + Put Block List, and ranged Get Blob with
// x-ms-range, through account-SAS URLs that a small in-test Twirp handler
// hands out, as GitHub's service does. `.ci/deps test` installs Azurite
// from testdata/azurite/package-lock.json.

// requireAzurite returns the azurite-blob launcher, skipping the test when
// it (or node) is missing, or failing it when KILN_E2E is set.
func requireAzurite(t *testing.T) string {
	t.Helper()
	bin, _ := filepath.Abs(filepath.Join("testdata", "azurite", "node_modules", ".bin", "azurite-blob"))
	why := ""
	if _, err := exec.LookPath("node"); err != nil {
		why = "node is not on PATH"
	} else if _, err := os.Stat(bin); err != nil {
		why = "Azurite is not installed (run .ci/deps test, or npm ci in internal/cache/gha/testdata/azurite)"
	}
	if why != "" {
		if os.Getenv("KILN_E2E") != "" {
			t.Fatalf("KILN_E2E is set but %s", why)
		}
		t.Skipf("%s (set KILN_E2E to make this a failure)", why)
	}
	return bin
}

// azurite is a running azurite-blob with one account whose key is made
// up for the test.
type azurite struct {
	endpoint string // http://127.0.0.1:PORT/<account>
	account  string
	key      []byte
}

func startAzurite(t *testing.T) *azurite {
	bin := requireAzurite(t)
	a := &azurite{account: "kilntest", key: make([]byte, 32)}
	rand.Read(a.key)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
		"--extentMemoryLimit", "256", "--disableTelemetry", "--disableProductStyleUrl")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "AZURITE_ACCOUNTS="+a.account+":"+base64.StdEncoding.EncodeToString(a.key))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting Azurite: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	listening := regexp.MustCompile(`listens on (http://127\.0\.0\.1:\d+)`)
	found := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	select {
	case base, ok := <-found:
		if !ok {
			t.Fatalf("Azurite exited before listening:\n%s", log.String())
		}
		a.endpoint = base + "/" + a.account
	case <-time.After(30 * time.Second):
		t.Fatal("Azurite did not start within 30 s")
	}
	return a
}

// sas signs an account SAS (the 2015-04-05 string-to-sign form) for blob
// containers and objects.
func (a *azurite) sas() string {
	const sv, perms, services, types, expiry = "2019-12-12", "rwlac", "b", "sco", "2099-01-01T00:00:00Z"
	toSign := strings.Join([]string{a.account, perms, services, types, "", expiry, "", "", sv, ""}, "\n")
	mac := hmac.New(sha256.New, a.key)
	mac.Write([]byte(toSign))
	q := url.Values{"sv": {sv}, "ss": {services}, "srt": {types}, "sp": {perms}, "se": {expiry},
		"sig": {base64.StdEncoding.EncodeToString(mac.Sum(nil))}}
	return q.Encode()
}

func (a *azurite) createContainer(t *testing.T, name string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, a.endpoint+"/"+name+"?restype=container&"+a.sas(), nil)
	req.Header.Set("x-ms-version", azureVersion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating container %s: %d %s", name, resp.StatusCode, body)
	}
}

// resultsService is a minimal Twirp CacheService over one Azurite
// container: entries become visible at finalize, lookups match exactly,
// then by prefix, newest first.
type resultsService struct {
	az        *azurite
	container string

	mu      sync.Mutex
	seq     int
	pending map[string]string // key -> blob name
	done    []resultsEntry
}

type resultsEntry struct{ key, blob string }

func (rs *resultsService) blobURL(name string) string {
	return rs.az.endpoint + "/" + rs.container + "/" + name + "?" + rs.az.sas()
}

func (rs *resultsService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key         string   `json:"key"`
		RestoreKeys []string `json:"restore_keys"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	answer := func(v any) { w.Header().Set("Content-Type", "application/json"); json.NewEncoder(w).Encode(v) }
	switch strings.TrimPrefix(r.URL.Path, "/twirp/github.actions.results.api.v1.CacheService/") {
	case "CreateCacheEntry":
		// Immutable, and a pending reservation counts (GitHub's way).
		_, taken := rs.pending[req.Key]
		for _, e := range rs.done {
			taken = taken || e.key == req.Key
		}
		if taken {
			w.WriteHeader(http.StatusConflict)
			answer(map[string]string{"code": "already_exists", "msg": "exists"})
			return
		}
		rs.seq++
		name := fmt.Sprintf("entry-%d", rs.seq)
		rs.pending[req.Key] = name
		answer(map[string]any{"ok": true, "signed_upload_url": rs.blobURL(name)})
	case "FinalizeCacheEntryUpload":
		name, ok := rs.pending[req.Key]
		if !ok {
			answer(map[string]any{"ok": false})
			return
		}
		delete(rs.pending, req.Key)
		rs.done = append(rs.done, resultsEntry{req.Key, name})
		answer(map[string]any{"ok": true, "entry_id": fmt.Sprint(len(rs.done))})
	case "GetCacheEntryDownloadURL":
		for _, e := range rs.done {
			if e.key == req.Key {
				answer(map[string]any{"ok": true, "signed_download_url": rs.blobURL(e.blob), "matched_key": e.key})
				return
			}
		}
		for _, p := range req.RestoreKeys {
			for i := len(rs.done) - 1; i >= 0; i-- {
				if strings.HasPrefix(rs.done[i].key, p) {
					answer(map[string]any{"ok": true, "signed_download_url": rs.blobURL(rs.done[i].blob), "matched_key": rs.done[i].key})
					return
				}
			}
		}
		answer(map[string]any{"ok": false})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (a *azurite) service(t *testing.T) (*resultsService, Config) {
	t.Helper()
	name := fmt.Sprintf("c%d", time.Now().UnixNano())
	a.createContainer(t, name)
	rs := &resultsService{az: a, container: name, pending: map[string]string{}}
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	return rs, Config{Version: 2, URL: srv.URL, Token: "runtime-token", Scope: DefaultScope, Timeout: DefaultTimeout}
}

// overwrite replaces a committed entry's blob with other bytes of the same
// length (Put Blob straight to Azurite).
func (rs *resultsService) overwrite(t *testing.T, key string) {
	t.Helper()
	rs.mu.Lock()
	var name string
	for _, e := range rs.done {
		if e.key == key {
			name = e.blob
		}
	}
	rs.mu.Unlock()
	if name == "" {
		t.Fatalf("no entry %s", key)
	}
	c := &client{http: http.DefaultClient}
	rc, err := c.open(context.Background(), entry{Key: key, URL: rs.blobURL(name)}, true, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	data[len(data)/2] ^= 0xff
	if err := c.azurePut(context.Background(), rs.blobURL(name), data, true); err != nil {
		t.Fatal(err)
	}
}

func TestAzurite(t *testing.T) {
	a := startAzurite(t)
	t.Run("blobs", func(t *testing.T) {
		_, c := a.service(t)
		// Small blobs are one Put Blob; the large one (over the
		// single-shot limit) is Put Block + Put Block List, with a last
		// block shorter than the others.
		rec := &recorder{rt: http.DefaultTransport}
		s := New(c, Options{SingleShotLimit: 64 << 10, BlockSize: 16 << 10, Transport: rec})
		for _, n := range []int{0, 1, 64 << 10, 200<<10 + 123} {
			roundTrip(t, s, randomBytes(n, int64(n)))
		}
		blocks, lists := rec.count("comp=block&"), rec.count("comp=blocklist")
		whole := rec.count("PUT ?") - blocks - lists
		if blocks != 13 || lists != 1 || whole != 3 {
			t.Errorf("%d Put Block, %d Put Block List, %d Put Blob; want 13, 1, 3", blocks, lists, whole)
		}
	})
	t.Run("ranged read", func(t *testing.T) {
		_, c := a.service(t)
		s := New(c, Options{})
		data := randomBytes(100_000, 5)
		roundTrip(t, s, data)
		e, err := s.lookupExact(context.Background(), blobKey(blobOf(data).Digest))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := s.c.open(context.Background(), e, true, 77_777, int64(len(data)))
		if err != nil {
			t.Fatalf("ranged read: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data[77_777:]) {
			t.Errorf("ranged read: %d bytes, %v", len(got), err)
		}
	})
	t.Run("conformance", func(t *testing.T) {
		cachetest.Run(t, func(t *testing.T) cachetest.Location {
			rs, c := a.service(t)
			o := Options{SingleShotLimit: 2048, BlockSize: 1024}
			return locationOf(c, o, func(t *testing.T, h v1.Hash) { rs.overwrite(t, blobKey(h)) })
		})
	})
}

// recorder is a RoundTripper that remembers "METHOD ?query" of each
// request.
type recorder struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Method+" ?"+req.URL.RawQuery)
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

func (r *recorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.reqs {
		if strings.Contains(q, s) {
			n++
		}
	}
	return n
}
