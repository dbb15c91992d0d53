package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// repoRoot is the kiln source tree this test file is in.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// run runs a command and fails the test unless it exits 0.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// copyFile copies src to dst, making dst's directory.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// actionRepo is a Git repository holding the kiln action (action.yml and
// its JavaScript), a small app to build and the example workflows,
// rewritten for the test: `uses: ./` for the action (after act's own
// actions/checkout handling), the test registry for user/app, and for the
// local-cache workflow a fixed runner temp directory (GitHub's runners
// have one; act's differs per run, and actions/cache keys on the path).
type actionRepo struct {
	dir     string // the working tree act runs in
	server  string // file:// GITHUB_SERVER_URL holding owner/app.git (the Git context)
	head    string
	tempDir string // the fixed runner temp of the local workflow
}

const actionAppDockerfile = `FROM {{BASE}}
RUN echo built > /built.txt
COPY hello.txt /hello.txt
`

func newActionRepo(t *testing.T, reg, base string) actionRepo {
	t.Helper()
	root := repoRoot()
	top := t.TempDir()
	r := actionRepo{dir: filepath.Join(top, "app"), server: filepath.Join(top, "srv"), tempDir: filepath.Join(top, "runner-temp")}
	copyFile(t, filepath.Join(root, "action.yml"), filepath.Join(r.dir, "action.yml"))
	js, err := filepath.Glob(filepath.Join(root, "action", "*.js"))
	if err != nil {
		t.Fatal(err)
	}
	lib, _ := filepath.Glob(filepath.Join(root, "action", "lib", "*.js"))
	for _, f := range append(js, lib...) {
		rel, _ := filepath.Rel(root, f)
		copyFile(t, f, filepath.Join(r.dir, rel))
	}
	writeFiles(t, r.dir, map[string]string{
		"Dockerfile": strings.ReplaceAll(actionAppDockerfile, "{{BASE}}", base),
		"hello.txt":  "hello\n",
	})
	wfs, _ := filepath.Glob(filepath.Join(root, "examples", "workflows", "*.yml"))
	if len(wfs) != 4 {
		t.Fatalf("examples/workflows has %d workflows, want 4", len(wfs))
	}
	for _, f := range wfs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yml")
		s := string(b)
		for _, rw := range [][2]string{
			{"uses: kiln-build/kiln@main", "uses: ./"},
			{"    steps:\n", "    steps:\n      - uses: actions/checkout@v4\n"},
			{"user/app", reg + "/" + name + "/app"},
			{"${{ runner.temp }}", r.tempDir},
		} {
			if !strings.Contains(s, rw[0]) && rw[0] != "${{ runner.temp }}" {
				t.Fatalf("%s: %q not found to rewrite", f, rw[0])
			}
			s = strings.ReplaceAll(s, rw[0], rw[1])
		}
		writeFiles(t, filepath.Join(r.dir, ".github", "workflows"), map[string]string{name + ".yml": s})
	}
	gitEnv := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}
	run(t, r.dir, gitEnv, "git", "init", "-q")
	run(t, r.dir, gitEnv, "git", "add", ".")
	run(t, r.dir, gitEnv, "git", "commit", "-qm", "app")
	r.head = strings.TrimSpace(run(t, r.dir, nil, "git", "rev-parse", "HEAD"))
	run(t, top, nil, "git", "clone", "-q", "--bare", r.dir, filepath.Join(r.server, "owner", "app.git"))
	return r
}

// stampedKiln builds kiln with the commit the action will ask for (the
// action repo's HEAD): the kiln on PATH that the action takes as its own.
func stampedKiln(t *testing.T, commit string) string {
	t.Helper()
	dir := t.TempDir()
	run(t, repoRoot(), []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(dir, "kiln"),
		"-ldflags", "-X github.com/kiln-build/kiln/internal/cli.Commit="+commit, "./cmd/kiln")
	return dir
}

