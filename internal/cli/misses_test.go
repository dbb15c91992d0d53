package cli

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/progress"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want from the current output")

// The secret values of TestMissCauses: they must appear in no output.
const (
	secretOne = "tok-value-one-7f3a9e"
	secretTwo = "tok-value-two-9c1b44"
)

// missesDockerfile has a base image, a build arg, a context COPY, a RUN
// with a secret and a RUN after it: steps 2, 3 and 4 are filesystem steps.
const missesDockerfile = `FROM %s/base:1
ARG VERSION
COPY src/ /app/
RUN --mount=type=secret,id=tok,env=TOK echo "$VERSION" > /v
RUN cat /app/a.go /v > /out
`

const (
	runSecret = `RUN --mount=type=secret,id=tok,env=TOK echo "$VERSION" > /v`
	runCat    = `RUN cat /app/a.go /v > /out`
)

// missWorld is one state dir that TestMissCauses builds in, with one
// progress mode.
type missWorld struct {
	mode  string
	state string
}

// missRun is what one build wrote.
type missRun struct {
	stderr, stdout, metadata, summary string
}

// TestMissCauses changes one input at a time and checks that each miss is
// named, the same, in the plain and json progress, in --metadata-file and
// in the job summary; that a changed secret and a file .dockerignore
// excludes cause no miss; and that the secret's value shows nowhere. Two
// state dirs are built in lockstep, one per progress mode.
func TestMissCauses(t *testing.T) {
	imagetest.Require(t, "root", "runc", "busybox")
	reg := imagetest.Registry(t)
	imagetest.Push(t, imagetest.Busybox(t), reg+"/base:1")
	ctxDir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(ctxDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", fmt.Sprintf(missesDockerfile, reg))
	write(".dockerignore", "src/ignored.txt\n")
	for _, f := range []string{"a", "b", "c"} {
		write("src/"+f+".go", "package "+f+"\n")
	}
	write("src/ignored.txt", "one\n")

	worlds := []*missWorld{{mode: "plain", state: t.TempDir()}, {mode: "json", state: t.TempDir()}}
	version, secret := "1", secretOne
	var baseNow string
	tests := []struct {
		name   string
		change func(t *testing.T)
		want   map[int]string // step → cause
	}{
		{"cold", func(*testing.T) {}, map[int]string{
			2: "COPY src/ /app/: no earlier record of this step",
			3: runSecret + ": parent step 2 missed",
			4: runCat + ": parent step 3 missed",
		}},
		{"context files", func(*testing.T) {
			for _, f := range []string{"a", "b", "c"} {
				write("src/"+f+".go", "package "+f+" // changed\n")
			}
		}, map[int]string{
			2: "COPY src/ /app/: 3 files changed: src/a.go, src/b.go, +1",
			3: runSecret + ": parent step 2 missed",
			4: runCat + ": parent step 3 missed",
		}},
		{"build arg", func(*testing.T) { version = "2" }, map[int]string{
			3: runSecret + ": build arg VERSION changed",
			4: runCat + ": parent step 3 missed",
		}},
		{"secret", func(*testing.T) { secret = secretTwo }, map[int]string{}},
		{"dockerignored file", func(*testing.T) { write("src/ignored.txt", "two\n") }, map[int]string{}},
		{"instruction", func(*testing.T) {
			write("Dockerfile", strings.Replace(fmt.Sprintf(missesDockerfile, reg), runCat, "RUN cat /v /app/a.go > /out", 1))
		}, map[int]string{
			4: "RUN: instruction changed",
		}},
		{"base image", func(t *testing.T) {
			img, err := mutate.AppendLayers(imagetest.Busybox(t), imagetest.RandomLayer(t, 1, 1000))
			if err != nil {
				t.Fatal(err)
			}
			baseNow = imagetest.Push(t, img, reg+"/base:1").String()
		}, map[int]string{
			2: "FROM: base image changed (%s → %s)",
			3: runSecret + ": parent step 2 missed",
			4: "RUN cat /v /app/a.go > /out: parent step 3 missed",
		}},
	}
	baseWas := imagetest.Push(t, imagetest.Busybox(t), reg+"/base:1").String()
	for _, tc := range tests {
		tc.change(t)
		if tc.name == "base image" {
			tc.want[2] = fmt.Sprintf(tc.want[2], short(baseWas), short(baseNow))
		}
		for _, w := range worlds {
			r := w.build(t, ctxDir, reg, version, secret)
			where := tc.name + " (" + w.mode + ")"
			switch w.mode {
			case "plain":
				checkCauses(t, where+": plain miss lines", tc.want, plainMisses(r.stderr))
				checkCauses(t, where+": log group", tc.want, groupMisses(t, r.stderr))
			case "json":
				checkCauses(t, where+": json events", tc.want, jsonMisses(t, r.stderr))
				if tc.name == "instruction" {
					golden(t, "misses-json", normalize(t, reg, r.stderr, true))
					golden(t, "misses-summary", normalize(t, reg, r.summary, false))
				}
			}
			checkCauses(t, where+": metadata", tc.want, metadataMisses(t, r.metadata))
			checkCauses(t, where+": job summary", tc.want, summaryMisses(r.summary))
			for _, s := range []string{secretOne, secretTwo} {
				for what, out := range map[string]string{"stderr": r.stderr, "stdout": r.stdout, "metadata": r.metadata, "summary": r.summary} {
					if strings.Contains(out, s) {
						t.Errorf("%s: the secret's value is in %s", where, what)
					}
				}
				if p := grepDir(t, w.state, s, "records", "ix"); p != "" {
					t.Errorf("%s: the secret's value is in the state dir: %s", where, p)
				}
			}
		}
	}
}

// build runs kiln build in w and returns what it wrote.
func (w *missWorld) build(t *testing.T, ctxDir, reg, version, secret string) missRun {
	t.Helper()
	out := t.TempDir()
	md, sum := filepath.Join(out, "metadata.json"), filepath.Join(out, "summary.md")
	env := map[string]string{
		"KILN_STATE": w.state, "TOK": secret, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": sum,
		"SOURCE_DATE_EPOCH": "1700000000",
	}
	code, stdout, stderr := run(t, func(k string) string { return env[k] }, "build", "--progress", w.mode,
		"--metadata-file", md, "--build-arg", "VERSION="+version, "--secret", "id=tok,env=TOK", "-t", reg+"/app:latest", ctxDir)
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, stderr)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("reading %s: %v", filepath.Base(p), err)
		}
		return string(b)
	}
	return missRun{stderr: stderr, stdout: stdout, metadata: read(md), summary: read(sum)}
}

