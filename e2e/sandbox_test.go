package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// netInterfaces parses /proc/net/dev as saved by a RUN step.
func netInterfaces(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	lines := strings.Split(readFile(t, path), "\n")
	for _, l := range lines[min(2, len(lines)):] {
		if name, _, ok := strings.Cut(l, ":"); ok {
			out = append(out, strings.TrimSpace(name))
		}
	}
	slices.Sort(out)
	return out
}

// TestRunNetwork: --network none and RUN --network=none leave only the
// loopback interface; RUN --network=host and --network host see the
// host's interfaces; the default is the build's own namespace, with lo
// and slirp4netns's tap0 only.
func TestRunNetwork(t *testing.T) {
	imagetest.Require(t, "netif", "slirp4netns") // netif: to tell the host's network from none
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + `
RUN cat /proc/net/dev > /default.dev
RUN --network=default cat /proc/net/dev > /explicit-default.dev
RUN --network=none cat /proc/net/dev > /none.dev
RUN --network=host cat /proc/net/dev > /host.dev
`})
	hostIfs := netInterfaces(t, "/proc/net/dev")
	lo := []string{"lo"}
	own := []string{"lo", "tap0"}

	for _, flags := range [][]string{nil, {"--network", "default"}} {
		root := filepath.Join(t.TempDir(), "rootfs")
		args := append([]string{"build", "--progress", "plain", "-o", "type=local,dest=" + root}, flags...)
		mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, append(args, ctxDir)...)
		if got := netInterfaces(t, filepath.Join(root, "none.dev")); !slices.Equal(got, lo) {
			t.Errorf("%v: RUN --network=none sees %v, want only lo", flags, got)
		}
		for _, f := range []string{"default.dev", "explicit-default.dev"} {
			if got := netInterfaces(t, filepath.Join(root, f)); !slices.Equal(got, own) {
				t.Errorf("%v: %s: RUN sees %v, want the build's own %v", flags, f, got, own)
			}
		}
		if got := netInterfaces(t, filepath.Join(root, "host.dev")); !slices.Equal(got, hostIfs) {
			t.Errorf("%v: RUN --network=host sees %v, want the host's %v", flags, got, hostIfs)
		}
	}

	// --network host is the default of every RUN without its own flag.
	root := filepath.Join(t.TempDir(), "rootfs")
	mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "--network", "host",
		"-o", "type=local,dest="+root, ctxDir)
	for _, f := range []string{"default.dev", "host.dev"} {
		if got := netInterfaces(t, filepath.Join(root, f)); !slices.Equal(got, hostIfs) {
			t.Errorf("--network host: %s sees %v, want the host's %v", f, got, hostIfs)
		}
	}

	// --network none is the default of every RUN without its own flag;
	// RUN --network=host still overrides it.
	root = filepath.Join(t.TempDir(), "rootfs")
	mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "--network", "none",
		"-o", "type=local,dest="+root, ctxDir)
	for _, f := range []string{"default.dev", "explicit-default.dev", "none.dev"} {
		if got := netInterfaces(t, filepath.Join(root, f)); !slices.Equal(got, lo) {
			t.Errorf("--network none: %s sees %v, want only lo", f, got)
		}
	}
	if got := netInterfaces(t, filepath.Join(root, "host.dev")); !slices.Equal(got, hostIfs) {
		t.Errorf("--network none with RUN --network=host sees %v, want %v", got, hostIfs)
	}
}

