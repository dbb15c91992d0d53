package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/plan"
)

const path0 = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mustPlan plans df with the fake resolver.
func mustPlan(t *testing.T, df string, opts Options) *plan.Graph {
	t.Helper()
	if opts.ResolveImage == nil {
		opts.ResolveImage = (&fakeResolver{}).resolve
	}
	g, err := Plan(context.Background(), []byte(df), opts)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return g
}

// lastRun is the last RUN step of the target stage.
func lastRun(t *testing.T, g *plan.Graph) *plan.Run {
	t.Helper()
	steps := g.Target.Steps
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Run != nil {
			return steps[i].Run
		}
	}
	t.Fatal("target has no RUN step")
	return nil
}

func TestArgScoping(t *testing.T) {
	h := hostString{plan.HostPlatform()}
	tests := []struct {
		name      string
		df        string
		buildArgs map[string]string
		wantEnv   []string // Run.Env of the target's last RUN
		wantCfg   []string // Config.Env of the target
	}{
		{"global needs redeclare", "ARG A=1\nFROM scratch\nRUN x\n", nil,
			[]string{path0}, []string{path0}},
		{"redeclared global keeps value", "ARG A=1\nFROM scratch\nARG A\nRUN x\n", nil,
			[]string{path0, "A=1"}, []string{path0}},
		{"build arg beats global default", "ARG A=1\nFROM scratch\nARG A\nRUN x\n", map[string]string{"A": "2"},
			[]string{path0, "A=2"}, []string{path0}},
		{"build arg beats stage default", "FROM scratch\nARG A=1\nRUN x\n", map[string]string{"A": "3"},
			[]string{path0, "A=3"}, []string{path0}},
		{"stage default beats global", "ARG A=1\nFROM scratch\nARG A=s\nRUN x\n", nil,
			[]string{path0, "A=s"}, []string{path0}},
		{"env wins over arg", "FROM scratch\nARG A=1\nENV A=env\nRUN x\n", map[string]string{"A": "cli"},
			[]string{path0, "A=env"}, []string{path0, "A=env"}},
		{"env before arg still wins", "FROM scratch\nENV A=env\nARG A=1\nRUN x\n", nil,
			[]string{path0, "A=env"}, []string{path0, "A=env"}},
		{"arg without value is unset", "FROM scratch\nARG A\nRUN x\n", nil,
			[]string{path0}, []string{path0}},
		{"arg without value keeps earlier value", "FROM scratch\nARG A=1\nARG A\nRUN x\n", nil,
			[]string{path0, "A=1"}, []string{path0}},
		{"arg carried from base stage", "FROM scratch AS a\nARG A=1\nFROM a\nRUN x\n", nil,
			[]string{path0, "A=1"}, []string{path0}},
		{"arg of another stage not seen", "FROM scratch AS a\nARG A=1\nFROM scratch\nRUN x\n", nil,
			[]string{path0}, []string{path0}},
		{"arg default expands env", "FROM scratch\nENV E=e\nARG A=${E}x\nRUN x\n", nil,
			[]string{path0, "E=e", "A=ex"}, []string{path0, "E=e"}},
		{"env expands arg, arg not persisted", "FROM scratch\nARG V=1\nENV W=v$V\nRUN x\n", nil,
			[]string{path0, "W=v1", "V=1"}, []string{path0, "W=v1"}},
		{"one ENV sees values from before it", "FROM scratch\nENV A=1\nENV A=2 B=$A\nRUN x\n", nil,
			[]string{path0, "A=2", "B=1"}, []string{path0, "A=2", "B=1"}},
		{"global default uses earlier global", "ARG A=x\nARG B=${A}y\nFROM scratch\nARG B\nRUN x\n", nil,
			[]string{path0, "B=xy"}, []string{path0}},
		{"global default uses build arg", "ARG A=x\nARG B=${A}y\nFROM scratch\nARG B\nRUN x\n", map[string]string{"A": "z"},
			[]string{path0, "B=zy"}, []string{path0}},
		{"predefined need declaring", "FROM scratch\nRUN x\n", nil,
			[]string{path0}, []string{path0}},
		{"predefined platform args", "FROM scratch\nARG TARGETPLATFORM TARGETOS TARGETARCH BUILDPLATFORM BUILDARCH TARGETSTAGE\nRUN x\n", nil,
			[]string{path0, "TARGETPLATFORM=" + h.String(), "TARGETOS=linux", "TARGETARCH=" + runtime.GOARCH,
				"BUILDPLATFORM=" + h.String(), "BUILDARCH=" + runtime.GOARCH, "TARGETSTAGE=default"}, []string{path0}},
		{"predefined overridden by build arg", "FROM scratch AS out\nARG TARGETARCH TARGETSTAGE\nRUN x\n", map[string]string{"TARGETARCH": "riscv64"},
			[]string{path0, "TARGETARCH=riscv64", "TARGETSTAGE=out"}, []string{path0}},
		{"base image env kept", "FROM golang:1.22\nARG GOPATH=/arg\nRUN x\n", nil,
			[]string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOPATH=/go"},
			[]string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOPATH=/go"}},
		{"base env PATH not duplicated", "FROM example.com/onbuild:1 AS x\nFROM x\nRUN true\n", nil,
			[]string{"PATH=/usr/bin:/bin"}, []string{"PATH=/usr/bin:/bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := mustPlan(t, tt.df, Options{BuildArgs: tt.buildArgs})
			if diff := cmp.Diff(tt.wantEnv, lastRun(t, g).Env); diff != "" {
				t.Errorf("Run.Env (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCfg, g.Target.Config.Env); diff != "" {
				t.Errorf("Config.Env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromExpansion(t *testing.T) {
	tests := []struct {
		name      string
		df        string
		buildArgs map[string]string
		wantRef   string
	}{
		{"global default", "ARG IMG=busybox\nFROM $IMG\n", nil, "busybox"},
		{"build arg", "ARG IMG=busybox\nFROM ${IMG}\n", map[string]string{"IMG": "alpine:3.20"}, "alpine:3.20"},
		{"modifier", "ARG TAG\nFROM alpine${TAG:+:$TAG}\n", map[string]string{"TAG": "3.20"}, "alpine:3.20"},
		{"digest", "ARG D=sha256:" + strings.Repeat("ab", 32) + "\nFROM busybox@$D\n", nil, "busybox@sha256:" + strings.Repeat("ab", 32)},
		{"stage arg not used by FROM", "ARG IMG=busybox\nFROM scratch\nARG IMG=alpine:3.20\nFROM $IMG\n", nil, "busybox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustPlan(t, tt.df, Options{BuildArgs: tt.buildArgs})
			if img := g.Target.Base.Image; img == nil || img.Ref != tt.wantRef {
				t.Errorf("base = %+v, want image %q", g.Target.Base, tt.wantRef)
			}
		})
	}
}

func TestUnusedArgs(t *testing.T) {
	df := "ARG G\nFROM scratch AS a\nARG A\nFROM scratch AS b\nARG B\n"
	args := map[string]string{"G": "", "A": "", "B": "", "Z": "", "TARGETOS": "linux", "HTTP_PROXY": "x"}
	tests := []struct {
		target string
		want   []string
	}{
		{"", []string{"A", "HTTP_PROXY", "Z"}},
		{"a", []string{"B", "HTTP_PROXY", "Z"}},
	}
	for _, tt := range tests {
		g := mustPlan(t, df, Options{BuildArgs: args, Target: tt.target})
		if diff := cmp.Diff(tt.want, g.UnusedArgs); diff != "" {
			t.Errorf("target %q: UnusedArgs (-want +got):\n%s", tt.target, diff)
		}
	}
}

func TestTargetPruning(t *testing.T) {
	df := `FROM busybox AS a
RUN a

FROM a AS b
RUN b

FROM alpine:3.20 AS c
COPY --from=a /x /x

FROM scratch AS d
RUN --mount=from=c,target=/c c

FROM golang:1.22 AS e
COPY --from=0 /y /y
RUN e
`
	tests := []struct {
		target     string
		wantStages []string
		wantNums   []int
		wantImages []string
	}{
		{"", []string{"a", "e"}, []int{1, 2, 3}, []string{"busybox", "golang:1.22"}},
		{"a", []string{"a"}, []int{1}, []string{"busybox"}},
		{"B", []string{"a", "b"}, []int{1, 2}, []string{"busybox"}},
		{"d", []string{"a", "c", "d"}, []int{1, 2, 3}, []string{"busybox", "alpine:3.20"}},
	}
	for _, tt := range tests {
		t.Run("target="+tt.target, func(t *testing.T) {
			r := &fakeResolver{}
			g := mustPlan(t, df, Options{Target: tt.target, ResolveImage: r.resolve})
			var got []string
			var nums []int
			for _, s := range g.Stages {
				got = append(got, s.Label())
				for _, st := range s.Steps {
					nums = append(nums, st.Number)
					if st.Stage != s {
						t.Errorf("step %d: Stage = %s, want %s", st.Number, st.Stage.Label(), s.Label())
					}
				}
			}
			if diff := cmp.Diff(tt.wantStages, got); diff != "" {
				t.Errorf("stages (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantNums, nums); diff != "" {
				t.Errorf("step numbers (-want +got):\n%s", diff)
			}
			if g.Steps != len(nums) {
				t.Errorf("Graph.Steps = %d, want %d", g.Steps, len(nums))
			}
			if g.Target != g.Stages[len(g.Stages)-1] {
				t.Errorf("Target %s is not the last stage", g.Target.Label())
			}
			if diff := cmp.Diff(tt.wantImages, r.calls); diff != "" {
				t.Errorf("ResolveImage calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveImageOncePerRef(t *testing.T) {
	r := &fakeResolver{}
	g := mustPlan(t, "FROM busybox AS a\nFROM busybox\nCOPY --from=busybox /a /a\nRUN --mount=from=busybox,target=/b true\n", Options{ResolveImage: r.resolve})
	if diff := cmp.Diff([]string{"busybox"}, r.calls); diff != "" {
		t.Errorf("ResolveImage calls (-want +got):\n%s", diff)
	}
	steps := g.Target.Steps
	if g.Target.Base.Image != steps[0].Copy.FromImage || steps[0].Copy.FromImage != steps[1].Run.Mounts[0].FromImage {
		t.Errorf("the same reference resolved to different *plan.Image values")
	}
}

func TestEscapeDirective(t *testing.T) {
	tests := []struct {
		name     string
		df       string
		wantArgs []string
		wantText string
	}{
		{"default backslash continues", "FROM scratch\nRUN echo a \\\n  b\n",
			[]string{"/bin/sh", "-c", "echo a   b"}, "RUN echo a   b"},
		{"backtick continues", "# escape=`\nFROM scratch\nRUN echo a `\n  b\n",
			[]string{"/bin/sh", "-c", "echo a   b"}, "RUN echo a   b"},
		{"backtick keeps backslash", "# escape=`\nFROM scratch\nRUN dir c:\\\n",
			[]string{"/bin/sh", "-c", "dir c:\\"}, "RUN dir c:\\"},
		{"empty continuation line is only a warning", "FROM scratch\nRUN a \\\n\n  b\n",
			[]string{"/bin/sh", "-c", "a   b"}, "RUN a   b"},
		{"syntax directive ignored", "# syntax=example.com/frontend:1\n# escape=`\nFROM scratch\nRUN a `\nb\n",
			[]string{"/bin/sh", "-c", "a b"}, "RUN a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustPlan(t, tt.df, Options{})
			st := g.Target.Steps[0]
			if diff := cmp.Diff(tt.wantArgs, st.Run.Args); diff != "" {
				t.Errorf("Args (-want +got):\n%s", diff)
			}
			if st.Text != tt.wantText {
				t.Errorf("Text = %q, want %q", st.Text, tt.wantText)
			}
		})
	}
	// The escape token also changes how ENV values are expanded.
	g := mustPlan(t, "# escape=`\nFROM scratch\nENV A=1\nENV B=`$A C=\\$A\n", Options{})
	want := []string{path0, "A=1", "B=$A", `C=\1`}
	if diff := cmp.Diff(want, g.Target.Config.Env); diff != "" {
		t.Errorf("Config.Env with backtick escape (-want +got):\n%s", diff)
	}
}

func TestHeredocs(t *testing.T) {
	tests := []struct {
		name      string
		df        string
		wantText  string
		wantArgs  []string
		wantFiles []plan.InlineFile
	}{
		{"body is the script", "FROM scratch\nRUN <<EOF\necho a\necho b\nEOF\n",
			"RUN <<EOF\necho a\necho b\nEOF", []string{"/bin/sh", "-c", "echo a\necho b\n"}, nil},
		{"body under SHELL", "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nRUN <<EOF\necho a\nEOF\n",
			"RUN <<EOF\necho a\nEOF", []string{"/bin/bash", "-c", "echo a\n"}, nil},
		{"command reads body on stdin", "FROM scratch\nRUN <<EOF python3 -\nprint(1)\nEOF\n",
			"RUN <<EOF python3 -\nprint(1)\nEOF", []string{"/bin/sh", "-c", "<<EOF python3 -\nprint(1)\nEOF"}, nil},
		{"chomped tabs", "FROM scratch\nRUN <<-EOF\n\techo a\n\tEOF\n",
			"RUN <<-EOF\n\techo a\nEOF", []string{"/bin/sh", "-c", "echo a\n"}, nil},
		{"shebang runs as a file", "FROM scratch\nRUN <<EOF\n#!/bin/bash\necho a\nEOF\n",
			"RUN <<EOF\n#!/bin/bash\necho a\nEOF", []string{"/bin/sh", "-c", "/dev/pipes/EOF"},
			[]plan.InlineFile{{Name: "EOF", Data: "#!/bin/bash\necho a\n"}}},
		{"body not expanded by kiln", "FROM scratch\nARG X=1\nRUN <<EOF\necho $X\nEOF\n",
			"RUN <<EOF\necho $X\nEOF", []string{"/bin/sh", "-c", "echo $X\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustPlan(t, tt.df, Options{})
			st := lastStep(g)
			if st.Text != tt.wantText {
				t.Errorf("Text = %q, want %q", st.Text, tt.wantText)
			}
			if diff := cmp.Diff(tt.wantArgs, st.Run.Args); diff != "" {
				t.Errorf("Args (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantFiles, st.Run.Files); diff != "" {
				t.Errorf("Files (-want +got):\n%s", diff)
			}
		})
	}

	// A change in a body changes Text, so history and progress show it.
	a := lastStep(mustPlan(t, "FROM scratch\nRUN <<EOF\necho a\nEOF\n", Options{}))
	b := lastStep(mustPlan(t, "FROM scratch\nRUN <<EOF\necho b\nEOF\n", Options{}))
	if a.Text == b.Text {
		t.Errorf("different heredoc bodies give the same Text %q", a.Text)
	}

	g := mustPlan(t, "FROM scratch\nARG N=1\nCOPY <<A <<'B' <<\"C\" /dir/\nn=$N\nA\nn=$N\nB\nn=$N\nC\n", Options{})
	want := []plan.InlineFile{{Name: "A", Data: "n=1\n"}, {Name: "B", Data: "n=$N\n"}, {Name: "C", Data: "n=$N\n"}}
	c := lastStep(g).Copy
	if diff := cmp.Diff(want, c.Inline); diff != "" {
		t.Errorf("COPY heredoc Inline (-want +got):\n%s", diff)
	}
	if len(c.Sources) != 0 || c.Dest != "/dir/" {
		t.Errorf("COPY heredoc Sources = %q Dest = %q, want none and /dir/", c.Sources, c.Dest)
	}
}

func lastStep(g *plan.Graph) *plan.Step {
	return g.Target.Steps[len(g.Target.Steps)-1]
}

// hostString prints a platform as os/arch[/variant].
type hostString struct{ p v1.Platform }

func (h hostString) String() string { return plan.FormatPlatform(h.p) }

func TestPlatform(t *testing.T) {
	h := plan.FormatPlatform(plan.HostPlatform())
	arm := v1.Platform{OS: "linux", Architecture: "arm64"}
	tests := []struct {
		name, df string
		opts     Options
		want     []string // the stages' platforms
	}{
		{"host by default", "FROM scratch\n", Options{}, []string{h}},
		{"target platform", "FROM scratch\n", Options{Platform: arm}, []string{"linux/arm64"}},
		{"BUILDPLATFORM stage", "FROM --platform=$BUILDPLATFORM scratch AS b\nFROM scratch\nCOPY --from=b / /\n",
			Options{Platform: arm}, []string{h, "linux/arm64"}},
		{"TARGETPLATFORM", "FROM --platform=${TARGETPLATFORM} scratch\n", Options{Platform: arm}, []string{"linux/arm64"}},
		{"aliases normalized", "FROM --platform=LINUX/AARCH64 scratch\n", Options{}, []string{"linux/arm64"}},
		{"arm64/v8 is arm64", "FROM --platform=linux/arm64/v8 scratch\n", Options{}, []string{"linux/arm64"}},
		{"arm gets v7", "FROM --platform=linux/armhf scratch\n", Options{}, []string{"linux/arm/v7"}},
		{"x86_64", "FROM --platform=linux/x86_64 scratch\n", Options{}, []string{"linux/amd64"}},
		{"stage inherits its base stage's", "FROM --platform=linux/s390x scratch AS b\nFROM b\n", Options{Platform: arm},
			[]string{"linux/s390x", "linux/s390x"}},
		{"build arg overrides BUILDPLATFORM", "FROM --platform=$BUILDPLATFORM scratch\n",
			Options{BuildArgs: map[string]string{"BUILDPLATFORM": "linux/ppc64le"}}, []string{"linux/ppc64le"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Plan(context.Background(), []byte(tt.df), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range g.Stages {
				got = append(got, plan.FormatPlatform(s.Platform))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stage platforms (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"windows/amd64", "linux/arm64/v8/x", "linux//v7", "linux/a b"} {
		_, err := Plan(context.Background(), []byte("FROM --platform="+bad+" scratch\n"), Options{})
		var de *Error
		if !errors.As(err, &de) || de.Pos.Line != 1 {
			t.Errorf("--platform=%s: error = %v, want one at line 1", bad, err)
		}
	}
}

func TestPlatformArgs(t *testing.T) {
	g := mustPlan(t, "FROM scratch\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH\nRUN x\n",
		Options{Platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, BuildPlatform: v1.Platform{OS: "linux", Architecture: "x86_64"}})
	want := []string{path0, "TARGETPLATFORM=linux/arm/v6", "TARGETOS=linux", "TARGETARCH=arm", "TARGETVARIANT=v6",
		"BUILDPLATFORM=linux/amd64", "BUILDARCH=amd64"}
	if diff := cmp.Diff(want, lastStep(g).Run.Env); diff != "" {
		t.Errorf("RUN env (-want +got):\n%s", diff)
	}
	if got := plan.FormatPlatform(g.Platform); got != "linux/arm/v6" {
		t.Errorf("Graph.Platform = %s, want linux/arm/v6", got)
	}
}

// TestResolveImagePerPlatform: the same image is resolved once per platform
// that needs it, for the stage's platform.
func TestResolveImagePerPlatform(t *testing.T) {
	var got []string
	resolve := func(ctx context.Context, ref string, p v1.Platform) (*plan.Image, error) {
		got = append(got, ref+"@"+plan.FormatPlatform(p))
		return (&fakeResolver{}).resolve(ctx, ref, p)
	}
	mustPlan(t, "FROM --platform=$BUILDPLATFORM busybox AS b\nFROM busybox\nCOPY --from=b /a /a\nCOPY --from=busybox /b /b\n",
		Options{Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, BuildPlatform: v1.Platform{OS: "linux", Architecture: "amd64"}, ResolveImage: resolve})
	if diff := cmp.Diff([]string{"busybox@linux/amd64", "busybox@linux/arm64"}, got); diff != "" {
		t.Errorf("ResolveImage calls (-want +got):\n%s", diff)
	}
}

func TestStepConfig(t *testing.T) {
	g := mustPlan(t, "FROM busybox\nENV A=1\nRUN true\nUSER app\nCOPY a /a\nCMD [\"x\"]\n", Options{})
	steps := g.Target.Steps
	kinds := []plan.Kind{plan.KindConfig, plan.KindRun, plan.KindConfig, plan.KindCopy, plan.KindConfig}
	for i, st := range steps {
		if st.Kind != kinds[i] {
			t.Errorf("step %d: Kind = %d, want %d", st.Number, st.Kind, kinds[i])
		}
	}
	if diff := cmp.Diff([]string{path0, "A=1"}, steps[1].Config.Env); diff != "" {
		t.Errorf("RUN step config Env (-want +got):\n%s", diff)
	}
	if steps[1].Config.User != "" || steps[2].Config.User != "app" {
		t.Errorf("USER applied at the wrong step: %q then %q", steps[1].Config.User, steps[2].Config.User)
	}
	if steps[3].Copy.User != "app" {
		t.Errorf("COPY User = %q, want app", steps[3].Copy.User)
	}
	if diff := cmp.Diff([]string{"sh"}, steps[3].Config.Cmd); diff != "" {
		t.Errorf("Cmd before CMD (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"x"}, g.Target.Config.Cmd); diff != "" {
		t.Errorf("final Cmd (-want +got):\n%s", diff)
	}
	// Steps share unchanged config (issue 11 item 3) but an append to one
	// step's Env never shows in another's.
	_ = append(steps[0].Config.Env, "CHANGED=1")
	if len(steps[1].Config.Env) > 2 && steps[1].Config.Env[2] == "CHANGED=1" {
		t.Errorf("an append to one step's Env shows in the next")
	}
}

func TestPaths(t *testing.T) {
	tests := []struct {
		name     string
		df       string
		wantDest string
		wantWD   string
	}{
		{"relative dest", "FROM scratch\nWORKDIR /app\nCOPY a b\n", "/app/b", "/app"},
		{"dot dest", "FROM scratch\nWORKDIR /app\nCOPY a .\n", "/app/", "/app"},
		{"trailing slash kept", "FROM scratch\nWORKDIR /app\nCOPY a sub/\n", "/app/sub/", "/app"},
		{"absolute dest cleaned", "FROM scratch\nWORKDIR /app\nCOPY a /x/../y/\n", "/y/", "/app"},
		{"no workdir", "FROM scratch\nCOPY a b\n", "/b", "/"},
		{"relative workdirs chain", "FROM scratch\nWORKDIR a\nWORKDIR b/../c\nCOPY x y\n", "/a/c/y", "/a/c"},
		{"workdir from env", "FROM scratch\nENV D=/srv\nWORKDIR $D/app/\nCOPY x y\n", "/srv/app/y", "/srv/app"},
		{"workdir from base image", "FROM golang:1.22\nCOPY x y\n", "/go/y", "/go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustPlan(t, tt.df, Options{})
			st := lastStep(g)
			if st.Copy.Dest != tt.wantDest {
				t.Errorf("Dest = %q, want %q", st.Copy.Dest, tt.wantDest)
			}
			wd := st.Config.WorkingDir
			if wd == "" {
				wd = "/"
			}
			if wd != tt.wantWD {
				t.Errorf("WorkingDir = %q, want %q", wd, tt.wantWD)
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	df := "FROM scratch\nRUN a\nRUN --network=none b\nRUN --network=host c\nRUN --network=default d\n"
	tests := []struct {
		build string
		want  []string
	}{
		{"", []string{"", "none", "host", ""}},
		{"none", []string{"none", "none", "host", "none"}},
		{"host", []string{"host", "none", "host", "host"}},
	}
	for _, tt := range tests {
		g := mustPlan(t, df, Options{Network: tt.build})
		var got []string
		for _, st := range g.Target.Steps {
			got = append(got, st.Run.Network)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("build network %q (-want +got):\n%s", tt.build, diff)
		}
	}
}

func TestOnBuild(t *testing.T) {
	df := "FROM scratch AS a\nONBUILD RUN x\nFROM a AS b\nRUN y\nFROM b\nRUN z\n"
	g := mustPlan(t, df, Options{})
	var got []string
	for _, s := range g.Stages {
		for _, st := range s.Steps {
			got = append(got, s.Label()+": "+st.Text)
		}
	}
	want := []string{"a: ONBUILD RUN x", "b: RUN x", "b: RUN y", "stage-2: RUN z"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if on := g.Stages[0].Config.OnBuild; len(on) != 1 || on[0] != "RUN x" {
		t.Errorf("stage a OnBuild = %q, want [RUN x]", on)
	}
	if on := g.Stages[1].Config.OnBuild; on != nil {
		t.Errorf("stage b OnBuild = %q, want triggers cleared", on)
	}
	if pos := g.Stages[1].Steps[0].Pos.Line; pos != 3 {
		t.Errorf("trigger step at line %d, want the FROM line 3", pos)
	}
}

// TestMetadataLinear: planning n LABEL, EXPOSE or VOLUME lines allocates
// in proportion to n (issue 11 item 3). Each step's config used to copy
// the maps before writing, so 4n lines took 16 times the bytes of n; the
// steps now share one list of additions. Each step still sees its own
// keys only.
func TestMetadataLinear(t *testing.T) {
	kinds := map[string]func(i int) string{
		"LABEL":  func(i int) string { return fmt.Sprintf("LABEL K%d=value-%d", i, i) },
		"EXPOSE": func(i int) string { return fmt.Sprintf("EXPOSE %d", i+1) },
		"VOLUME": func(i int) string { return fmt.Sprintf("VOLUME /v%d", i) },
	}
	for kind, line := range kinds {
		df := func(n int) string {
			var b strings.Builder
			b.WriteString("FROM scratch\n")
			for i := range n {
				b.WriteString(line(i) + "\n")
			}
			return b.String()
		}
		alloc := func(n int) (uint64, *plan.Graph) {
			src := df(n)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			g := mustPlan(t, src, Options{})
			runtime.ReadMemStats(&after)
			return after.TotalAlloc - before.TotalAlloc, g
		}
		small, _ := alloc(500)
		large, g := alloc(2000)
		ratio := float64(large) / float64(small)
		t.Logf("%s: 500 lines %d KiB, 2000 lines %d KiB allocated: x%.1f", kind, small>>10, large>>10, ratio)
		if ratio > 8 {
			t.Errorf("%s: 4 times the lines allocate %.1f times the bytes (%d then %d): quadratic, want about 4", kind, ratio, small, large)
		}
		for _, i := range []int{0, 999, 1999} {
			c := g.Target.Steps[i].Config
			n := len(c.Labels()) + len(c.ExposedPorts()) + len(c.Volumes())
			if n != i+1 {
				t.Errorf("%s: step %d has %d keys, want %d", kind, i+1, n, i+1)
			}
		}
	}
}
