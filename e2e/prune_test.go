package e2e

import (
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

// dirEntries lists the names in dir (none when it is missing).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

var pruneLine = regexp.MustCompile(`^removed (\d+) records, (\d+) blobs, (\d+) snapshots; freed (.+), kept (.+)\n$`)

// TestPrune: prune --all empties the state dir, so the next build runs
// every step; --keep-storage trims the store to the size given.
func TestPrune(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	state := filepath.Join(t.TempDir(), "state")
	// A local output makes the build read (and so store) every layer.
	out := filepath.Join(t.TempDir(), "rootfs")
	mustKiln(t, state, nil, "build", "--progress", "plain", "-o", "type=local,dest="+out, ctxDir)
	stores := []string{"records", "blobs/sha256", "sn/sn"}
	for _, d := range stores {
		if len(dirEntries(t, filepath.Join(state, d))) == 0 {
			t.Fatalf("after a build %s is empty: the test cannot tell a prune happened", d)
		}
	}
	// The copying snapshotter's own directory is pruned too.
	mustKiln(t, state, nil, "build", "--progress", "plain", "--copy-snapshots", "--no-cache", ctxDir)
	if len(dirEntries(t, filepath.Join(state, "sn/sc"))) == 0 {
		t.Fatalf("after a --copy-snapshots build sn/sc is empty")
	}
	stores = append(stores, "sn/sc")

	r := mustKiln(t, state, nil, "prune", "--all")
	m := pruneLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("prune --all printed %q", r.stdout)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("prune --all removed no records: %s", r.stdout)
	}
	if m[5] != "0 B" && m[5] != "0B" {
		t.Errorf("prune --all kept %s, want 0", m[5])
	}
	for _, d := range stores {
		if names := dirEntries(t, filepath.Join(state, d)); len(names) != 0 {
			t.Errorf("after prune --all %s holds %v", d, names)
		}
	}
	again := mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	if got := len(ranSteps(again.stderr)); got != 5 {
		t.Errorf("after prune --all the build ran %d steps, want all 5\n%s", got, again.stderr)
	}

	// --keep-storage: the store ends at most that size.
	mustKiln(t, state, nil, "build", "--progress", "plain", "-o", "type=local,dest="+out, ctxDir)
	r = mustKiln(t, state, nil, "prune", "--keep-storage", "1KB")
	m = pruneLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("prune --keep-storage printed %q", r.stdout)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("prune --keep-storage 1KB removed no records: %s", r.stdout)
	}
	var size int64
	for _, d := range stores {
		size += dirSize(t, filepath.Join(state, d))
	}
	if size > 1024 {
		t.Errorf("after prune --keep-storage 1KB the store holds %d bytes (%s)", size, r.stdout)
	}
	third := mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	if len(ranSteps(third.stderr)) == 0 {
		t.Errorf("after prune --keep-storage 1KB nothing ran: the records were not removed")
	}

	// A generous limit removes nothing.
	r = mustKiln(t, state, nil, "prune", "--keep-storage", "10GB")
	if m = pruneLine.FindStringSubmatch(r.stdout); m == nil || m[1] != "0" {
		t.Errorf("prune --keep-storage 10GB: %q, want 0 records removed", r.stdout)
	}
	fourth := mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	if got := ranSteps(fourth.stderr); len(got) != 0 {
		t.Errorf("after a prune within the limit the build ran %v", got)
	}

	// Bad input.
	for _, args := range [][]string{{"prune"}, {"prune", "--keep-storage", "lots"}} {
		if r := kiln(t, state, nil, args...); r.code != 2 {
			t.Errorf("kiln %v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
}

// TestVersion: kiln version prints the version and commit set at link time.
func TestVersion(t *testing.T) {
	r := kiln(t, t.TempDir(), nil, "version")
	if r.code != 0 || !regexp.MustCompile(`^kiln \S+ \(commit \S+\)\n$`).MatchString(r.stdout) {
		t.Errorf("kiln version: exit %d, %q", r.code, r.stdout)
	}

	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "kiln")
	const pkg = "github.com/kiln-build/kiln/internal/cli"
	cmd := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X "+pkg+".Version=v9.8.7 -X "+pkg+".Commit=0123abc", "./cmd/kiln")
	cmd.Dir = filepath.Dir(filepath.Dir(file))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kiln with -ldflags: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "kiln v9.8.7 (commit 0123abc)\n" {
		t.Errorf("kiln version = %q, want %q", out, "kiln v9.8.7 (commit 0123abc)\n")
	}
}

// TestStateMax: KILN_STATE_MAX bounds the state dir after each build.
func TestStateMax(t *testing.T) {
	_, base := setup(t)
	ctxDir := appContext(t, base)
	state := filepath.Join(t.TempDir(), "state")
	r := mustKiln(t, state, []string{"KILN_STATE_MAX=1KB"}, "build", "--progress", "plain", ctxDir)
	if !strings.Contains(r.stderr, "over KILN_STATE_MAX") {
		t.Errorf("no word of the bound\n%s", r.stderr)
	}
	r = mustKiln(t, state, nil, "build", "--progress", "plain", ctxDir)
	if got := len(ranSteps(r.stderr)); got != 5 {
		t.Errorf("after bounding to 1KB the next build ran %d steps, want all 5", got)
	}
	r = mustKiln(t, state, []string{"KILN_STATE_MAX=10GB"}, "build", "--progress", "plain", ctxDir)
	if got := len(ranSteps(r.stderr)); got != 0 || strings.Contains(r.stderr, "over KILN_STATE_MAX") {
		t.Errorf("under a 10GB bound: ran %d steps, pruned: %v", got, strings.Contains(r.stderr, "over KILN_STATE_MAX"))
	}
	if r := kiln(t, state, []string{"KILN_STATE_MAX=lots"}, "build", ctxDir); r.code != 2 {
		t.Errorf("KILN_STATE_MAX=lots: exit %d, want 2", r.code)
	}
}

// TestPruneSweepsKilledBuild: a build killed with SIGKILL mid-RUN leaves
// its snapshot mounted; kiln prune unmounts and removes it.
func TestPruneSweepsKilledBuild(t *testing.T) {
	imagetest.Require(t, "overlayfs") // the copying snapshotter leaves no mount to sweep
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo run-$((40+2)) && sleep 2\n"})
	state := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(kilnBin, "build", "--progress", "plain", ctxDir)
	cmd.Env = append(os.Environ(), "KILN_STATE="+state)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen string
	// The step's own output, not its title line.
	for !strings.Contains(seen, "run-42") {
		n, err := stderr.Read(buf)
		if err != nil {
			t.Fatalf("build ended before its RUN started: %v\n%s", err, seen)
		}
		seen += string(buf[:n])
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitOrphans(t, state)
	if countMounts(t, state) == 0 {
		t.Fatalf("the killed build left no mount; the test proves nothing")
	}
	mustKiln(t, state, nil, "prune", "--keep-storage", "10GB")
	if n := countMounts(t, state); n != 0 {
		t.Errorf("%d mounts left under the state dir after prune", n)
	}
}

// waitOrphans waits until no process has an argument under dir. A kiln
// killed mid-RUN leaves its runtime (`runc run --bundle DIR/tmp/…`)
// running until the container's process ends; zombies have no arguments.
func waitOrphans(t *testing.T, dir string) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(time.Minute)
	for first := true; ; first = false {
		pids := processesUnder(t, dir)
		if first {
			t.Logf("orphaned processes: %v", pids)
		}
		if len(pids) == 0 {
			t.Logf("no process left after %v", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still run with arguments under %s", pids, dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesUnder lists the processes with an argument naming dir or a path
// below it.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // it ended while we looked
		}
		for _, arg := range strings.Split(string(b), "\x00") {
			if arg == dir || strings.HasPrefix(arg, dir+"/") {
				pids = append(pids, e.Name())
				break
			}
		}
	}
	return pids
}

// countMounts counts the mount points below dir.
//
// It reads the mounts of its own locked thread, not /proc/self's: those
// are the thread group leader's, and a test that leaves a locked thread
// in a namespace of its own (TestBuildLeavesHostMounts) may have done so
// on the main thread, which Go then keeps parked, namespace and all.
func countMounts(t *testing.T, dir string) int {
	t.Helper()
	runtime.LockOSThread()
	b, err := os.ReadFile("/proc/thread-self/mounts")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			n++
		}
	}
	return n
}
