package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// runnerUser creates a user as a GitHub-hosted runner has one: its own
// group and home, and a sudoers entry "NAME ALL=(ALL) NOPASSWD:ALL" (sudo
// -n works, with SETENV implied by ALL). Both go when the test ends.
func runnerUser(t *testing.T, home string) (name string, uid, gid int) {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name = "kilne2e" + hex.EncodeToString(b[:])
	if out, err := exec.Command("useradd", "--home-dir", home, "--no-create-home", "--user-group", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	sudoers := filepath.Join("/etc/sudoers.d", "kiln-e2e-"+name)
	if err := os.WriteFile(sudoers, []byte(name+" ALL=(ALL) NOPASSWD:ALL\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sudoers) })
	if out, err := exec.Command("visudo", "-cf", sudoers).CombinedOutput(); err != nil {
		t.Fatalf("visudo -cf %s: %v\n%s", sudoers, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return name, uid, gid
}

// chownAll gives every path to uid:gid.
func chownAll(t *testing.T, uid, gid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// TestActionSudoReal runs the action's node script as a non-root runner
// user with a real sudo (Debian's, with its env_reset and secure_path): kiln
// runs as root through sudo -n --preserve-env=…, and gets exactly what it
// needs: the ACTIONS_* variables (an export to a kiln cache-server that
// wants the token), DOCKER_CONFIG at the runner user's ~/.docker (a push to
// a registry with htpasswd auth, credentials only there, as
// docker/login-action leaves them), GITHUB_* (the job summary, a build arg
// read from kiln's environment) and KILN_STATE by name. A marker variable
// of the step, read the same way, does not reach kiln.
func TestActionSudoReal(t *testing.T) {
	imagetest.Require(t, "root", "runc", "slirp4netns", "node", "setpriv", "sudo", "useradd", "htpasswd")
	_, base := setup(t)
	const regUser, regPassword = "ci", "sudo-e2e-Pw7"
	out, err := exec.Command("htpasswd", "-Bbn", regUser, regPassword).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	top, err := os.MkdirTemp("", "kiln-sudo-real-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(top, "htpasswd")
	writeFiles(t, top, map[string]string{"htpasswd": strings.TrimSpace(string(out)) + "\n"})
	authReg := startRegistry(t, "auth:\n  htpasswd:\n    realm: kiln\n    path: "+htpasswd+"\n")

	home := filepath.Join(top, "home")
	name, uid, gid := runnerUser(t, home)
	const token = "sudo-e2e-cache-token"
	srv := startCacheServer(t, filepath.Join(top, "entries"), "--token", token)

	// The runner user's home, with the credentials docker/login-action
	// would have written; its runner temp; the action and the kiln on PATH
	// at the action's commit.
	auth := base64.StdEncoding.EncodeToString([]byte(regUser + ":" + regPassword))
	writeFiles(t, home, map[string]string{".docker/config.json": `{"auths":{"` + authReg + `":{"auth":"` + auth + `"}}}`})
	if err := os.Chmod(filepath.Join(home, ".docker", "config.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	runnerTemp := filepath.Join(top, "runner-temp")
	writeFiles(t, runnerTemp, map[string]string{"summary.md": "", "output": ""})
	chownAll(t, uid, gid, home, filepath.Join(home, ".docker"), filepath.Join(home, ".docker", "config.json"),
		runnerTemp, filepath.Join(runnerTemp, "summary.md"), filepath.Join(runnerTemp, "output"))
	const commit = "3333333333333333333333333333333333333333"
	bin := filepath.Join(top, "bin")
	copyFile(t, filepath.Join(stampedKiln(t, commit), "kiln"), filepath.Join(bin, "kiln"))
	js := filepath.Join(top, "action")
	root := repoRoot()
	for _, f := range []string{"main.js", "lib/argv.js", "lib/commands.js", "lib/gitctx.js", "lib/inputs.js", "lib/kiln.js", "lib/run.js"} {
		copyFile(t, filepath.Join(root, "action", f), filepath.Join(js, f))
	}
	for _, d := range []string{bin, js, filepath.Join(js, "lib")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(bin, "kiln"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(top, "ctx")
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + `
ARG MARKER
ARG NPM_TOKEN
ARG GITHUB_RUN_ID
RUN echo "probe marker=[$MARKER] npm=[$NPM_TOKEN] run=[$GITHUB_RUN_ID] uid=[$(id -u)]" && echo sudo > /built-by
`})
	state := filepath.Join(top, "kiln-state")
	tag := authReg + "/app/sudo:1"

	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(uid), "--regid="+strconv.Itoa(gid), "--init-groups",
		"node", filepath.Join(js, "main.js"))
	cmd.Dir = runnerTemp
	cmd.Env = append(srv.env(2, token),
		"PATH="+bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME="+home, "USER="+name,
		"GITHUB_ACTION_REF="+commit, "GITHUB_OUTPUT="+filepath.Join(runnerTemp, "output"),
		"GITHUB_STEP_SUMMARY="+filepath.Join(runnerTemp, "summary.md"), "GITHUB_RUN_ID=4242",
		"RUNNER_TEMP="+runnerTemp, "KILN_STATE="+state,
		"MARKER=leak-marker-7f3a", "NPM_TOKEN=npm-leak-9c1d",
		"INPUT_CONTEXT="+ctxDir, "INPUT_TAGS="+tag, "INPUT_PUSH=true",
		"INPUT_BUILD-ARGS=MARKER\nNPM_TOKEN\nGITHUB_RUN_ID", "INPUT_CACHE-TO=type=gha,mode=max",
	)
	b, err := cmd.CombinedOutput()
	log := string(b)
	if err != nil {
		t.Fatalf("the action as %s (uid %d): %v\n%s", name, uid, err, log)
	}
	if !strings.Contains(log, "probe marker=[] npm=[] run=[4242] uid=[0]") {
		t.Errorf("kiln's RUN did not see GITHUB_RUN_ID only, as root (want %q):\n%s", "probe marker=[] npm=[] run=[4242] uid=[0]", log)
	}
	for _, leak := range []string{"leak-marker-7f3a", "npm-leak-9c1d"} {
		if strings.Contains(log, "["+leak+"]") {
			t.Errorf("%s reached kiln through sudo:\n%s", leak, log)
		}
	}
	// KILN_STATE reached kiln, which ran as root.
	var st syscall.Stat_t
	if err := syscall.Stat(state, &st); err != nil || st.Uid != 0 {
		t.Errorf("KILN_STATE %s: %v, owner %d; want a state dir made by root", state, err, st.Uid)
	}
	// The push used the runner user's credentials.
	digest := outputValue(t, readFile(t, filepath.Join(runnerTemp, "output")), "digest")
	req, _ := http.NewRequest(http.MethodHead, "http://"+authReg+"/v2/app/sudo/manifests/1", nil)
	req.SetBasicAuth(regUser, regPassword)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != http.StatusOK || got != digest || digest == "" {
		t.Errorf("pushed %s: %s, digest %q; the action's output digest %q", tag, resp.Status, got, digest)
	}
	// The gha export was made (the token and the URL reached kiln), and
	// the job summary written.
	summary := readFile(t, filepath.Join(runnerTemp, "summary.md"))
	if !strings.Contains(summary, "| `type=gha,mode=max` | export |") || strings.Contains(summary, "### Skipped") {
		t.Errorf("job summary does not show the gha export:\n%s", summary)
	}
	entries, _ := os.ReadDir(filepath.Join(top, "entries"))
	if len(entries) == 0 {
		t.Errorf("the cache server holds nothing after the export")
	}
}

// outputValue reads NAME<<DELIM … DELIM from a GITHUB_OUTPUT file.
func outputValue(t *testing.T, out, name string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if delim, ok := strings.CutPrefix(l, name+"<<"); ok {
			var v []string
			for _, l2 := range lines[i+1:] {
				if l2 == delim {
					return strings.Join(v, "\n")
				}
				v = append(v, l2)
			}
		}
	}
	t.Errorf("GITHUB_OUTPUT has no %s:\n%s", name, out)
	return ""
}
