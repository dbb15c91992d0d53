package build

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/imagetest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// times are the durations of a job summary, which vary from run to run.
var times = regexp.MustCompile(`(?m)^(\| Duration \| |\| #\d+ \| .* \| )[0-9.]+(?:m[0-9.]*)?(?:µs|ms|s)( \|)$`)

// failedBuild runs a build of df (with busybox in the context) that must
// fail, and returns its error and the job summary it appended.
func failedBuild(t *testing.T, df string) (error, string) {
	t.Helper()
	ctxDir := t.TempDir()
	files := map[string]string{"Dockerfile": df, "a.txt": "a\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(df, "busybox") {
		bb, err := os.ReadFile(imagetest.BusyboxPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, "busybox"), bb, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stepSummary := filepath.Join(t.TempDir(), "summary.md")
	res, err := Run(context.Background(), Options{ContextDir: ctxDir, StateDir: t.TempDir(), StepSummary: stepSummary})
	if err == nil {
		t.Fatal("the build did not fail")
	}
	if res == nil || res.Summary == nil || res.Summary.Failure == nil || res.Image != nil {
		t.Errorf("a failed build returned %+v, want a Result with only its Summary and Failure", res)
	}
	b, rerr := os.ReadFile(stepSummary)
	if rerr != nil {
		t.Fatalf("a failed build wrote no job summary: %v", rerr)
	}
	return err, string(b)
}

// TestFailedBuildSummary: a build whose RUN fails still appends its job
// summary: the step, the line kiln ends with (what the GitHub step fails
// with) and the step's last output lines, with what ran before it (one
// step, so that the slowest steps have one order).
func TestFailedBuildSummary(t *testing.T) {
	imagetest.Require(t, "root", "runc", "busybox")
	err, md := failedBuild(t, `FROM scratch AS tools
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo compiling >&2; echo 'got `+"```a```"+`, want b' >&2; exit 3"]
`)
	got := times.ReplaceAllString(md, "${1}T${2}")
	path := filepath.Join("testdata", "failed-run.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatalf("reading golden file (go test -update writes it): %v", rerr)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("job summary of the failed build (-want +got):\n%s", diff)
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	if !strings.Contains(md, "\nkiln: "+first+"\n") {
		t.Errorf("the summary lacks kiln's line %q", "kiln: "+first)
	}
}

// TestFailedBuildSummaryNoRuntime: a COPY of a missing file fails the
// build at its step, with no runtime needed; a Dockerfile error fails it
// before any step.
func TestFailedBuildSummaryNoRuntime(t *testing.T) {
	err, md := failedBuild(t, "FROM scratch\nCOPY a.txt /a.txt\nCOPY missing.txt /m\n")
	first, _, _ := strings.Cut(err.Error(), "\n")
	for _, want := range []string{"| Result | **failed** at step #2 |", "Step #2 `[stage-0] COPY missing.txt /m`:", "\nkiln: " + first + "\n",
		"| Steps cached | 0 of 2 (0%) |", "| #1 | COPY a.txt /a.txt: no earlier record of this step |"} {
		if !strings.Contains(md, want) {
			t.Errorf("job summary lacks %q:\n%s", want, md)
		}
	}
	err, md = failedBuild(t, "FROM scratch\nFROB x\n")
	first, _, _ = strings.Cut(err.Error(), "\n")
	for _, want := range []string{"| Result | **failed** |", "\nkiln: " + first + "\n", "unknown instruction"} {
		if !strings.Contains(md, want) {
			t.Errorf("job summary of a Dockerfile error lacks %q:\n%s", want, md)
		}
	}
}
