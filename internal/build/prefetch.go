package build

import (
	"context"
	"sync"

	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// prefetchContext hashes in the background every file of the build
// context that a COPY or ADD of g copies, from the moment the build is
// planned, so that the hashing overlaps the cache imports, the steps before
// the first COPY and the other COPYs' own hashing, and each COPY finds its
// sums computed or being computed (source.Tree.Prefetch; a file is hashed
// once per Tree). Every such COPY needs its digest for its cache key,
// whether it hits or runs, so nothing is hashed that the build would not
// hash anyway. Sources that do not select are left for the step to report.
// stop stops what is still running and waits for it.
func prefetchContext(ctx context.Context, g *plan.Graph, tree *source.Tree) (stop func()) {
	var sets [][]source.Match
	for _, st := range g.Stages {
		for _, step := range st.Steps {
			c := step.Copy
			if step.Kind != plan.KindCopy || c == nil || c.FromStage != nil || c.FromImage != nil || c.FromContext != "" || len(c.Inline) > 0 {
				continue
			}
			if m, err := tree.Select(c.Sources); err == nil {
				sets = append(sets, m)
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if len(sets) > 0 {
		// One after the other: each already uses every core.
		wg.Go(func() {
			for _, m := range sets {
				if ctx.Err() != nil {
					return
				}
				tree.Prefetch(ctx, m)
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}
