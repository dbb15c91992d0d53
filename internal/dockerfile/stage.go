package dockerfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kiln-build/kiln/internal/plan"
)

// scratchName is the FROM argument that means an empty base.
const scratchName = "scratch"

// resolveStages expands every FROM with the global ARGs, decides what each
// stage starts from, and finds the stages each one reads (COPY --from, RUN
// --mount from=). It checks every stage, needed or not, so that a broken
// reference is reported whatever the target.
func (p *planner) resolveStages() error {
	targetName := p.opts.Target
	if targetName == "" {
		targetName = p.stages[len(p.stages)-1].name
	}
	if err := p.globalArgs(targetName); err != nil {
		return err
	}
	for _, s := range p.stages {
		if err := p.resolveBase(s); err != nil {
			return err
		}
		if err := p.triggerDeps(s); err != nil {
			return err
		}
		for _, c := range s.cmds {
			froms, err := p.commandFroms(c)
			if err != nil {
				return p.errAt(c.line, err)
			}
			for _, f := range froms {
				dep, _, err := p.resolveFrom(s, f.from)
				if err != nil {
					return p.errAt(c.line, fmt.Errorf("%s: %w", f.flag, err))
				}
				if dep != nil {
					s.deps = append(s.deps, dep)
				}
			}
		}
	}
	return nil
}

// triggerDeps adds to s the stages that the ONBUILD triggers of its base
// stage read (ONBUILD COPY --from=x): they fire in s, so s needs them, as
// BuildKit has it.
func (p *planner) triggerDeps(s *stage) error {
	if s.baseStage == nil {
		return nil
	}
	var exprs []string
	for _, c := range s.baseStage.cmds {
		if oc, ok := c.cmd.(*instructions.OnbuildCommand); ok {
			exprs = append(exprs, oc.Expression)
		}
	}
	if len(exprs) == 0 {
		return nil
	}
	trigs, err := p.parseTriggers(s, exprs)
	if err != nil {
		return err
	}
	for _, c := range trigs {
		froms, err := p.commandFroms(c)
		if err != nil {
			return p.errAt(s.line, err)
		}
		for _, f := range froms {
			if dep, _, err := p.resolveFrom(s, f.from); err == nil && dep != nil {
				s.deps = append(s.deps, dep)
			}
		}
	}
	return nil
}

// resolveBase expands FROM's argument and --platform and decides the base.
func (p *planner) resolveBase(s *stage) error {
	base, _, err := p.lex.ProcessWord(s.from.BaseName, p.global)
	if err != nil {
		return p.errAt(s.line, fmt.Errorf("expanding FROM %s: %w", s.from.BaseName, err))
	}
	if base == "" {
		return p.errorf(s.line, "base name (%s) should not be blank", s.from.BaseName)
	}
	s.baseName = base
	s.platform = p.opts.Platform
	explicit := false
	if v := s.from.Platform; v != "" {
		pl, _, err := p.lex.ProcessWord(v, p.global)
		if err != nil {
			return p.errAt(s.line, fmt.Errorf("expanding --platform %s: %w", v, err))
		}
		if pl == "" {
			return p.errorf(s.line, "empty platform value from expression %s", v)
		}
		if s.platform, err = plan.ParsePlatform(pl); err != nil {
			return p.errAt(s.line, fmt.Errorf("FROM --platform: %w", err))
		}
		if s.platform.OS != "linux" {
			return p.errorf(s.line, "FROM --platform: platform %q is not supported: kiln builds linux images only", pl)
		}
		explicit = true
	}
	// A stage built on another stage is for that stage's platform, unless
	// its FROM says otherwise.
	defer func() {
		if s.baseStage != nil && !explicit {
			s.platform = s.baseStage.platform
		}
	}()
	if name, nc, ok := p.namedContext(base); ok {
		if nc.Image == "" {
			s.scratch, s.baseCtx = true, name
			return nil
		}
		base = nc.Image
		s.baseName = base
	}
	if base == scratchName {
		s.scratch = true
		return nil
	}
	for _, o := range p.stages {
		if o.name != "" && o.name == base {
			if o.index >= s.index {
				return p.errorf(s.line, "FROM %s: stage %q is not defined before this stage", base, base)
			}
			s.baseStage = o
			s.deps = append(s.deps, o)
			return nil
		}
	}
	if i, err := strconv.Atoi(base); err == nil {
		if i < 0 || i >= s.index {
			return p.errorf(s.line, "FROM %s: stage index %d is not an earlier stage", base, i)
		}
		s.baseStage = p.stages[i]
		s.deps = append(s.deps, s.baseStage)
		return nil
	}
	if _, err := name.ParseReference(base); err != nil {
		return p.errAt(s.line, fmt.Errorf("FROM %s: invalid image reference: %w", base, err))
	}
	return nil
}

