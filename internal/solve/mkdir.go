package solve

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// prepareMkdir is a WORKDIR that makes its directory (plan.KindMkdir):
// BuildKit's mkdir -p, the directories it makes owned by the USER at the
// WORKDIR, resolved as COPY --chown resolves a user.
func (s *Solver) prepareMkdir(step *plan.Step, cur *state) *prepared {
	m := step.Mkdir
	in := cache.MkdirInput{Parent: cur.key, Dir: m.Dir, User: m.User, SourceDateEpoch: s.epoch()}
	key := cache.MkdirKey(in)
	p := &prepared{key: func(context.Context) (cache.Key, error) { return key, nil }, inputs: in.Inputs(), release: func() {}}
	p.exec = func(_ context.Context, root string) error {
		var uid, gid uint32
		if m.User != "" {
			var err error
			if uid, gid, err = chownIDs(root, m.User); err != nil {
				return &source.InputError{Err: fmt.Errorf("resolving USER %s for WORKDIR %s: %w", m.User, m.Dir, err)}
			}
		}
		return exec.MakeDir(root, m.Dir, uid, gid)
	}
	return p
}
