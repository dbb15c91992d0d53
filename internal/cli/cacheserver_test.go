package cli

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	actionscache "github.com/tonistiigi/go-actions-cache"

	"github.com/kiln-build/kiln/internal/imagetest"
)

func TestCacheServerUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"cache-server", "--dir", dir}, "--listen ADDR is required"},
		{[]string{"cache-server", "--listen", "127.0.0.1:0"}, "--dir DIR is required"},
		{[]string{"cache-server", "--listen", "0.0.0.0:8080", "--dir", dir}, "is not a loopback address"},
		{[]string{"cache-server", "--listen", ":8080", "--dir", dir}, "is not a loopback address"},
		{[]string{"cache-server", "--listen", "nocolon", "--dir", dir}, "want HOST:PORT"},
		{[]string{"cache-server", "--listen", "127.0.0.1:0", "--dir", dir, "--max-size", "huge"}, "--max-size"},
		{[]string{"cache-server", "--listen", "127.0.0.1:0", "--dir", dir, "--token", "t", "--read-token", "t"}, "must differ"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := run(t, nil, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

// startCacheServer runs `kiln cache-server` until the returned stop is
// called, and returns what it printed once it printed the environment.
func startCacheServer(t *testing.T, args ...string) (printed func() string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr imagetest.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, Env{Args: append([]string{"cache-server"}, args...), Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" }})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "ACTIONS_RUNTIME_TOKEN=") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("cache-server printed no environment: %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return stderr.String, func() int { cancel(); return <-code }
}

func envValue(t *testing.T, printed, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + name + `=(\S+)`).FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("%s not printed in %q", name, printed)
	}
	return m[1]
}

// TestCacheServerPrintsEnv: the printed environment is what a runner needs
// (go-actions-cache, BuildKit's client, saves and loads with exactly it,
// the placeholder token included), the chosen token is never printed, and
// cancelling (SIGINT, SIGTERM) stops the server with exit 0.
func TestCacheServerPrintsEnv(t *testing.T) {
	printed, stop := startCacheServer(t, "--listen", "127.0.0.1:0", "--dir", filepath.Join(t.TempDir(), "cache"))
	out := printed()
	base := envValue(t, out, "ACTIONS_CACHE_URL")
	if envValue(t, out, "ACTIONS_RESULTS_URL") != base || envValue(t, out, "ACTIONS_CACHE_SERVICE_V2") != "true" {
		t.Errorf("printed environment:\n%s", out)
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*/$`).MatchString(base) {
		t.Errorf("ACTIONS_CACHE_URL=%s, want http://127.0.0.1:PORT/", base)
	}
	token := envValue(t, out, "ACTIONS_RUNTIME_TOKEN")
	for _, v2 := range []bool{false, true} {
		c, err := actionscache.New(token, base, v2, actionscache.Opt{Timeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("go-actions-cache refuses the printed token: %v", err)
		}
		ctx := context.Background()
		key := map[bool]string{false: "v1-key", true: "v2-key"}[v2]
		if err := c.Save(ctx, key, actionscache.NewBlob([]byte("hello"))); err != nil {
			t.Fatalf("Save (v2 %v): %v", v2, err)
		}
		if ce, err := c.Load(ctx, key); err != nil || ce == nil || ce.Key != key {
			t.Errorf("Load (v2 %v): %v %v", v2, ce, err)
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d after cancel, want 0", code)
	}
	if _, err := http.Get(base); err == nil {
		t.Errorf("the server still answers after it stopped")
	}
}

func TestCacheServerHidesToken(t *testing.T) {
	const secret = "s3cret-token-value"
	printed, stop := startCacheServer(t, "--listen", "127.0.0.1:0", "--dir", t.TempDir(), "--token", secret, "--read-token", "r3ad-only-value")
	defer stop()
	out := printed()
	if strings.Contains(out, secret) || strings.Contains(out, "r3ad-only-value") {
		t.Errorf("a token was printed:\n%s", out)
	}
	if envValue(t, out, "ACTIONS_RUNTIME_TOKEN") != "<your" {
		t.Errorf("want ACTIONS_RUNTIME_TOKEN=<your --token>, got:\n%s", out)
	}
	req, _ := http.NewRequest("GET", envValue(t, out, "ACTIONS_CACHE_URL")+"_apis/artifactcache/cache?keys=k&version=v", nil)
	for tok, want := range map[string]int{"": 401, secret: 204, "r3ad-only-value": 204} {
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("lookup with token %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}
}