func short(d string) string { return d[:len("sha256:")+12] + "…" }

func checkCauses(t *testing.T, where string, want, got map[int]string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: causes by step (-want +got):\n%s", where, diff)
	}
}

var (
	missLineRe  = regexp.MustCompile(`^#(\d+) MISS (.*)$`)
	groupMissRe = regexp.MustCompile(`^   miss #(\d+) (.*)$`)
	rowRe       = regexp.MustCompile(`^\| #(\d+) \| (.*) \| [^|]* \|$`)
	mdEscape    = regexp.MustCompile(`\\(.)`)
)

func linesMatching(s string, re *regexp.Regexp) map[int]string {
	out := map[int]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			out[n] = m[2]
		}
	}
	return out
}

func plainMisses(stderr string) map[int]string { return linesMatching(stderr, missLineRe) }

// groupMisses reads the misses from the log group, which must be there.
func groupMisses(t *testing.T, stderr string) map[int]string {
	t.Helper()
	start := strings.Index(stderr, "::group::"+progress.LogGroupTitle+"\n")
	end := strings.LastIndex(stderr, "::endgroup::")
	if start < 0 || end < start {
		t.Errorf("no log group in:\n%s", stderr)
		return nil
	}
	return linesMatching(stderr[start:end], groupMissRe)
}