// standIns prepares the actions act cannot fetch here: actions/cache
// (restore and save through the @actions/cache npm package, which .ci/deps
// installs for the cache server's tests: no test reaches a registry) and
// docker/login-action (a no-op: the test
// registry needs no login). It returns act's --local-repository flags.
func standIns(t *testing.T, server string) []string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(repoRoot(), "e2e", "testdata", "actions")
	for _, f := range []string{"cache/action.yml", "cache/package.json", "cache/restore.mjs", "cache/save.mjs", "login/action.yml", "login/main.js"} {
		copyFile(t, filepath.Join(src, f), filepath.Join(dir, f))
	}
	modules := filepath.Join(repoRoot(), "internal", "ghacache", "testdata", "toolkit", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "@actions", "cache")); err != nil {
		t.Fatalf("@actions/cache is not installed (run .ci/deps test): %v", err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "cache", "node_modules")); err != nil {
		t.Fatal(err)
	}
	// act looks actions up under GITHUB_SERVER_URL, which the test points
	// at the Git context's server.
	var flags []string
	for _, a := range [][2]string{{"actions/cache@v4", "cache"}, {"docker/login-action@v3", "login"}} {
		flags = append(flags, "--local-repository", a[0]+"="+filepath.Join(dir, a[1]),
			"--local-repository", "file://"+server+"/"+a[0]+"="+filepath.Join(dir, a[1]))
	}
	return flags
}

// actRun is one workflow run on a fresh runner: its own HOME (act's
// workspace, tool cache and runner temp), its own kiln state dir; the
// cache service (act's, v1) and the registry are shared, as on GitHub.
func actRun(t *testing.T, r actionRepo, workflow, kilnDir, cacheSrv, artifacts string, extra []string) string {
	t.Helper()
	home := t.TempDir()
	state := t.TempDir()
	args := []string{"push", "-W", filepath.Join(".github", "workflows", workflow+".yml"),
		"-P", "ubuntu-latest=-self-hosted",
		"--cache-server-addr", "127.0.0.1", "--cache-server-path", cacheSrv,
		// With an artifact server act hands actions ACTIONS_RUNTIME_TOKEN,
		// as GitHub does.
		"--artifact-server-addr", "127.0.0.1", "--artifact-server-path", artifacts,
		"--env", "GITHUB_SERVER_URL=file://" + r.server, "--env", "GITHUB_REPOSITORY=owner/app",
		"--env", "KILN_STATE=" + state,
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "act", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "HOME="+home, "PATH="+kilnDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("act %s: %v\n%s", workflow, err, out.String())
	}
	t.Logf("act %s: the workflow took %.2fs", workflow, time.Since(start).Seconds())
	if os.Getenv("KILN_ACT_LOG") != "" {
		t.Logf("%s", out.String())
	}
	return out.String()
}

var (
	pushedRe  = regexp.MustCompile(`pushed (\S+)@(sha256:[0-9a-f]{64})`)
	imageIDRe = regexp.MustCompile(`image id (sha256:[0-9a-f]{64})`)
	summaryRe = regexp.MustCompile(`Summary: (\d+) steps, (\d+) cached, (\d+) ran`)
)

// runResult is what a workflow run showed: the digest and image ID the
// action output, and how many steps kiln ran.
type runResult struct {
	name, digest, imageID string
	ran                   int
}

func parseRun(t *testing.T, out string) runResult {
	t.Helper()
	p := pushedRe.FindStringSubmatch(out)
	id := imageIDRe.FindStringSubmatch(out)
	s := summaryRe.FindStringSubmatch(out)
	if p == nil || id == nil || s == nil {
		t.Fatalf("act output lacks the digest, image id or kiln's summary:\n%s", out)
	}
	ran, _ := strconv.Atoi(s[3])
	return runResult{name: p[1], digest: p[2], imageID: id[1], ran: ran}
}

// ghaSupported says whether this kiln has type=gha (the lead merges it in
// parallel): without it the gha workflow cannot run.
func ghaSupported(t *testing.T) bool {
	t.Helper()
	cmd := exec.Command(kilnBin, "build", "--cache-to", "type=gha", t.TempDir())
	cmd.Env = append(os.Environ(), "ACTIONS_RUNTIME_TOKEN=probe", "ACTIONS_CACHE_URL=http://127.0.0.1:1/", "KILN_STATE="+t.TempDir())
	out, _ := cmd.CombinedOutput()
	return !strings.Contains(string(out), "not supported yet")
}

