package dockerfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kiln-build/kiln/internal/plan"
)

// Options are the inputs of Plan besides the Dockerfile itself. The zero
// value plans the last stage with no build args; it can only plan
// Dockerfiles whose stages start FROM scratch or FROM another stage, since
// it has no way to resolve images.
type Options struct {
	// File is the path shown in errors; "" shows "Dockerfile".
	File string
	// BuildArgs are the --build-arg values. A value here overrides an ARG
	// default, but is only seen where an ARG declares the name.
	BuildArgs map[string]string
	// Target is the --target stage name; "" is the last stage.
	Target string
	// Network is the build's default network mode for RUN ("default",
	// "host", "none" or "" for the caller's default); RUN --network
	// overrides it.
	Network string
	// Platform is the target platform (TARGETPLATFORM and the platform of
	// every stage without FROM --platform); the zero value means the host's
	// (plan.HostPlatform).
	Platform v1.Platform
	// BuildPlatform is the platform of the machine building
	// (BUILDPLATFORM); the zero value means the host's.
	BuildPlatform v1.Platform
	// ResolveImage resolves a registry image reference (FROM, COPY
	// --from=image, RUN --mount from=image) to the digest and config of its
	// manifest for platform (the stage's). It is called at most once per
	// distinct reference and platform, only for the stages the target
	// needs, and never concurrently. Its error is returned wrapped in an
	// *Error at the instruction that named the image.
	ResolveImage func(ctx context.Context, ref string, platform v1.Platform) (*plan.Image, error)
	// Contexts are the named build contexts (--build-context), by name.
	Contexts map[string]NamedContext
}

// Error is an error at a place in the Dockerfile. Error() reads
// "Dockerfile:12: unknown instruction: FOO" (file:line: cause), or
// "Dockerfile: cause" when the cause has no line (an unknown --target).
type Error struct {
	// Pos is where in the Dockerfile the error is; Pos.Line is 0 when the
	// cause has no line.
	Pos plan.Pos
	// Err is the cause, without the position.
	Err error
}

// Error returns "file:line: cause", or "file: cause" when Pos.Line is 0.
func (e *Error) Error() string {
	if e.Pos.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.Pos.File, e.Pos.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Pos.File, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Plan parses dockerfile and resolves it for opts.Target into a graph that
// holds only the stages the target needs, dependencies first. Every ARG and
// ENV reference is expanded, SHELL is applied, and relative paths are made
// absolute. Errors caused by the Dockerfile's content are *Error; an error
// from opts.ResolveImage is wrapped in an *Error at the instruction that
// named the image. Plan calls ResolveImage (and so may block) but does no
// other I/O.
func Plan(ctx context.Context, dockerfile []byte, opts Options) (*plan.Graph, error) {
	p := &planner{
		opts:   opts,
		file:   opts.File,
		images: map[imageAt]*plan.Image{},
	}
	if p.opts.Platform.OS == "" {
		p.opts.Platform = plan.HostPlatform()
	}
	if p.opts.BuildPlatform.OS == "" {
		p.opts.BuildPlatform = plan.HostPlatform()
	}
	p.opts.Platform = plan.NormalizePlatform(p.opts.Platform)
	p.opts.BuildPlatform = plan.NormalizePlatform(p.opts.BuildPlatform)
	if p.file == "" {
		p.file = "Dockerfile"
	}
	if err := p.parse(dockerfile); err != nil {
		return nil, err
	}
	if err := p.resolveStages(); err != nil {
		return nil, err
	}
	target, err := p.target()
	if err != nil {
		return nil, err
	}
	needed := p.needed(target)
	g := &plan.Graph{}
	for _, s := range p.stages {
		if !needed[s] {
			continue
		}
		if err := p.dispatchStage(ctx, s); err != nil {
			return nil, err
		}
		g.Stages = append(g.Stages, s.out)
	}
	g.Target = target.out
	g.Steps = p.steps
	g.UnusedArgs = p.unusedArgs()
	g.Platform = p.opts.Platform
	return g, nil
}

// planner holds the state of one Plan call.
type planner struct {
	opts   Options
	file   string
	lex    *shell.Lex
	stages []*stage
	// meta are the ARG instructions before the first FROM.
	meta []cmd
	// global is the global ARG scope: the predefined platform args and the
	// ARGs before the first FROM, after --build-arg.
	global *argScope
	// declared records every ARG name declared in the global scope or in
	// a dispatched stage, for Graph.UnusedArgs.
	declared map[string]bool
	images   map[imageAt]*plan.Image
	steps    int
}

// imageAt is an image reference resolved for one platform.
type imageAt struct {
	ref      string
	platform string
}

// cmd is one parsed instruction with the node it came from.
type cmd struct {
	node *parser.Node
	cmd  instructions.Command
	// text is Step.Text: the instruction as written, heredoc bodies
	// included.
	text string
	// line is the line errors and Step.Pos name.
	line int
}

// stage is a FROM section as parsed, and its plan.Stage once dispatched.
type stage struct {
	index int
	name  string
	from  *instructions.Stage
	line  int
	cmds  []cmd

	// Set by resolveStages.
	baseName  string // FROM's argument after global ARG expansion
	scratch   bool
	baseCtx   string // a directory build context FROM names (scratch too)
	baseStage *stage
	deps      []*stage
	platform  v1.Platform // the stage's platform (plan.Stage.Platform)

	// Set by dispatchStage.
	out  *plan.Stage
	args *argScope // the ARG scope at the end of the stage
}

// errAt wraps err as an *Error at line.
func (p *planner) errAt(line int, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Pos: plan.Pos{File: p.file, Line: line}, Err: err}
}

