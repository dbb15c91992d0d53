package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/plan"
)

// defaultPath is the PATH every stage gets when its base sets none, as
// BuildKit does.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultShell wraps shell-form RUN, CMD and ENTRYPOINT when no SHELL is set.
var defaultShell = []string{"/bin/sh", "-c"}

// state is a stage being dispatched.
type state struct {
	stage  *plan.Stage
	cfg    plan.Config
	args   *argScope
	author string
	// healthStart is HEALTHCHECK --start-interval (plan.Stage.HealthStartInterval).
	healthStart time.Duration
	// cmdSet is true once this stage has its own CMD, so that a later
	// ENTRYPOINT keeps it (an inherited CMD is reset by ENTRYPOINT).
	cmdSet bool
	// sharedEnv is set when cfg.Env's array is shared with a step's
	// Config: the next in-place change copies it first (see snapshot).
	sharedEnv bool
}

// snapshot returns the config for a step: it shares cfg's slices and its
// list of label, port and volume additions (plan.Config) instead of
// copying the whole config per step, which made memory grow with the
// square of the number of metadata instructions. Slices are capped at
// their length, so an append to the step's copy never writes into cfg's
// array; cfg itself only appends past every snapshot's end and copies a
// slice before changing an element in place. The base's maps in cfg are
// never written.
func (st *state) snapshot() plan.Config {
	c := st.cfg
	c.Env = c.Env[:len(c.Env):len(c.Env)]
	c.OnBuild = c.OnBuild[:len(c.OnBuild):len(c.OnBuild)]
	st.sharedEnv = true
	return c
}

func (st *state) env() env { return env{config: st.cfg.Env, args: st.args} }

func (st *state) workdir() string {
	if st.cfg.WorkingDir == "" {
		return "/"
	}
	return st.cfg.WorkingDir
}

// withShell wraps a shell-form command line in SHELL.
func (st *state) withShell(args []string) []string {
	sh := defaultShell
	if len(st.cfg.Shell) > 0 {
		sh = st.cfg.Shell
	}
	return append(slices.Clone(sh), strings.Join(args, " "))
}

func (p *planner) pos(line int) plan.Pos { return plan.Pos{File: p.file, Line: line} }

// dispatchStage resolves the base of s and every instruction in it.
func (p *planner) dispatchStage(ctx context.Context, s *stage) error {
	out := &plan.Stage{Index: s.index, Name: s.name, Pos: p.pos(s.line), Platform: s.platform}
	st := &state{stage: out, args: newArgScope()}
	switch {
	case s.scratch:
		out.Base.Scratch = true
		// BuildKit's empty image has WorkingDir "/" in its config.
		st.cfg.WorkingDir = "/"
	case s.baseStage != nil:
		b := s.baseStage
		out.Base.Stage = b.out
		st.cfg = plan.NewConfig(cloneConfig(b.out.Config))
		st.args = b.args.clone()
		st.author = b.out.Author
		st.healthStart = b.out.HealthStartInterval
	default:
		img, err := p.resolveImage(ctx, s.line, s.baseName, s.platform)
		if err != nil {
			return err
		}
		out.Base.Image = img
		if img.Config != nil {
			st.cfg = plan.NewConfig(cloneConfig(img.Config.Config))
			st.author = img.Config.Author
		}
	}
	// The base's ONBUILD triggers run first, then are cleared: they fire
	// once, in the stage that uses the base, and never carry further.
	triggers, err := p.parseTriggers(s, st.cfg.OnBuild)
	if err != nil {
		return err
	}
	st.cfg.OnBuild = nil
	cmds := append(triggers, s.cmds...)
	if _, ok := lookupEnv(st.cfg.Env, "PATH"); !ok {
		st.cfg.Env = append(st.cfg.Env, "PATH="+defaultPath)
	}
	s.out = out
	if s.baseCtx != "" {
		out.Steps = append(out.Steps, p.contextBaseStep(st, s.baseCtx, s.line))
	}
	for _, c := range cmds {
		step, err := p.dispatch(ctx, s, st, c)
		if err != nil {
			return p.errAt(c.line, err)
		}
		out.Steps = append(out.Steps, step)
	}
	out.Config = st.cfg.Image()
	out.Author = st.author
	out.HealthStartInterval = st.healthStart
	s.args = st.args
	return nil
}

