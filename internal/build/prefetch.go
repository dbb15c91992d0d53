package build

import (
	"context"
	"sync"

	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// prefetchContext returns start, which hashes in the background every file
// of the build context that a COPY or ADD of g copies, so that the hashing
// overlaps the steps that run before them and the COPY finds its sums
// computed (source.Tree.Prefetch). The build calls start when a first step
// runs: a build whose steps all hit has nothing to overlap, and hashing
// twice at once would only cost memory and cores. Sources that do not
// select are left for the step to report. stop stops what is still running
// and waits for it.
func prefetchContext(ctx context.Context, g *plan.Graph, tree *source.Tree) (start, stop func()) {
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
	var once sync.Once
	start = func() {
		once.Do(func() {
			if len(sets) == 0 || ctx.Err() != nil {
				return
			}
			// One after the other: each already uses every core.
			wg.Go(func() {
				for _, m := range sets {
					if ctx.Err() != nil {
						return
					}
					tree.Prefetch(ctx, m)
				}
			})
		})
	}
	stop = func() {
		cancel()
		once.Do(func() {}) // no start after stop
		wg.Wait()
	}
	return start, stop
}
