package dockerfile

import (
	"strings"

	"github.com/kiln-build/kiln/internal/plan"
)

// NamedContext is one --build-context NAME=…: a registry image or a
// directory. As in buildx, a named context wins over a stage or an image
// of the same name wherever FROM, COPY --from or RUN --mount from= names it.
type NamedContext struct {
	// Image is the registry reference of a docker-image:// context; ""
	// means a directory context, which the solver reads by name
	// (plan.Copy.FromContext, plan.Mount.FromContext).
	Image string
}

// namedContext finds the --build-context that v names: exactly, or
// case-insensitively as stage names are matched.
func (p *planner) namedContext(v string) (string, NamedContext, bool) {
	if nc, ok := p.opts.Contexts[v]; ok {
		return v, nc, true
	}
	for name, nc := range p.opts.Contexts {
		if strings.EqualFold(name, v) {
			return name, nc, true
		}
	}
	return "", NamedContext{}, false
}

// contextBaseStep is the first step of a stage whose FROM names a
// directory context: the directory's files copied onto scratch, which is
// the root filesystem BuildKit gives such a stage.
func (p *planner) contextBaseStep(st *state, name string, line int) *plan.Step {
	p.steps++
	return &plan.Step{
		Kind:   plan.KindCopy,
		Number: p.steps,
		Stage:  st.stage,
		Text:   "FROM " + name + " (build context)",
		Pos:    p.pos(line),
		Copy:   &plan.Copy{FromContext: name, Sources: []string{"."}, Dest: "/"},
		Config: st.snapshot(),
	}
}