// parseTriggers parses the ONBUILD triggers of the base of stage s into
// instructions that run first in s; errors point at the FROM line.
func (p *planner) parseTriggers(s *stage, triggers []string) ([]cmd, error) {
	var out []cmd
	lint := linter.New(&linter.Config{SkipAll: true})
	for _, t := range triggers {
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil {
			return nil, p.errAt(s.line, fmt.Errorf("parsing ONBUILD trigger %q of the base: %w", t, err))
		}
		if len(res.AST.Children) != 1 {
			return nil, p.errorf(s.line, "ONBUILD trigger %q of the base is not a single instruction", t)
		}
		n := res.AST.Children[0]
		v, err := instructions.ParseInstructionWithLinter(n, lint)
		if err != nil {
			return nil, p.errAt(s.line, fmt.Errorf("parsing ONBUILD trigger %q of the base: %w", t, err))
		}
		c, ok := v.(instructions.Command)
		if !ok {
			return nil, p.errorf(s.line, "ONBUILD trigger %q of the base is not allowed", t)
		}
		cm := cmd{node: n, cmd: c, text: nodeText(n), line: s.line}
		froms, err := p.commandFroms(cm)
		if err != nil {
			return nil, p.errAt(s.line, err)
		}
		for _, f := range froms {
			if _, _, err := p.resolveFrom(s, f.from); err != nil {
				return nil, p.errAt(s.line, fmt.Errorf("ONBUILD trigger %s: %w", f.flag, err))
			}
		}
		out = append(out, cm)
	}
	return out, nil
}

// resolveImage resolves ref for platform once per Plan call.
func (p *planner) resolveImage(ctx context.Context, line int, ref string, platform v1.Platform) (*plan.Image, error) {
	at := imageAt{ref: ref, platform: plan.FormatPlatform(platform)}
	if img, ok := p.images[at]; ok {
		return img, nil
	}
	if p.opts.ResolveImage == nil {
		return nil, p.errorf(line, "resolving image %s: no image resolver configured", ref)
	}
	img, err := p.opts.ResolveImage(ctx, ref, platform)
	if err != nil {
		return nil, p.errAt(line, fmt.Errorf("resolving image %s: %w", ref, err))
	}
	if img == nil {
		return nil, p.errorf(line, "resolving image %s: resolver returned no image", ref)
	}
	if img.Ref == "" {
		img.Ref = ref
	}
	p.images[at] = img
	return img, nil
}

// dispatch turns one instruction into a step and applies it to st.
func (p *planner) dispatch(ctx context.Context, s *stage, st *state, c cmd) (*plan.Step, error) {
	p.steps++
	step := &plan.Step{
		Kind:   plan.KindConfig,
		Number: p.steps,
		Stage:  st.stage,
		Text:   c.text,
		Pos:    p.pos(c.line),
	}
	if err := p.expand(st, c.cmd); err != nil {
		return nil, err
	}
	var err error
	switch ic := c.cmd.(type) {
	case *instructions.RunCommand:
		step.Kind = plan.KindRun
		step.Run, err = p.run(ctx, s, st, ic)
	case *instructions.CopyCommand:
		step.Kind = plan.KindCopy
		step.Copy, err = p.copyStep(ctx, s, st, copyArgs{
			from: ic.From, params: ic.SourcesAndDest, chown: ic.Chown, chmod: ic.Chmod,
			link: ic.Link, excludes: ic.ExcludePatterns, parents: ic.Parents,
		})
	case *instructions.AddCommand:
		step.Kind = plan.KindCopy
		step.Copy, err = p.copyStep(ctx, s, st, copyArgs{
			add: true, params: ic.SourcesAndDest, chown: ic.Chown, chmod: ic.Chmod,
			link: ic.Link, excludes: ic.ExcludePatterns, checksum: ic.Checksum,
			keepGitDir: ic.KeepGitDir != nil, unpack: ic.Unpack != nil,
		})
	case *instructions.ArgCommand:
		err = p.dispatchArg(st, ic)
	default:
		err = p.dispatchConfig(st, c.cmd)
	}
	if err != nil {
		return nil, err
	}
	step.Config = st.snapshot()
	return step, nil
}

