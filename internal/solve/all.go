package solve

import (
	"context"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/plan"
)

// SolveAll solves several graphs at once, such as the platforms of one
// build: every stage of every graph in parallel, as far as their
// dependencies allow, and returns each graph's target result in order. A
// step two graphs share (a FROM --platform=$BUILDPLATFORM stage planned
// for each platform) is run by one and a hit for the other: the store's
// lock per key makes the second wait for the first's record. The graphs'
// step numbers should be distinct (progress events name steps by number).
// Stats, Misses and Slowest of every result count all the graphs together.
func (s *Solver) SolveAll(ctx context.Context, gs []*plan.Graph) ([]*Result, error) {
	s.stats = Stats{}
	s.misses, s.times = nil, nil
	s.total = 0
	s.multi = len(gs) > 1
	runs := map[*plan.Stage]*stageRun{}
	for _, g := range gs {
		s.total = max(s.total, g.Steps)
		for _, st := range g.Stages {
			runs[st] = &stageRun{stage: st, done: make(chan struct{})}
		}
	}
	// The background work of the steps (a layer's compression, its
	// record) ends with the caller's ctx or its own failure, which cancels
	// the stages too; a failed stage cancels only the other stages.
	s.jobs = newJobs(ctx)
	eg, ctx := errgroup.WithContext(s.jobs.ctx)
	for _, g := range gs {
		for _, st := range g.Stages {
			r := runs[st]
			eg.Go(func() error {
				defer close(r.done)
				r.state, r.err = s.solveStage(ctx, r.stage, runs)
				return r.err
			})
		}
	}
	err := eg.Wait()
	if jobErr := s.jobs.wait(); jobErr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		// A stage cancelled by a failed job reports the job's failure.
		err = jobErr
	}
	if err != nil {
		var se *StepError
		if s.multi && errors.As(err, &se) && se.Step != nil && se.Step.Stage != nil {
			se.Platform = plan.FormatPlatform(stagePlatform(se.Step.Stage))
		}
		return nil, err
	}
	out := make([]*Result, len(gs))
	for i, g := range gs {
		out[i] = s.result(g, runs)
	}
	return out, nil
}

// result is the Result of g's target once its stages are solved.
func (s *Solver) result(g *plan.Graph, runs map[*plan.Stage]*stageRun) *Result {
	t := runs[g.Target].state
	res := &Result{Key: t.key, History: t.history.slice(), Config: t.config.Image(), Stats: s.stats, target: t, layers: map[v1.Hash]v1.Layer{}, solver: s,
		Misses: s.sortedMisses(), Slowest: s.slowestSteps()}
	for _, l := range t.layers {
		res.Layers = append(res.Layers, l.final().layer)
	}
	seen := map[cache.Key]bool{}
	for _, st := range g.Stages {
		final := runs[st].state
		for _, l := range finalLayers(final.layers) {
			res.layers[l.desc.Digest] = l.layer
		}
		var lineage [][]cache.Record
		for x := final; x != nil; x = x.prev {
			lineage = append(lineage, x.finalRecords())
		}
		for i := len(lineage) - 1; i >= 0; i-- {
			for _, e := range lineage[i] {
				if !seen[e.Key] {
					seen[e.Key] = true
					res.all = append(res.all, e)
				}
			}
		}
	}
	return res
}
