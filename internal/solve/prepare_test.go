package solve

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/progress"
)

// TestPrepareRunsOnMiss: with crun, the first step that runs ahead of a
// RUN in its stage starts compiling the seccomp program the RUN steps
// reuse (one scratch container), before any RUN starts; a build whose
// steps all hit, and one with no RUN, compile nothing.
func TestPrepareRunsOnMiss(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "busybox", "crun")
	ctxDir := writeContext(t, map[string]string{"a.txt": "a\n"})
	withRun := "FROM scratch\nCOPY busybox /bin/busybox\nCOPY a.txt /a.txt\n" + installBusybox + "\nRUN cat /a.txt > /b.txt\n"
	noRun := "FROM scratch\nCOPY a.txt /a.txt\nCOPY busybox /bin/busybox\n"
	e := newEnv(t)
	for _, tc := range []struct {
		name, df string
		want     int32
	}{
		{"cold with RUN", withRun, 1},
		{"all hits", withRun, 0},
		{"no RUN", noRun, 0},
	} {
		b := e.newBuild(ctxDir, tc.df, Options{Runtime: "crun", Network: "none"})
		var made, afterRun atomic.Int32
		bundleDir := b.s.filters.TempDir
		b.s.filters.TempDir = func() (string, error) {
			made.Add(1)
			for _, ev := range b.events.Events() {
				if ev.Kind == progress.StepStart && strings.HasPrefix(ev.Text, "RUN") {
					afterRun.Add(1)
					break
				}
			}
			return bundleDir()
		}
		b.solve(t)
		if err := b.s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := made.Load(); got != tc.want {
			t.Errorf("%s: %d scratch containers for the seccomp program, want %d", tc.name, got, tc.want)
		}
		if afterRun.Load() != 0 {
			t.Errorf("%s: the seccomp program's compile started after a RUN had started", tc.name)
		}
	}
}
