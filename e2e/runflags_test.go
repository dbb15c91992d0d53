package e2e

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runFlagsDockerfile records what a RUN sees of --add-host, --shm-size and
// --ulimit in a builder stage, with a random stamp that shows when it ran;
// it prints the stamp; the final stage copies the records and reads them.
const runFlagsDockerfile = `FROM {{BASE}} AS builder
RUN cat /etc/hosts > /hosts.txt && df -k /dev/shm | awk 'NR==2 {print $2}' > /shm.txt && grep -E '^Max (open files|processes)' /proc/self/limits | awk '{print $(NF-2), $(NF-1)}' > /limits.txt && echo stamp=$(cat /proc/sys/kernel/random/uuid)

FROM {{BASE}}
COPY --from=builder /hosts.txt /shm.txt /limits.txt /
RUN cat /shm.txt /limits.txt > /final.txt
`

// missLines are the MISS lines of plain progress output, by step number.
func missLines(stderr string) map[string]string {
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#(\d+) MISS (.*)$`).FindAllStringSubmatch(stderr, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// stampOf is the stamp the builder's RUN printed.
func stampOf(t *testing.T, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`stamp=([0-9a-f-]{36})`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no stamp in the output:\n%s", stderr)
	}
	return m[1]
}

// TestRunFlags: --add-host, --shm-size and --ulimit reach RUN steps
// (/etc/hosts, df /dev/shm, /proc/self/limits), a changed value is a miss
// that names the flag, and --no-cache-filter re-runs the named stage only.
func TestRunFlags(t *testing.T) {
	_, base := setup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(runFlagsDockerfile, "{{BASE}}", base)})
	state := filepath.Join(t.TempDir(), "state")
	build := func(flags ...string) (result, string) {
		t.Helper()
		root := filepath.Join(t.TempDir(), "rootfs")
		args := append([]string{"build", "--progress", "plain", "-o", "type=local,dest=" + root}, flags...)
		return mustKiln(t, state, nil, append(args, ctxDir)...), root
	}
	limits := []string{"--add-host", "db.internal:10.1.2.3", "--add-host", "v6.internal=fd00::7",
		"--ulimit", "nofile=1024:2048", "--ulimit", "nproc=300:400"}
	// Steps: 1 the builder's RUN, 2 COPY, 3 RUN.
	r, root := build(append(limits, "--shm-size", "32m")...)
	hosts := readFile(t, filepath.Join(root, "hosts.txt"))
	for _, want := range []string{"10.1.2.3\tdb.internal\n", "fd00::7\tv6.internal\n", "127.0.0.1\tlocalhost"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts of RUN lacks %q:\n%s", want, hosts)
		}
	}
	if got, want := readFile(t, filepath.Join(root, "final.txt")), "32768\n300 400\n1024 2048\n"; got != want {
		t.Errorf("RUN saw /dev/shm KiB and limits %q, want %q", got, want)
	}
	stamp := stampOf(t, r.stderr)

	r, _ = build(append(limits, "--shm-size", "32m")...)
	if got := ranSteps(r.stderr); len(got) != 0 {
		t.Errorf("same flags again: steps %v ran, want none", got)
	}

	r, root = build(append(limits, "--shm-size", "16m")...)
	if got := missLines(r.stderr)["1"]; !strings.HasSuffix(got, ": --shm-size changed") {
		t.Errorf("--shm-size 32m → 16m: RUN miss line %q, want it to end in \": --shm-size changed\"", got)
	}
	if got := readFile(t, filepath.Join(root, "shm.txt")); got != "16384\n" {
		t.Errorf("--shm-size 16m: /dev/shm is %q KiB, want 16384", got)
	}

	r, _ = build(append(limits[:len(limits)-2], "--shm-size", "16m", "--ulimit", "nproc=300:500")...)
	if got := missLines(r.stderr)["1"]; !strings.HasSuffix(got, ": --ulimit nproc changed") {
		t.Errorf("--ulimit nproc 400 → 500: RUN miss line %q, want \": --ulimit nproc changed\"", got)
	}

	// --no-cache-filter builder: only the builder's RUN runs; the final
	// stage's COPY finds the same files and hits, and so does its RUN.
	r, _ = build(append(limits[:len(limits)-2], "--shm-size", "16m", "--ulimit", "nproc=300:500", "--no-cache-filter", "other,builder")...)
	if got := ranSteps(r.stderr); !slices.Equal(got, []string{"1"}) {
		t.Errorf("--no-cache-filter builder: steps %v ran, want [1]\n%s", got, r.stderr)
	}
	if got := missLines(r.stderr)["1"]; !strings.HasSuffix(got, ": cache disabled for stage builder (--no-cache-filter)") {
		t.Errorf("--no-cache-filter builder: miss line %q", got)
	}
	if !strings.Contains(r.stderr, `--no-cache-filter "other": no stage of that name is built`) {
		t.Errorf("no warning for a filter naming no stage:\n%s", r.stderr)
	}
	if got := stampOf(t, r.stderr); got == stamp {
		t.Errorf("the builder's stamp did not change: it did not run")
	}

	// Without the flags, RUN gets Docker's defaults again.
	_, root = build()
	if got := readFile(t, filepath.Join(root, "shm.txt")); got != "65536\n" {
		t.Errorf("default /dev/shm is %q KiB, want 65536", got)
	}
	if got := readFile(t, filepath.Join(root, "hosts.txt")); strings.Contains(got, "db.internal") {
		t.Errorf("/etc/hosts without --add-host:\n%s", got)
	}
}