func jsonMisses(t *testing.T, stderr string) map[int]string {
	t.Helper()
	out := map[int]string{}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var e progress.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("json progress line %q: %v", sc.Text(), err)
		}
		if e.Kind == progress.StepStart {
			if e.Miss == nil {
				t.Errorf("step %d started without a miss explanation", e.Step)
				continue
			}
			out[e.Step] = e.Miss.Cause
		}
	}
	return out
}

func metadataMisses(t *testing.T, metadata string) map[int]string {
	t.Helper()
	var md struct {
		Summary progress.Summary `json:"kiln.summary"`
	}
	if err := json.Unmarshal([]byte(metadata), &md); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	out := map[int]string{}
	for _, m := range md.Summary.Misses {
		out[m.Step] = m.Cause
	}
	return out
}

// summaryMisses reads the miss table of the job summary, undoing the
// markdown escapes.
func summaryMisses(md string) map[int]string {
	i := strings.Index(md, "### Cache misses")
	if i < 0 {
		return map[int]string{}
	}
	out := map[int]string{}
	for n, cell := range linesMatching(md[i:], rowRe) {
		out[n] = strings.ReplaceAll(mdEscape.ReplaceAllString(cell, "$1"), "&amp;", "&")
	}
	return out
}

// grepDir returns the first file under root/dirs holding s, or "".
func grepDir(t *testing.T, root, s string, dirs ...string) string {
	t.Helper()
	for _, d := range dirs {
		var found string
		_ = filepath.WalkDir(filepath.Join(root, d), func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() || found != "" {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), s) {
				found = p
			}
			return nil
		})
		if found != "" {
			return found
		}
	}
	return ""
}

var (
	digestRe   = regexp.MustCompile(`sha256:[0-9a-f]{64}|sha256:[0-9a-f]{12}…`)
	durationRe = regexp.MustCompile(`\| \d+(\.\d)?s \||\| \d+m\d+s \|`)
	// timeRe and jsonDurationRe find the clock in a json progress line.
	timeRe         = regexp.MustCompile(`"time":"[^"]*",`)
	jsonDurationRe = regexp.MustCompile(`"duration":\d+`)
)

// normalize makes a build's output comparable across runs, keeping it as
// written otherwise: no times, durations zeroed, the registry's address
// and digests replaced.
func normalize(t *testing.T, reg, s string, jsonLines bool) []byte {
	t.Helper()
	if jsonLines {
		s = timeRe.ReplaceAllString(s, "")
		s = jsonDurationRe.ReplaceAllString(s, `"duration":0`)
	} else {
		s = durationRe.ReplaceAllString(s, "| Ns |")
	}
	s = strings.ReplaceAll(s, reg, "REGISTRY")
	return []byte(digestRe.ReplaceAllString(s, "sha256:…"))
}

// golden compares got with testdata/name/want, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name, "want")
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", p, diff)
	}
}

func TestStepSummaryEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env       map[string]string
		mode      string
		wantFile  string
		wantGroup bool
	}{
		{map[string]string{}, "plain", "", false},
		{map[string]string{"GITHUB_STEP_SUMMARY": "/s", "GITHUB_ACTIONS": "true"}, "plain", "/s", true},
		{map[string]string{"GITHUB_STEP_SUMMARY": "/s", "DOCKER_BUILD_SUMMARY": "false"}, "plain", "", false},
		{map[string]string{"GITHUB_STEP_SUMMARY": "/s", "DOCKER_BUILD_SUMMARY": "true"}, "plain", "/s", false},
		{map[string]string{"GITHUB_STEP_SUMMARY": "/s", "DOCKER_BUILD_SUMMARY": "0"}, "plain", "", false},
		{map[string]string{"GITHUB_ACTIONS": "true"}, "json", "", false},
	}
	for i, tt := range tests {
		getenv := func(k string) string { return tt.env[k] }
		if got := stepSummary(getenv); got != tt.wantFile {
			t.Errorf("%d: stepSummary = %q, want %q", i, got, tt.wantFile)
		}
		if got := logGroup(Env{Getenv: getenv}, tt.mode); got != tt.wantGroup {
			t.Errorf("%d: logGroup = %v, want %v", i, got, tt.wantGroup)
		}
	}
}
