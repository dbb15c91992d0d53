package e2e

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// killDockerfile has RUN steps with a file and an env secret, one that
// sleeps 300 s in every third build (the container a kill used to leave
// running), and, with the flags killBuild gives, an OCI output and a local
// cache export, so that kills land in every phase of a build.
const killDockerfile = `FROM {{BASE}}
ARG N
COPY f.txt /f.txt
RUN --mount=type=secret,id=s --mount=type=secret,id=t,env=TOKEN sh -c 'echo step-$N; sleep 0.$((N % 5)); test -n "$TOKEN"; cat /run/secrets/s >/dev/null; head -c 300000 /dev/urandom >/big'
RUN --mount=type=secret,id=s sh -c 'if [ $((N % 3)) = 0 ]; then sleep 300; fi'
RUN echo done-$N >/done
`

// TestKillAnywhere kills kiln with SIGKILL at seeded random points of
// builds (each a cache miss) until 20 were killed. The next build must succeed, and afterwards
// no mount under the state dir, no container whose bundle is in it, no
// process running from it and no file holding a secret may remain.
func TestKillAnywhere(t *testing.T) {
	_, base := setup(t)
	const (
		kills     = 20
		seed      = 20261202
		maxDelay  = 1500 * time.Millisecond
		fileValue = "kill-file-secret-p0o9i8u7"
		envValue  = "kill-env-secret-m1n2b3v4"
	)
	rng := rand.New(rand.NewSource(seed))
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile": strings.ReplaceAll(killDockerfile, "{{BASE}}", base),
		"f.txt":      "f\n",
	})
	secretFile := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(secretFile, []byte(fileValue), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	out := t.TempDir()
	args := func(n int) []string {
		return []string{"build", "--progress", "plain", "--build-arg", "N=" + strconv.Itoa(n),
			"--secret", "id=s,src=" + secretFile, "--secret", "id=t,env=KILN_KILL_TOKEN",
			"-o", "type=oci,dest=" + filepath.Join(out, "img.tar"),
			"--cache-to", "type=local,dest=" + filepath.Join(out, "cache") + ",mode=max", ctxDir}
	}
	env := []string{"KILN_KILL_TOKEN=" + envValue}

	start := time.Now()
	finished, killed, i := 0, 0, 0
	for ; killed < kills; i++ {
		if i >= 3*kills {
			t.Fatalf("only %d kills in %d builds: they end too fast for the delays", killed, i)
		}
		cmd := exec.Command(kilnBin, args(i)...)
		cmd.Env = append(os.Environ(), append(env, "KILN_STATE="+state)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int63n(int64(maxDelay)))
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("build %d failed before its kill at %v: %v\n%s", i, delay, err, stderr.String())
			}
			finished++
		case <-time.After(delay):
			cmd.Process.Kill()
			<-exited
			killed++
		}
	}
	t.Logf("seed %d: %d kills in %d builds, %v (%d finished before their kill)", seed, killed, i, time.Since(start).Round(time.Millisecond), finished)

	last := i
	if last%3 == 0 {
		last++ // no sleep 300
	}
	r := mustKiln(t, state, env, args(last)...)
	if !strings.Contains(r.stderr, "step-"+strconv.Itoa(last)) {
		t.Errorf("the last build did not run its steps:\n%s", r.stderr)
	}
	if n := countMounts(t, state); n != 0 {
		t.Errorf("%d mounts left under the state dir; the last build said:\n%s", n, r.stderr)
	}
	if ids := containersUnder(t, state); len(ids) != 0 {
		t.Errorf("containers left with a bundle under the state dir: %v", ids)
	}
	if pids := processesUnder(t, state); len(pids) != 0 {
		t.Errorf("processes left running from the state dir: %v", pids)
	}
	if names := dirEntries(t, filepath.Join(state, "tmp")); len(names) != 0 {
		t.Errorf("scratch space left in tmp/: %v", names)
	}
	for _, p := range filesHolding(t, state, fileValue, envValue) {
		t.Errorf("a secret is left in %s", p)
	}
}

// containersUnder lists the runc containers (kiln's runtime, its default
// root) whose bundle is under dir.
func containersUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := exec.Command("runc", "list", "--format", "json").Output()
	if err != nil {
		t.Fatalf("runc list: %v", err)
	}
	var cs []struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
		Status string `json:"status"`
	}
	if len(bytes.TrimSpace(b)) > 0 && string(bytes.TrimSpace(b)) != "null" {
		if err := json.Unmarshal(b, &cs); err != nil {
			t.Fatalf("decoding runc list: %v", err)
		}
	}
	var ids []string
	for _, c := range cs {
		if strings.HasPrefix(c.Bundle, dir+"/") {
			ids = append(ids, c.ID+" ("+c.Status+")")
		}
	}
	return ids
}

// filesHolding lists the regular files under dir whose bytes contain any
// of values.
func filesHolding(t *testing.T, dir string, values ...string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				hits = append(hits, p)
				break
			}
		}
		return nil
	})
	return hits
}