// TestActionWorkflows runs each example workflow with act twice, as two
// fresh runners: the first builds and pushes, the second gets every step
// from the workflow's cache (inline, registry, act's GitHub Actions cache
// server, a local directory through actions/cache), runs no RUN step and
// pushes the same digest. The build context is the Git context at
// GITHUB_SHA, fetched from a local bare repository.
func TestActionWorkflows(t *testing.T) {
	imagetest.Require(t, "root", "runc", "act", "node", "npm", "git")
	reg, base := setup(t)
	r := newActionRepo(t, reg, base)
	kilnDir := stampedKiln(t, r.head)
	local := standIns(t, r.server)
	for _, wf := range []string{"inline", "registry", "gha", "local"} {
		t.Run(wf, func(t *testing.T) {
			if wf == "gha" && !ghaSupported(t) {
				t.Skip("this kiln has no type=gha yet")
			}
			cacheSrv, artifacts := t.TempDir(), t.TempDir()
			os.RemoveAll(r.tempDir)
			out1 := actRun(t, r, wf, kilnDir, cacheSrv, artifacts, local)
			first := parseRun(t, out1)
			if first.ran == 0 {
				t.Fatalf("first run ran no step:\n%s", out1)
			}
			if !strings.Contains(out1, "fetching the Git context file://"+r.server+"/owner/app.git#"+r.head) {
				t.Errorf("first run did not build the Git context at GITHUB_SHA:\n%s", out1)
			}
			if strings.Contains(out1, "::warning::") || strings.Contains(out1, "go build") {
				t.Errorf("first run warned or built kiln (the stamped kiln on PATH is the action's):\n%s", out1)
			}
			// A fresh runner: nothing of the first run's machine is left
			// (for the local workflow, actions/cache brings the directory
			// back).
			os.RemoveAll(r.tempDir)
			out2 := actRun(t, r, wf, kilnDir, cacheSrv, artifacts, local)
			second := parseRun(t, out2)
			t.Logf("first run: %+v; second run: %+v", first, second)
			if second.ran != 0 {
				t.Errorf("second run ran %d steps, want 0:\n%s", second.ran, out2)
			}
			if second.digest != first.digest || second.imageID != first.imageID {
				t.Errorf("second run pushed %s (image %s), first %s (image %s)", second.digest, second.imageID, first.digest, first.imageID)
			}
			if wf == "local" && !strings.Contains(out2, "restored "+r.tempDir+"/.buildx-cache") {
				t.Errorf("second run did not restore the local cache through actions/cache:\n%s", out2)
			}
			img := imagetest.Pull(t, first.name+":latest")
			dig, _ := img.Digest()
			cfg, _ := img.ConfigName()
			if dig.String() != second.digest || cfg.String() != second.imageID {
				t.Errorf("registry has %s (config %s), the action output %s (image id %s)", dig, cfg, second.digest, second.imageID)
			}
		})
	}
}