// grepDir returns the files under dir whose bytes contain needle.
func grepDir(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestSecrets: a file secret and an environment secret reach RUN, and
// neither value shows up in the image's layers, its config, the progress
// output, the state dir or an exported cache.
func TestSecrets(t *testing.T) {
	_, base := setup(t)
	const fileSecret = "file-secret-q7w8e9r0"
	const envSecret = "env-secret-z1x2c3v4"
	secretFile := filepath.Join(t.TempDir(), "s.txt")
	if err := os.WriteFile(secretFile, []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	// The steps write what they read, transformed (upper case, lengths),
	// so the raw values must stay out of the layers.
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + `
RUN --mount=type=secret,id=s tr a-z A-Z < /run/secrets/s > /out && ls -l /run/secrets/s | cut -c1-10 > /mode
RUN --mount=type=secret,id=t tr a-z A-Z < /run/secrets/t > /out-t
RUN --mount=type=secret,id=t,env=TOKEN echo "$TOKEN" | tr a-z A-Z > /out-env
RUN --mount=type=secret,id=s,target=/etc/app/key tr a-z A-Z < /etc/app/key > /out-target
`})
	state := filepath.Join(t.TempDir(), "state")
	out := t.TempDir()
	ociTar := filepath.Join(out, "img.tar")
	root := filepath.Join(out, "rootfs")
	cacheDir := filepath.Join(out, "cache")
	env := []string{"KILN_TEST_TOKEN=" + envSecret}
	r := mustKiln(t, state, env, "--debug", "build", "--progress", "plain",
		"--secret", "id=s,src="+secretFile, "--secret", "id=t,env=KILN_TEST_TOKEN",
		"-o", "type=oci,dest="+ociTar, "-o", "type=local,dest="+root,
		"--cache-to", "type=local,dest="+cacheDir+",mode=max", ctxDir)

	for p, want := range map[string]string{
		"out":        strings.ToUpper(fileSecret),
		"out-t":      strings.ToUpper(envSecret),
		"out-env":    strings.ToUpper(envSecret) + "\n",
		"out-target": strings.ToUpper(fileSecret),
	} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	if got := readFile(t, filepath.Join(root, "mode")); strings.Contains(got, "w") || !strings.HasPrefix(got, "-r") {
		t.Errorf("secret file mode %q, want read-only", got)
	}
	for _, p := range []string{"run/secrets/s", "run/secrets/t", "etc/app/key"} {
		assertAbsent(t, filepath.Join(root, p))
	}

	img, _ := ociImageFile(t, ociTar)
	for _, secret := range []string{fileSecret, envSecret} {
		for i, lt := range layerTars(t, img) {
			if bytes.Contains(lt, []byte(secret)) {
				t.Errorf("layer %d holds the secret %q", i, secret)
			}
		}
		if raw, _ := img.RawConfigFile(); bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the config holds the secret %q", secret)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("kiln's output holds the secret %q:\n%s", secret, r.stderr)
		}
		if hits := grepDir(t, state, []byte(secret)); len(hits) != 0 {
			t.Errorf("the state dir holds the secret %q in %v", secret, hits)
		}
		if hits := grepDir(t, cacheDir, []byte(secret)); len(hits) != 0 {
			t.Errorf("the exported cache holds the secret %q in %v", secret, hits)
		}
	}

	// A secret is not part of a key: a new value still hits the cache.
	if err := os.WriteFile(secretFile, []byte("another-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	again := mustKiln(t, state, env, "build", "--progress", "plain",
		"--secret", "id=s,src="+secretFile, "--secret", "id=t,env=KILN_TEST_TOKEN", ctxDir)
	if got := ranSteps(again.stderr); len(got) != 0 {
		t.Errorf("changing a secret's value reran steps %v", got)
	}

	// A missing secret fails the step that needs it.
	bad := kiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", ctxDir)
	if bad.code == 0 {
		t.Errorf("a build without its secrets succeeded")
	}
}

// TestCacheMount: a RUN --mount=type=cache directory survives between two
// builds with the same state dir, even when the RUN text changes, and is
// not part of the image.
func TestCacheMount(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + `
RUN --mount=type=cache,target=/c echo first-build > /c/f1 && ls /c > /seen1
`})
	mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)

	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + `
RUN --mount=type=cache,target=/c cat /c/f1 > /seen2 && echo second >> /c/f1
RUN --mount=type=cache,target=/other ls -A /other > /other.txt
`})
	root := filepath.Join(t.TempDir(), "rootfs")
	r := mustKiln(t, state, nil, "build", "--progress", "plain", "-o", "type=local,dest="+root, ctxDir)
	if len(ranSteps(r.stderr)) != 2 {
		t.Errorf("the changed RUNs did not run:\n%s", r.stderr)
	}
	if got := readFile(t, filepath.Join(root, "seen2")); got != "first-build\n" {
		t.Errorf("the second build read %q from the cache mount, want the first build's file", got)
	}
	if got := readFile(t, filepath.Join(root, "other.txt")); got != "" {
		t.Errorf("a cache mount with another target is not empty: %q", got)
	}
	assertAbsent(t, filepath.Join(root, "c", "f1"))
	if entries, err := os.ReadDir(filepath.Join(root, "c")); err == nil && len(entries) != 0 {
		t.Errorf("the cache mount's files are in the image: %v", entries)
	}

	// A fresh state dir has a fresh cache.
	root2 := filepath.Join(t.TempDir(), "rootfs")
	r = kiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "-o", "type=local,dest="+root2, ctxDir)
	if r.code == 0 {
		t.Errorf("a new state dir saw the old cache mount: /seen2 = %q", readFile(t, filepath.Join(root2, "seen2")))
	}
}

