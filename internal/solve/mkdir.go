package solve

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// prepareMkdir is a WORKDIR that makes its directory (plan.KindMkdir); the
// making is execute's, as for the WORKDIRs a RUN or COPY carries.
func (s *Solver) prepareMkdir(step *plan.Step, cur *state) (*prepared, error) {
	if len(step.Mkdirs) != 1 {
		return nil, fmt.Errorf("WORKDIR step with %d directories, want 1", len(step.Mkdirs))
	}
	m := step.Mkdirs[0]
	in := cache.MkdirInput{Parent: cur.key, Dir: m.Dir, User: m.User, SourceDateEpoch: s.epoch()}
	key := cache.MkdirKey(in)
	return &prepared{
		key:     func(context.Context) (cache.Key, error) { return key, nil },
		inputs:  in.Inputs(),
		exec:    func(context.Context, string) error { return nil },
		release: func() {},
	}, nil
}

// dirInputs are the key inputs of a step's WORKDIR directories.
func dirInputs(ms []plan.Mkdir) []cache.DirInput {
	var out []cache.DirInput
	for _, m := range ms {
		out = append(out, cache.DirInput{Dir: m.Dir, User: m.User})
	}
	return out
}

// makeWorkdirs makes, in root, the directories of the WORKDIRs a step
// carries, in order: BuildKit's mkdir -p, the directories it makes owned
// by the USER at that WORKDIR, resolved as COPY --chown resolves a user
// (a USER the image does not have fails, as in BuildKit).
func makeWorkdirs(root string, ms []plan.Mkdir) error {
	for _, m := range ms {
		var uid, gid uint32
		if m.User != "" {
			var err error
			if uid, gid, err = chownIDs(root, m.User); err != nil {
				return &source.InputError{Err: fmt.Errorf("resolving USER %s for WORKDIR %s: %w", m.User, m.Dir, err)}
			}
		}
		if err := exec.MakeDir(root, m.Dir, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