// TestActionOutputsAndFailure runs the action's main.js directly (no act)
// on a context directory: the outputs in GITHUB_OUTPUT carry buildx's
// metadata keys, each unsupported input warns once, and a failing build
// fails the step with kiln's own last line.
func TestActionOutputsAndFailure(t *testing.T) {
	imagetest.Require(t, "root", "runc", "node", "git")
	_, base := setup(t)
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "ctx"), map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY a.txt /a.txt\n",
		"a.txt":      "a\n",
		"Bad":        "FROM " + base + "\nFROB x\n",
		"Fail":       "FROM " + base + "\nCOPY a.txt /a.txt\nRUN echo boom-output >&2; exit 3\n",
	})
	kilnDir := stampedKiln(t, "0000000000000000000000000000000000000000")
	outFile := filepath.Join(dir, "output")
	env := func(extra ...string) []string {
		return append([]string{
			"PATH=" + kilnDir + string(os.PathListSeparator) + os.Getenv("PATH"),
			"GITHUB_ACTION_REF=0000000000000000000000000000000000000000",
			"GITHUB_OUTPUT=" + outFile, "RUNNER_TEMP=" + dir, "KILN_STATE=" + filepath.Join(dir, "state"),
			"INPUT_CONTEXT=" + filepath.Join(dir, "ctx"), "INPUT_SHM-SIZE=2g", "INPUT_CGROUP-PARENT=/ci", "INPUT_BUILDER=b1",
			"INPUT_ANNOTATIONS=manifest:org.example.a=1\nindex:org.example.b=2",
		}, extra...)
	}
	cmd := exec.Command("node", filepath.Join(repoRoot(), "action", "main.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("action: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "::warning::"); n != 2 ||
		!strings.Contains(string(out), "::warning::cgroup-parent: ") || !strings.Contains(string(out), "::warning::annotations: ") {
		t.Errorf("want one warning each for cgroup-parent and annotations (none for shm-size, which works), got %d:\n%s", n, out)
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"imageid<<ghadelimiter_", "digest<<ghadelimiter_", "metadata<<ghadelimiter_",
		`"containerimage.digest": "sha256:`, `"containerimage.config.digest": "sha256:`, `"containerimage.descriptor": {`,
		`"mediaType": "application/vnd.oci.image.manifest.v1+json"`} {
		if !strings.Contains(got, want) {
			t.Errorf("GITHUB_OUTPUT lacks %q:\n%s", want, got)
		}
	}

	cmd = exec.Command("node", filepath.Join(repoRoot(), "action", "main.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env("INPUT_FILE="+filepath.Join(dir, "ctx", "Bad"))...)
	out, err = cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a bad Dockerfile did not fail the step:\n%s", out)
	}
	want := fmt.Sprintf("::error::kiln failed with: kiln: %s:2: unknown instruction: FROB", "Bad")
	if !strings.Contains(string(out), want) {
		t.Errorf("failure does not end with kiln's own line %q:\n%s", want, out)
	}

	// A RUN that fails: the step fails with kiln's message line (not the
	// RUN's output quoted after it), and the job summary says the same.
	summary := filepath.Join(dir, "summary.md")
	cmd = exec.Command("node", filepath.Join(repoRoot(), "action", "main.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env("INPUT_FILE="+filepath.Join(dir, "ctx", "Fail"), "GITHUB_STEP_SUMMARY="+summary)...)
	out, err = cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a failing RUN did not fail the step:\n%s", out)
	}
	line := "kiln: Fail:3: RUN echo boom-output >&2; exit 3: exit code 3"
	if !strings.Contains(string(out), "::error::kiln failed with: "+line+"\n") {
		t.Errorf("failure does not end with kiln's line %q:\n%s", line, out)
	}
	md := readFile(t, summary)
	for _, want := range []string{"| Result | **failed** at step #2 |", "\n" + line + "\n", "\nboom-output\n", "| Steps cached | 1 of 2 (50%) |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the job summary of the failed build lacks %q:\n%s", want, md)
		}
	}
}

// TestActionBuildsKiln: with no kiln on PATH the action builds one from
// its own source with Go (CGO off) into RUNNER_TOOL_CACHE, stamped with its
// commit, and the next run finds it there.
func TestActionBuildsKiln(t *testing.T) {
	imagetest.Require(t, "root", "node", "go", "git")
	goBin, _ := exec.LookPath("go")
	toolCache := t.TempDir()
	script := `const k = require(process.argv[1]);
const r = k.locate({ actionDir: process.argv[2], env: process.env, log: (s) => console.error(s) });
console.log(JSON.stringify(r));`
	locate := func() (from, bin, commit string) {
		cmd := exec.Command("node", "-e", script, filepath.Join(repoRoot(), "action", "lib", "kiln.js"), repoRoot())
		// PATH has Go and the basics, and no kiln.
		cmd.Env = append(os.Environ(), "RUNNER_TOOL_CACHE="+toolCache, "PATH="+filepath.Dir(goBin)+":/usr/bin:/bin", "GITHUB_ACTION_REF=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("locate: %v\n%s", err, stderr.String())
		}
		var r struct {
			From, Bin string
			Want      struct{ Commit string }
		}
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("locate printed %q: %v", stdout.String(), err)
		}
		return r.From, r.Bin, r.Want.Commit
	}
	from, bin, commit := locate()
	if from != "built" || !strings.HasPrefix(bin, toolCache+"/kiln/"+commit+"/") {
		t.Fatalf("first locate: %s %s (commit %s), want built into %s/kiln/%s", from, bin, commit, toolCache, commit)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "(commit "+commit+")") {
		t.Errorf("built kiln version: %q (%v), want commit %s", out, err, commit)
	}
	if f, err := elfInterp(bin); err != nil || f != "" {
		t.Errorf("built kiln is not static (CGO off): interpreter %q, %v", f, err)
	}
	if from, bin2, _ := locate(); from != "tool-cache" || bin2 != bin {
		t.Errorf("second locate: %s %s, want the tool cache's %s", from, bin2, bin)
	}
}

// elfInterp returns the ELF interpreter of the binary at p ("" for a
// static binary).
func elfInterp(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return "", err
			}
			return strings.TrimRight(string(b), "\x00"), nil
		}
	}
	return "", nil
}