// from is a --from value and the flag it came from.
type from struct {
	flag string
	from string
}

// commandFroms lists the --from values of COPY and of RUN mounts, as
// written. Variable expansion is not supported there (as in BuildKit).
func (p *planner) commandFroms(c cmd) ([]from, error) {
	var out []from
	switch ic := c.cmd.(type) {
	case *instructions.CopyCommand:
		if ic.From == "" {
			return nil, nil
		}
		res, _, err := p.lex.ProcessWord(ic.From, shell.EnvsFromSlice(nil))
		if err != nil || res != ic.From {
			return nil, errors.New("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
		}
		out = append(out, from{flag: "COPY --from=" + ic.From, from: ic.From})
	case *instructions.RunCommand:
		// Before Expand, BuildKit's mount parser fills in only "from".
		for _, m := range instructions.GetMounts(ic) {
			if m.From != "" {
				out = append(out, from{flag: "RUN --mount from=" + m.From, from: m.From})
			}
		}
	}
	return out, nil
}

// resolveFrom finds what a --from value in stage s names: a named build
// context, an earlier stage (by name, case-insensitive, or by index) or
// else an image reference. A directory build context returns nil and "".
func (p *planner) resolveFrom(s *stage, v string) (*stage, string, error) {
	if _, nc, ok := p.namedContext(v); ok {
		return nil, nc.Image, nil
	}
	for _, o := range p.stages {
		if o.name != "" && strings.EqualFold(o.name, v) {
			if o.index >= s.index {
				return nil, "", fmt.Errorf("stage %q must be defined before the stage that uses it (%s)", o.name, label(s))
			}
			return o, "", nil
		}
	}
	if i, err := strconv.Atoi(v); err == nil {
		if i < 0 || i >= len(p.stages) {
			return nil, "", fmt.Errorf("invalid stage index %d", i)
		}
		if i >= s.index {
			return nil, "", fmt.Errorf("stage %d must be defined before the stage that uses it (%s)", i, label(s))
		}
		return p.stages[i], "", nil
	}
	if _, err := name.ParseReference(v); err != nil {
		return nil, "", fmt.Errorf("%q is neither a stage name nor a valid image reference", v)
	}
	return nil, v, nil
}

// label names a stage the way users know it.
func label(s *stage) string {
	if s.name != "" {
		return s.name
	}
	return "stage-" + strconv.Itoa(s.index)
}

// target is the --target stage, or the last one.
func (p *planner) target() (*stage, error) {
	if p.opts.Target == "" {
		return p.stages[len(p.stages)-1], nil
	}
	for _, s := range p.stages {
		if s.name != "" && strings.EqualFold(s.name, p.opts.Target) {
			return s, nil
		}
	}
	var names []string
	for _, s := range p.stages {
		if s.name != "" {
			names = append(names, s.name)
		}
	}
	if near := nearest(p.opts.Target, names); near != "" {
		return nil, p.errorf(0, "target stage %q could not be found (did you mean %s?)", p.opts.Target, near)
	}
	return nil, p.errorf(0, "target stage %q could not be found", p.opts.Target)
}

// nearest is the name closest to v by edit distance (case-insensitive),
// or "" when none is closer than half of v's length: the hint BuildKit
// gives for an unknown --target.
func nearest(v string, names []string) string {
	best, bestDist := "", len(v)/2
	for _, n := range names {
		if d := editDistance(strings.ToLower(v), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// needed is the set of stages target depends on, itself included.
func (p *planner) needed(target *stage) map[*stage]bool {
	seen := map[*stage]bool{}
	var walk func(*stage)
	walk = func(s *stage) {
		if seen[s] {
			return
		}
		seen[s] = true
		for _, d := range s.deps {
			walk(d)
		}
	}
	walk(target)
	return seen
}