// TestRuntimeCrun: --runtime crun runs RUN steps through crun.
func TestRuntimeCrun(t *testing.T) {
	_, base := setup(t)
	imagetest.Require(t, "crun")
	real, err := exec.LookPath("crun")
	if err != nil {
		t.Fatal(err)
	}
	// A wrapper named crun first on PATH records each call, then runs the
	// real one.
	binDir := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "calls")
	wrapper := "#!/bin/sh\necho \"$@\" >> " + logFile + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(binDir, "crun"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo via-crun > /x && id -u > /uid\nUSER app\nRUN id -u > /tmp/uid\n"})
	root := filepath.Join(t.TempDir(), "rootfs")
	env := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}
	mustKiln(t, filepath.Join(t.TempDir(), "state"), env, "build", "--progress", "plain", "--runtime", "crun",
		"-o", "type=local,dest="+root, ctxDir)
	if got := readFile(t, filepath.Join(root, "x")); got != "via-crun\n" {
		t.Errorf("/x = %q", got)
	}
	if got := readFile(t, filepath.Join(root, "tmp/uid")); got != "1000\n" {
		t.Errorf("USER app under crun: uid %q, want 1000", got)
	}
	calls := readFile(t, logFile)
	if strings.Count(calls, "run ") < 2 {
		t.Errorf("crun was not used for both RUN steps; calls:\n%s", calls)
	}

	// An unknown runtime is a clear failure, not a silent fall back to runc.
	r := kiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "--runtime", "no-such-runtime", ctxDir)
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-runtime") {
		t.Errorf("--runtime no-such-runtime: exit %d\n%s", r.code, r.stderr)
	}
}

// TestRunSandbox: a RUN of a real build runs under Docker's default
// seccomp profile (filter mode, no new user namespace), with runc and
// crun.
func TestRunSandbox(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + `
RUN grep '^Seccomp:' /proc/self/status > /seccomp && (unshare -U true 2>/dev/null && echo allowed || echo denied) > /unshare
`})
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			imagetest.Require(t, rt, "slirp4netns")
			root := filepath.Join(t.TempDir(), "rootfs")
			mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "--runtime", rt,
				"-o", "type=local,dest="+root, ctxDir)
			if got := readFile(t, filepath.Join(root, "seccomp")); got != "Seccomp:\t2\n" {
				t.Errorf("/proc/self/status says %q, want seccomp mode 2", got)
			}
			if got := readFile(t, filepath.Join(root, "unshare")); got != "denied\n" {
				t.Errorf("unshare -U in RUN: %q, want denied", got)
			}
		})
	}
}

// TestRunCgroupReadOnly: in a RUN step of a real build, with runc and
// crun, /sys/fs/cgroup holds the step's cgroups read-only, as Docker's
// default: no write there succeeds, neither moving a process nor making a
// cgroup.
func TestRunCgroupReadOnly(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"probe.sh": imagetest.CgroupProbe,
		// On cgroup v1 the tmpfs holding the hierarchies is writable, as in
		// Docker: what a step leaves there must not reach its layer.
		"Dockerfile": "FROM " + base + "\nCOPY probe.sh /probe.sh\nRUN sh /probe.sh > /cgroup-probe; touch /sys/fs/cgroup/left-here 2>/dev/null; true\n",
	})
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			imagetest.Require(t, rt, "slirp4netns")
			root := filepath.Join(t.TempDir(), "rootfs")
			mustKiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", "--runtime", rt,
				"-o", "type=local,dest="+root, ctxDir)
			out := strings.TrimSpace(readFile(t, filepath.Join(root, "cgroup-probe")))
			lines := strings.Split(out, "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "cgroupfs ") || last == "cgroupfs 0" {
				t.Errorf("no cgroup filesystem at /sys/fs/cgroup in RUN: %q", out)
			}
			if len(lines) > 1 {
				t.Errorf("/sys/fs/cgroup is writable in RUN:\n%s", out)
			}
			if _, err := os.Lstat(filepath.Join(root, "sys")); err == nil {
				t.Errorf("the RUN's layer holds /sys (a file written under /sys/fs/cgroup reached it?)")
			}
			t.Logf("%s: %s", rt, last)
		})
	}
}