// TestActionSudo runs the action as an unprivileged user, with a sudo on
// PATH that records what it was given: kiln is started through sudo -n
// keeping only the variables kiln needs, and no secret value or unrelated
// variable reaches it.
func TestActionSudo(t *testing.T) {
	imagetest.Require(t, "root", "node", "setpriv")
	dir, err := os.MkdirTemp("", "kiln-sudo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	commit := "2222222222222222222222222222222222222222"
	bin := filepath.Join(dir, "bin")
	writeFiles(t, bin, map[string]string{
		"kiln": "#!/bin/sh\necho 'kiln dev (commit " + commit + ")'\n",
		// The fake sudo records its arguments and environment, then
		// writes the metadata file kiln would.
		"sudo": `#!/bin/sh
printf '%s\n' "$@" > "` + dir + `/sudo-args"
env > "` + dir + `/sudo-env"
while [ $# -gt 0 ]; do
  if [ "$1" = --metadata-file ]; then echo '{"containerimage.digest":"sha256:aa","containerimage.config.digest":"sha256:bb"}' > "$2"; fi
  shift
done
`,
	})
	for _, f := range []string{"kiln", "sudo"} {
		if err := os.Chmod(filepath.Join(bin, f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, filepath.Join(dir, "ctx"), map[string]string{"Dockerfile": "FROM scratch\n"})
	js := filepath.Join(dir, "action")
	root := repoRoot()
	for _, f := range []string{"main.js", "lib/argv.js", "lib/commands.js", "lib/gitctx.js", "lib/inputs.js", "lib/kiln.js", "lib/run.js"} {
		copyFile(t, filepath.Join(root, "action", f), filepath.Join(js, f))
	}
	if err := os.Chmod(js, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "output")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "node", filepath.Join(js, "main.js"))
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin", "HOME=" + dir,
		"GITHUB_ACTION_REF=" + commit, "GITHUB_OUTPUT=" + out, "RUNNER_TEMP=" + dir,
		"GITHUB_STEP_SUMMARY=" + filepath.Join(dir, "summary"), "DOCKER_BUILD_SUMMARY=false",
		"ACTIONS_RUNTIME_TOKEN=runtime-token", "ACTIONS_CACHE_URL=http://127.0.0.1:1/", "ACTIONS_CACHE_MODE=read",
		"NPM_TOKEN=unrelated", "MY_SECRET=env-secret-value",
		"INPUT_CONTEXT=" + filepath.Join(dir, "ctx"),
		"INPUT_SECRETS=TOKEN=input-secret-value", "INPUT_SECRET-ENVS=ENVSEC=MY_SECRET",
	}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("action as uid 65534: %v\n%s", err, b)
	}
	args := readFile(t, filepath.Join(dir, "sudo-args"))
	if !strings.HasPrefix(args, "-n\n--preserve-env=ACTIONS_CACHE_MODE,ACTIONS_CACHE_URL,ACTIONS_RUNTIME_TOKEN,DOCKER_BUILD_SUMMARY,DOCKER_CONFIG,GITHUB_ACTION_REF,GITHUB_OUTPUT,GITHUB_STEP_SUMMARY\n--\n"+filepath.Join(bin, "kiln")+"\nbuild\n") {
		t.Errorf("sudo arguments:\n%s", args)
	}
	envs := readFile(t, filepath.Join(dir, "sudo-env"))
	for _, want := range []string{"ACTIONS_RUNTIME_TOKEN=runtime-token", "DOCKER_CONFIG=" + filepath.Join(dir, ".docker"), "GITHUB_STEP_SUMMARY="} {
		if !strings.Contains(envs, want) {
			t.Errorf("sudo's environment lacks %s:\n%s", want, envs)
		}
	}
	for _, bad := range []string{"NPM_TOKEN", "MY_SECRET", "INPUT_", "HOME=", "RUNNER_TEMP"} {
		if strings.Contains(envs, bad) {
			t.Errorf("sudo's environment has %s:\n%s", bad, envs)
		}
	}
	for _, bad := range []string{"input-secret-value", "env-secret-value", "runtime-token"} {
		if strings.Contains(args, bad) {
			t.Errorf("a secret value is on sudo's command line: %s", bad)
		}
	}
	if got := readFile(t, out); !strings.Contains(got, "digest<<") || !strings.Contains(got, "sha256:aa") {
		t.Errorf("outputs after the sudo run: %s", got)
	}
}