// expand substitutes ARG and ENV references in the instruction's words,
// as BuildKit does: ARG expands its own defaults, heredoc sources of
// COPY/ADD expand unless their delimiter is quoted.
func (p *planner) expand(st *state, c instructions.Command) error {
	e := st.env()
	if _, isArg := c.(*instructions.ArgCommand); !isArg {
		if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
			err := ex.Expand(func(w string) (string, error) {
				r, _, err := p.lex.ProcessWord(w, e)
				return r, err
			})
			if err != nil {
				return err
			}
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		lex := shell.NewLex('\\')
		lex.SkipProcessQuotes = true
		err := ex.ExpandRaw(func(w string) (string, error) {
			r, _, err := lex.ProcessWord(w, e)
			return r, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// dispatchConfig applies an instruction that only changes the config.
func (p *planner) dispatchConfig(st *state, c instructions.Command) error {
	switch ic := c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range ic.Env {
			if _, ok := lookupEnv(st.cfg.Env, kv.Key); ok && st.sharedEnv {
				// setEnv replaces in place: not in an array a step shares.
				st.cfg.Env, st.sharedEnv = slices.Clone(st.cfg.Env), false
			}
			st.cfg.Env = setEnv(st.cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		for _, kv := range ic.Labels {
			st.cfg = st.cfg.WithLabel(kv.Key, kv.Value)
		}
	case *instructions.MaintainerCommand:
		st.author = ic.Maintainer
	case *instructions.WorkdirCommand:
		st.cfg.WorkingDir = resolveWorkdir(st.workdir(), ic.Path)
	case *instructions.UserCommand:
		st.cfg.User = ic.User
	case *instructions.ExposeCommand:
		return p.dispatchExpose(st, ic)
	case *instructions.VolumeCommand:
		for _, v := range ic.Volumes {
			if v == "" {
				return errors.New("VOLUME specified can not be an empty string")
			}
			st.cfg = st.cfg.WithVolume(v)
		}
	case *instructions.CmdCommand:
		args := ic.CmdLine
		if ic.PrependShell {
			args = st.withShell(args)
		}
		st.cfg.Cmd = args
		st.cmdSet = true
	case *instructions.EntrypointCommand:
		args := ic.CmdLine
		if ic.PrependShell {
			args = st.withShell(args)
		}
		st.cfg.Entrypoint = args
		if !st.cmdSet {
			st.cfg.Cmd = nil
		}
	case *instructions.HealthCheckCommand:
		h := ic.Health
		st.healthStart = h.StartInterval
		st.cfg.Healthcheck = &v1.HealthConfig{
			Test:        slices.Clone(h.Test),
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
	case *instructions.StopSignalCommand:
		if err := checkSignal(ic.Signal); err != nil {
			return err
		}
		st.cfg.StopSignal = ic.Signal
	case *instructions.OnbuildCommand:
		st.cfg.OnBuild = append(st.cfg.OnBuild, ic.Expression)
	case *instructions.ShellCommand:
		st.cfg.Shell = slices.Clone(ic.Shell)
	default:
		return fmt.Errorf("unsupported instruction %s", strings.ToUpper(c.Name()))
	}
	return nil
}

// resolveWorkdir joins a WORKDIR argument to the current one.
func resolveWorkdir(cur, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(cur, p)
}

// dispatchExpose adds "port/proto" entries ("80" becomes "80/tcp"; a range
// becomes one entry per port).
func (p *planner) dispatchExpose(st *state, c *instructions.ExposeCommand) error {
	var words []string
	for _, w := range c.Ports {
		ws, err := p.lex.ProcessWords(w, st.env())
		if err != nil {
			return err
		}
		words = append(words, ws...)
	}
	for _, w := range words {
		ports, err := parsePort(w)
		if err != nil {
			return fmt.Errorf("invalid port %q: %w", w, err)
		}
		for _, pt := range ports {
			st.cfg = st.cfg.WithExposedPort(pt)
		}
	}
	return nil
}

// parsePort parses [[ip:]hostPort:]port[-end][/proto]; like BuildKit, any
// ip and host part is dropped.
func parsePort(raw string) ([]string, error) {
	spec, proto, _ := strings.Cut(raw, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid protocol %q", proto)
	}
	if i := strings.LastIndex(spec, ":"); i >= 0 {
		spec = spec[i+1:]
	}
	lo, hi, isRange := strings.Cut(spec, "-")
	start, err := portNumber(lo)
	if err != nil {
		return nil, err
	}
	end := start
	if isRange {
		if end, err = portNumber(hi); err != nil {
			return nil, err
		}
		if end < start {
			return nil, fmt.Errorf("invalid port range %s", spec)
		}
	}
	var out []string
	for n := start; n <= end; n++ {
		out = append(out, strconv.Itoa(n)+"/"+proto)
	}
	return out, nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number between 0 and 65535", s)
	}
	return n, nil
}

// checkSignal accepts a signal number or name (with or without SIG), as
// the runtime will.
func checkSignal(sig string) error {
	if n, err := strconv.Atoi(sig); err == nil {
		if n <= 0 || n > 64 {
			return fmt.Errorf("invalid signal: %s", sig)
		}
		return nil
	}
	s := strings.ToUpper(sig)
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if strings.HasPrefix(s, "SIGRTMIN") || strings.HasPrefix(s, "SIGRTMAX") {
		return nil
	}
	if unix.SignalNum(s) == 0 {
		return fmt.Errorf("invalid signal: %s", sig)
	}
	return nil
}

// cloneConfig deep-copies a config so steps never share slices or maps.
func cloneConfig(c v1.Config) v1.Config {
	c.Env = slices.Clone(c.Env)
	c.Cmd = slices.Clone(c.Cmd)
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Shell = slices.Clone(c.Shell)
	c.OnBuild = slices.Clone(c.OnBuild)
	c.Labels = maps.Clone(c.Labels)
	c.ExposedPorts = maps.Clone(c.ExposedPorts)
	c.Volumes = maps.Clone(c.Volumes)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		c.Healthcheck = &h
	}
	return c
}
