package ghacache

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// toolkitDir holds package.json, package-lock.json and cache.mjs; `.ci/deps
// test` runs `npm ci` there.
const toolkitDir = "testdata/toolkit"

// TestActionsToolkit proves the server with the official @actions/cache
// 6.3.0 (npm), over v1 (ACTIONS_CACHE_URL) and v2 (ACTIONS_CACHE_SERVICE_V2,
// ACTIONS_RESULTS_URL): a small payload and a 140 MB one (over 128 MiB, so
// v2 takes the Put Block path) are saved and restored, a restore key
// matches by prefix, and a second save of a key is refused.
func TestActionsToolkit(t *testing.T) {
	requireE2E(t, "node and @actions/cache")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (KILN_E2E is set): %v", err)
	}
	script, _ := filepath.Abs(filepath.Join(toolkitDir, "cache.mjs"))
	if _, err := os.Stat(filepath.Join(toolkitDir, "node_modules", "@actions", "cache", "package.json")); err != nil {
		t.Fatalf("@actions/cache is not installed in %s (run `npm ci` there; .ci/deps test does): %v", toolkitDir, err)
	}
	big := filepath.Join(t.TempDir(), "big")
	writeRandomFile(t, big, 140_000_000)
	for _, api := range []string{"v1", "v2"} {
		t.Run(api, func(t *testing.T) {
			log := newRequestLog()
			ts := newTestServer(t, Options{Logger: slog.New(log), ReadToken: "read-only-test-token"})
			tk := &toolkit{t: t, node: node, script: script, env: toolkitEnv(t, ts, api)}
			src := tk.roundTrip("small-"+api+"-1", func(dir string) { writeFile(t, filepath.Join(dir, "small.txt"), randomBytes(1024, 7)) })
			if got := tk.restore(t.TempDir(), "small-"+api+"-miss", "small-"+api+"-"); got != "small-"+api+"-1" {
				t.Errorf("restore with restore key small-%s-: matched %q, want small-%s-1", api, got, api)
			}
			if id, out := tk.save(src, "small-"+api+"-1"); id != -1 || !strings.Contains(out, "Unable to reserve cache") {
				t.Errorf("second save of small-%s-1: id %d, want -1 and \"Unable to reserve cache\" in:\n%s", api, id, out)
			}
			tk.readOnly(ts, api, src, "read-only-test-token")
			tk.roundTrip("big-"+api, func(dir string) {
				if err := os.Link(big, filepath.Join(dir, "big.bin")); err != nil {
					t.Fatal(err)
				}
			})
			if api == "v2" && (log.count("PUT block") < 2 || log.count("PUT blocklist") != 1) {
				t.Errorf("the 140 MB v2 save made %d Put Block and %d Put Block List requests, want >= 2 and 1",
					log.count("PUT block"), log.count("PUT blocklist"))
			}
			if api == "v1" && log.count("PATCH") < 4 {
				t.Errorf("the v1 saves made %d PATCH requests, want the 140 MB one chunked", log.count("PATCH"))
			}
		})
	}
}

// readOnly runs the toolkit with the server's read token: it restores,
// and its save is refused as a policy denial (the job goes on: id -1).
func (tk *toolkit) readOnly(ts *testServer, api, src, token string) {
	t := tk.t
	t.Helper()
	ro := &toolkit{t: t, node: tk.node, script: tk.script}
	for _, e := range tk.env {
		if strings.HasPrefix(e, "ACTIONS_RUNTIME_TOKEN=") {
			e = "ACTIONS_RUNTIME_TOKEN=" + token
		}
		ro.env = append(ro.env, e)
	}
	if got := ro.restore(t.TempDir(), "small-"+api+"-1"); got != "small-"+api+"-1" {
		t.Errorf("restore with the read token: matched %q", got)
	}
	if id, out := ro.save(src, "ro-"+api); id != -1 || !strings.Contains(out, "cache write denied:") {
		t.Errorf("save with the read token: id %d, want -1 and \"cache write denied:\" in:\n%s", id, out)
	}
	if _, out, _ := ts.do(t, "GET", "/_apis/artifactcache/caches?key=ro-"+api, nil, nil); !strings.Contains(string(out), `"totalCount":0`) {
		t.Errorf("the read token's save made an entry: %s", out)
	}
}

func toolkitEnv(t *testing.T, ts *testServer, api string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"RUNNER_TEMP=" + t.TempDir(),
		"ACTIONS_RUNTIME_TOKEN=" + ts.token,
	}
	if api == "v2" {
		return append(env, "ACTIONS_CACHE_SERVICE_V2=true", "ACTIONS_RESULTS_URL="+ts.URL+"/")
	}
	return append(env, "ACTIONS_CACHE_URL="+ts.URL+"/")
}

type toolkit struct {
	t            *testing.T
	node, script string
	env          []string
}

// run runs cache.mjs in workspace dir and decodes its JSON line into v.
func (tk *toolkit) run(dir string, v any, args ...string) string {
	tk.t.Helper()
	cmd := exec.Command(tk.node, append([]string{tk.script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(tk.env, "GITHUB_WORKSPACE="+dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tk.t.Fatalf("node cache.mjs %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		tk.t.Fatalf("node cache.mjs %s printed no result: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func (tk *toolkit) save(dir, key string) (int64, string) {
	var r struct{ ID int64 }
	out := tk.run(dir, &r, "save", "payload", key)
	return r.ID, out
}

func (tk *toolkit) restore(dir, key string, restoreKeys ...string) string {
	var r struct{ Key *string }
	tk.run(dir, &r, append([]string{"restore", "payload", key}, restoreKeys...)...)
	if r.Key == nil {
		return ""
	}
	return *r.Key
}

// roundTrip saves payload/ as made by fill under key, restores it into
// another workspace and compares every file. It returns the saved
// workspace.
func (tk *toolkit) roundTrip(key string, fill func(dir string)) string {
	t := tk.t
	t.Helper()
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "payload"), 0o755); err != nil {
		t.Fatal(err)
	}
	fill(filepath.Join(src, "payload"))
	if id, out := tk.save(src, key); id <= 0 {
		t.Fatalf("save %s: id %d, want a new entry:\n%s", key, id, out)
	}
	dst := t.TempDir()
	if got := tk.restore(dst, key); got != key {
		t.Fatalf("restore %s: matched %q", key, got)
	}
	names, _ := os.ReadDir(filepath.Join(src, "payload"))
	for _, n := range names {
		want, got := fileSum(t, filepath.Join(src, "payload", n.Name())), fileSum(t, filepath.Join(dst, "payload", n.Name()))
		if want != got {
			t.Errorf("restored %s/%s differs from the saved one", key, n.Name())
		}
	}
	return src
}

func fileSum(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func writeFile(t *testing.T, p string, b []byte) {
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRandomFile writes n incompressible bytes, so the archive stays
// over 128 MiB.
func writeRandomFile(t *testing.T, p string, n int) {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	writeFile(t, p, b)
}
