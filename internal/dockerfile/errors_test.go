package dockerfile

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name   string
		df     string
		target string
		line   int
		want   string
	}{
		{"unknown instruction", "FROM busybox\nFOO bar\n", "", 2, "unknown instruction: FOO"},
		{"bad flag", "FROM busybox\nCOPY --frm=x a b\n", "", 2, "unknown flag: --frm"},
		{"missing argument", "FROM busybox\n\nWORKDIR\n", "", 3, "WORKDIR requires exactly one argument"},
		{"copy without destination", "FROM busybox\nCOPY a\n", "", 2, "COPY requires at least two arguments"},
		{"unterminated heredoc", "FROM busybox\nRUN <<EOF\necho hi\n", "", 2, "unterminated heredoc"},
		{"bad escape directive", "# escape=x\nFROM busybox\n", "", 1, "invalid escape token"},
		{"bad escape directive on line 2", "# syntax=docker/dockerfile:1\n# escape=x\nFROM busybox\n", "", 2, "invalid escape token"},
		{"repeated directive", "# escape=`\n# escape=`\nFROM busybox\n", "", 2, "only one escape parser directive can be used"},
		{"instruction before FROM", "ARG A=1\nENV B=2\nFROM busybox\n", "", 2, "ENV before the first FROM"},
		{"no FROM", "ARG A=1\n", "", 0, "no FROM instruction"},
		{"add url", "FROM busybox\n\nADD https://example.com/a.tgz /a\n", "", 3, "ADD from a URL is not supported"},
		{"add git", "FROM busybox\nADD git@github.com:kiln-build/kiln.git /src\n", "", 2, "ADD from a URL is not supported"},
		{"copy url", "FROM busybox\nCOPY http://example.com/a /a\n", "", 2, "source can't be a URL for COPY"},
		{"unknown target", "FROM busybox AS a\n", "x", 0, `target stage "x" could not be found`},
		{"unknown target hint", "FROM busybox AS builder\nFROM busybox AS final\n", "biulder", 0,
			`target stage "biulder" could not be found (did you mean builder?)`},
		{"unknown target case hint", "FROM busybox AS Build\nFROM busybox AS test\n", "BUILDS", 0, "(did you mean build?)"},
		{"from neither stage nor image", "FROM busybox\nCOPY --from=Not_A_Ref! a b\n", "", 2, `"Not_A_Ref!" is neither a stage name nor a valid image reference`},
		{"copy from itself", "FROM busybox AS a\nCOPY --from=a x y\n", "", 2, `stage "a" must be defined before the stage that uses it`},
		{"copy from later stage", "FROM busybox AS a\nCOPY --from=b x y\nFROM busybox AS b\n", "", 2, `stage "b" must be defined before`},
		{"copy from later index", "FROM busybox\nCOPY --from=1 x y\nFROM busybox\n", "", 2, "stage 1 must be defined before"},
		{"copy from bad index", "FROM busybox\nCOPY --from=7 x y\n", "", 2, "invalid stage index 7"},
		{"copy from variable", "FROM busybox\nARG S=a\nCOPY --from=$S x y\n", "", 3, "variable expansion is not supported for --from"},
		{"mount from later stage", "FROM busybox AS a\nRUN --mount=from=b,target=/x true\nFROM busybox AS b\n", "", 2, `stage "b" must be defined before`},
		{"from later stage", "FROM b AS a\nFROM busybox AS b\n", "", 1, `stage "b" is not defined before this stage`},
		{"from itself", "FROM busybox AS a\nFROM a AS a2\nFROM a3 AS a3\n", "", 3, `stage "a3" is not defined before this stage`},
		{"from later index", "FROM 1\nFROM busybox\n", "", 1, "stage index 1 is not an earlier stage"},
		{"duplicate stage", "FROM busybox AS a\nFROM busybox AS a\n", "", 2, `duplicate stage name "a" (first used on line 1)`},
		{"blank base", "ARG B\nFROM $B\n", "", 2, "base name ($B) should not be blank"},
		{"invalid base", "FROM busybox:a:b\n", "", 1, "invalid image reference"},
		{"unresolvable image", "FROM busybox\nRUN true\nFROM nosuch/image\n", "", 3, "resolving image nosuch/image: image not found"},
		{"unresolvable copy image", "FROM busybox\nCOPY --from=nosuch/image a b\n", "", 2, "resolving image nosuch/image: image not found"},
		{"foreign platform", "FROM --platform=windows/amd64 busybox\n", "", 1, `platform "windows/amd64" is not supported`},
		{"bad platform", "FROM --platform=linux//x busybox\n", "", 1, `invalid platform "linux//x"`},
		{"ssh mount", "FROM busybox\nRUN --mount=type=ssh true\n", "", 2, "RUN --mount=type=ssh is not supported"},
		{"unknown mount type", "FROM busybox\nRUN --mount=type=nfs,target=/x true\n", "", 2, `unsupported mount type "nfs"`},
		{"mount without target", "FROM busybox\nRUN --mount=type=cache true\n", "", 2, "--mount=type=cache needs a target"},
		{"mount on root", "FROM busybox\nRUN --mount=type=bind,target=/ true\n", "", 2, `invalid mount target "/"`},
		{"bad network", "FROM busybox\nRUN --network=bridge true\n", "", 2, `invalid network mode "bridge"`},
		{"insecure", "FROM busybox\nRUN --security=insecure true\n", "", 2, "RUN --security=insecure is not supported"},
		{"bad stopsignal", "FROM busybox\nSTOPSIGNAL SIGNOPE\n", "", 2, "invalid signal: SIGNOPE"},
		{"bad chmod", "FROM busybox\nCOPY --chmod=8755 a /a\n", "", 2, "invalid chmod parameter"},
		{"bad symbolic chmod", "FROM busybox\nCOPY --chmod=u+q a /a\n", "", 2, "invalid chmod parameter"},
		{"chmod without operation", "FROM busybox\nADD --chmod=ugo a /a\n", "", 2, "invalid chmod parameter"},
		{"link with chown name", "FROM busybox\nCOPY --link --chown=app a /a\n", "", 2, "user and group names can't be resolved when used with --link"},
		{"bad port", "FROM busybox\nEXPOSE 80/tcp http\n", "", 2, `invalid port "http"`},
		{"bad protocol", "FROM busybox\nEXPOSE 80/icmp\n", "", 2, `invalid protocol "icmp"`},
		{"copy exclude", "FROM busybox\nCOPY --exclude=*.md . /src\n", "", 2, "COPY --exclude is not supported"},
		{"add checksum", "FROM busybox\nADD --checksum=sha256:00 a /a\n", "", 2, "ADD --checksum is not supported"},
		{"bad expansion", "FROM busybox\nENV A=${B:?required}\n", "", 2, "B: required"},
		{"error in unused stage", "FROM busybox AS a\nFROM busybox AS b\nCOPY --from=C! x y\n", "a", 3, `"C!" is neither a stage name`},
		{"line over 64 KiB", "FROM busybox\nRUN true\nRUN echo " + strings.Repeat("x", 70000) + "\n", "", 3, "dockerfile line greater than max allowed size"},
		{"onbuild chain", "FROM busybox\nONBUILD ONBUILD RUN x\n", "", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := Options{File: "Dockerfile", Target: tt.target, ResolveImage: (&fakeResolver{}).resolve}
			g, err := Plan(context.Background(), []byte(tt.df), opts)
			if err == nil {
				t.Fatalf("Plan succeeded with %d stages, want an error containing %q", len(g.Stages), tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %q (%T) is not an *Error", err, err)
			}
			if e.Pos.Line != tt.line || e.Pos.File != "Dockerfile" {
				t.Errorf("error at %s:%d, want Dockerfile:%d (%v)", e.Pos.File, e.Pos.Line, tt.line, err)
			}
			prefix := "Dockerfile: "
			if tt.line > 0 {
				prefix = "Dockerfile:" + strconv.Itoa(tt.line) + ": "
			}
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("error = %q, want prefix %q and substring %q", msg, prefix, tt.want)
			}
		})
	}
}

func TestErrorFileName(t *testing.T) {
	_, err := Plan(context.Background(), []byte("FROM scratch\nBOGUS\n"), Options{File: "build/Containerfile"})
	want := "build/Containerfile:2: unknown instruction: BOGUS"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want prefix %q", err, want)
	}
	_, err = Plan(context.Background(), []byte("FROM scratch\nBOGUS\n"), Options{})
	want = "Dockerfile:2: unknown instruction: BOGUS"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("with no File, error = %v, want prefix %q", err, want)
	}
}

func TestNoResolver(t *testing.T) {
	if _, err := Plan(context.Background(), []byte("FROM scratch AS a\nFROM a\nRUN true\n"), Options{}); err != nil {
		t.Errorf("scratch and stage bases with zero Options: %v", err)
	}
	_, err := Plan(context.Background(), []byte("FROM busybox\n"), Options{})
	if want := "Dockerfile:1: resolving image busybox: no image resolver configured"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}
