package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestErrors checks that bad input gets one clear line and the right exit
// code (DESIGN.md §6).
func TestErrors(t *testing.T) {
	_, base := setup(t)
	tests := []struct {
		name       string
		dockerfile string
		files      map[string]string
		args       []string
		code       int
		want       string // regexp the last stderr line must match
	}{
		{
			name:       "unknown instruction",
			dockerfile: "FROM " + base + "\nRUN true\nFROB x\n",
			code:       2,
			want:       `Dockerfile:3: .*(unknown instruction|FROB)`,
		},
		{
			name:       "copy source outside context",
			dockerfile: "FROM " + base + "\nCOPY ../secret /x\n",
			code:       2,
			want:       `outside the build context`,
		},
		{
			name:       "missing copy source",
			dockerfile: "FROM " + base + "\nCOPY nothere.txt /x\n",
			code:       2,
			want:       `nothere.txt.*no such file`,
		},
		{
			name: "unknown stage",
			// Not a valid image reference either (upper case), so kiln
			// never tries a registry: tests must not reach the internet.
			dockerfile: "FROM " + base + "\nCOPY --from=NoSuchStage /a /b\n",
			code:       2,
			want:       `Dockerfile:2: .*NoSuchStage`,
		},
		{
			name:       "unknown target",
			dockerfile: "FROM " + base + " AS a\nRUN true\n",
			args:       []string{"--target", "zzz"},
			code:       2,
			want:       `target stage "zzz" could not be found`,
		},
		{
			name:       "unknown target with hint",
			dockerfile: "FROM " + base + " AS builder\nFROM " + base + "\n",
			args:       []string{"--target", "biulder"},
			code:       2,
			want:       `Dockerfile: target stage "biulder" could not be found \(did you mean builder\?\)`,
		},
		{
			name:       "bad symbolic chmod",
			dockerfile: "FROM " + base + "\nCOPY --chmod=u+q a /a\n",
			files:      map[string]string{"a": "a"},
			code:       2,
			want:       `Dockerfile:2: .*invalid chmod parameter`,
		},
		{
			name:       "unknown chown user",
			dockerfile: "FROM " + base + "\nCOPY --chown=ghost a /a\n",
			files:      map[string]string{"a": "a"},
			code:       2,
			want:       `Dockerfile:2: .*ghost`,
		},
		{
			name:       "failing run",
			dockerfile: "FROM " + base + "\nRUN echo line-one && echo line-two >&2 && exit 3\n",
			code:       1,
			want:       `line-two`,
		},
		{
			// Rejected before any work: the RUN would fail with exit 1.
			name:       "invalid tag",
			dockerfile: "FROM " + base + "\nRUN false\n",
			args:       []string{"-t", "Bad Ref!!:x y"},
			code:       2,
			want:       `--tag "Bad Ref!!:x y"`,
		},
		{
			name:       "dockerignore syntax error",
			dockerfile: "FROM " + base + "\nCOPY . /x\n",
			files:      map[string]string{".dockerignore": "# c\n*.md\nsrc/[a-\n"},
			code:       2,
			want:       `\.dockerignore:3: bad pattern "src/\[a-"`,
		},
		{
			name:       "missing bind mount source",
			dockerfile: "FROM " + base + "\nRUN --mount=type=bind,source=nothere,target=/m true\n",
			code:       2,
			want:       `RUN --mount=type=bind source "/?nothere": no such file`,
		},
		{
			name:       "failing run says its exit code once",
			dockerfile: "FROM " + base + "\nRUN exit 1\n",
			code:       1,
			want:       `^(?s:.*ERROR: exit code 1\n)`,
		},
		{
			name:       "bad flag",
			dockerfile: "FROM " + base + "\n",
			args:       []string{"--network", "bridge"},
			code:       2,
			want:       `--network "bridge"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"Dockerfile": tt.dockerfile}
			for k, v := range tt.files {
				files[k] = v
			}
			writeFiles(t, dir, files)
			args := append([]string{"build", "--progress", "plain"}, tt.args...)
			args = append(args, dir)
			r := kiln(t, filepath.Join(t.TempDir(), "state"), nil, args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", r.code, tt.code, r.stderr)
			}
			if !regexp.MustCompile(tt.want).MatchString(r.stderr) {
				t.Errorf("stderr does not match %q:\n%s", tt.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("a failed build printed %q on stdout", r.stdout)
			}
		})
	}
}

// TestFailedRunShowsStep checks the failed RUN's message: step, exit code,
// last lines.
func TestFailedRunShowsStep(t *testing.T) {
	_, base := setup(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo first && echo boom >&2 && exit 7\n"})
	r := kiln(t, filepath.Join(t.TempDir(), "state"), nil, "build", "--progress", "plain", dir)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	i := strings.LastIndex(r.stderr, "kiln: ")
	if i < 0 {
		t.Fatalf("no kiln: error line in\n%s", r.stderr)
	}
	msg := r.stderr[i:]
	for _, want := range []string{"Dockerfile:2", "RUN echo first", "exit code 7", "boom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q:\n%s", want, msg)
		}
	}
}