// errorf is errAt with a formatted cause.
func (p *planner) errorf(line int, format string, a ...any) error {
	return p.errAt(line, fmt.Errorf(format, a...))
}

// parse runs BuildKit's parser and splits the instructions into the global
// ARGs and the stages.
func (p *planner) parse(dt []byte) error {
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		line := locationLine(err)
		// BuildKit reports a bad parser directive at the count of lines
		// read before it, one less than its 1-based line.
		// So does a line over the scanner's 64 KiB limit (the count of lines
		// read is that of the lines before it).
		if msg := err.Error(); strings.HasPrefix(msg, "invalid escape token") || strings.Contains(msg, "parser directive") ||
			strings.HasPrefix(msg, "dockerfile line greater than max allowed size") {
			line++
		}
		return p.errAt(line, err)
	}
	p.lex = shell.NewLex(res.EscapeToken)
	// A linter that reports nothing: BuildKit's instructions package needs
	// a non-nil one when a comment carries a "check=" directive.
	lint := linter.New(&linter.Config{SkipAll: true})
	for _, n := range res.AST.Children {
		v, err := instructions.ParseInstructionWithLinter(n, lint)
		if err != nil {
			return p.errAt(n.StartLine, err)
		}
		switch c := v.(type) {
		case *instructions.Stage:
			s := &stage{
				index: len(p.stages),
				name:  c.Name,
				from:  c,
				line:  n.StartLine,
			}
			for _, o := range p.stages {
				if s.name != "" && o.name == s.name {
					return p.errorf(n.StartLine, "duplicate stage name %q (first used on line %d)", s.name, o.line)
				}
			}
			p.stages = append(p.stages, s)
		case instructions.Command:
			cm := cmd{node: n, cmd: c, text: nodeText(n), line: n.StartLine}
			if len(p.stages) == 0 {
				if _, ok := c.(*instructions.ArgCommand); !ok {
					return p.errorf(n.StartLine, "%s before the first FROM", strings.ToUpper(n.Value))
				}
				p.meta = append(p.meta, cm)
				continue
			}
			s := p.stages[len(p.stages)-1]
			s.cmds = append(s.cmds, cm)
		default:
			return p.errorf(n.StartLine, "unexpected instruction %s", strings.ToUpper(n.Value))
		}
	}
	if len(p.stages) == 0 {
		return p.errorf(0, "no FROM instruction: the Dockerfile has no stage to build")
	}
	return nil
}

// nodeText is the instruction as written, continuations joined, with the
// bodies of its heredocs appended the way they appear in the file.
func nodeText(n *parser.Node) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(n.Original))
	for _, h := range n.Heredocs {
		b.WriteByte('\n')
		b.WriteString(h.Content)
		b.WriteString(h.Name)
	}
	return b.String()
}

// locationLine is the first line a BuildKit parser error points at, or 0.
func locationLine(err error) int {
	var le *parser.LocationError
	if errors.As(err, &le) {
		for _, rs := range le.Locations {
			for _, r := range rs {
				return r.Start.Line
			}
		}
	}
	return 0
}
