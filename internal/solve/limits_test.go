package solve

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/progress"
)

// TestRunLimitsKeys: --add-host, --shm-size and --ulimit leave a RUN hit
// when unset, make it miss when given or changed, and name the flag that
// did it; the steps after it miss because it did.
func TestRunLimitsKeys(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "a\n"})
	const df = "FROM scratch\nCOPY busybox /bin/busybox\n" + installBusybox + "\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n"
	const cp, run = "COPY a.txt /a.txt", "RUN cat /a.txt > /b.txt"
	e := newEnv(t)
	e.solveOnce(ctxDir, df, Options{})
	for _, tc := range []struct {
		name string
		opts Options
		want map[string]string // missed step → cause; the rest must hit
	}{
		{"unset", Options{}, map[string]string{}},
		{"shm added", Options{ShmSize: 8 << 20}, map[string]string{
			installBusybox: installBusybox + ": --shm-size added", cp: cp + ": parent step 2 missed", run: run + ": parent step 3 missed"}},
		{"shm changed", Options{ShmSize: 16 << 20}, map[string]string{
			installBusybox: installBusybox + ": --shm-size changed", cp: cp + ": parent step 2 missed", run: run + ": parent step 3 missed"}},
		{"ulimit and host", Options{ShmSize: 16 << 20, Ulimits: []exec.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
			Hosts: []exec.Host{{Name: "db", IP: net.ParseIP("10.0.0.5")}}}, map[string]string{
			installBusybox: installBusybox + ": --add-host db added, --ulimit nofile added", cp: cp + ": parent step 2 missed", run: run + ": parent step 3 missed"}},
		{"ulimit changed", Options{ShmSize: 16 << 20, Ulimits: []exec.Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}},
			Hosts: []exec.Host{{Name: "db", IP: net.ParseIP("10.0.0.5")}}}, map[string]string{
			installBusybox: installBusybox + ": --ulimit nofile changed", cp: cp + ": parent step 2 missed", run: run + ": parent step 3 missed"}},
		{"same again", Options{ShmSize: 16 << 20, Ulimits: []exec.Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}},
			Hosts: []exec.Host{{Name: "db", IP: net.ParseIP("10.0.0.5")}}}, map[string]string{}},
		{"all removed", Options{}, map[string]string{}},
	} {
		_, b := e.solveOnce(ctxDir, df, tc.opts)
		got := map[string]string{}
		for text, m := range b.misses() {
			got[text] = m.Cause
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: misses (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestNoCacheStages: --no-cache-filter builder re-runs the builder stage's
// steps only, each naming why; the stages before and after it hit (the
// final stage's COPY --from finds the same file content).
func TestNoCacheStages(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"app/app.txt": "hello\n"})
	e := newEnv(t)
	e.solveOnce(ctxDir, explainStages, Options{})
	_, b := e.solveOnce(ctxDir, explainStages, Options{NoCacheStages: []string{"BUILDER"}})
	const run = "RUN tr a-z A-Z < /src/app.txt > /out.txt"
	if diff := cmp.Diff([]string{"COPY app/ /src/", run}, b.stepsBy(progress.StepDone)); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"COPY busybox /bin/busybox", installBusybox, copyFromBuilder, runAfterCopy}, b.stepsBy(progress.StepCached)); diff != "" {
		t.Errorf("steps cached (-want +got):\n%s", diff)
	}
	for _, text := range []string{"COPY app/ /src/", run} {
		m := b.misses()[text]
		if want := text + ": cache disabled for stage builder (--no-cache-filter)"; m.Reason != progress.ReasonNoCache || m.Cause != want {
			t.Errorf("%s: miss %q (%s), want %q", text, m.Cause, m.Reason, want)
		}
	}
}
