package solve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
)

// prepared is a filesystem step whose inputs are resolved.
type prepared struct {
	// quick, when set, is a key known without reading any layer: for COPY
	// --from, the source stage's key stands in for the content digest, so
	// a cached step on top of a cached stage needs no bytes at all.
	quick cache.Key
	// key computes the step's content key (DESIGN.md §3); it may read
	// layers (COPY --from hashes the selected files).
	key func(ctx context.Context) (cache.Key, error)
	// inputs are the digests of the key's inputs, set once key has
	// returned.
	inputs []cache.Input
	// fileSums, for COPY and ADD, computes the bounded per-path digests
	// of the sources; files holds them once a miss has asked.
	fileSums func(ctx context.Context) ([]cache.FileSum, error)
	files    []cache.FileSum
	// exec performs the step in a writable rootfs.
	exec    func(ctx context.Context, root string) error
	release func()
}

// solveStep solves one RUN, COPY, ADD or WORKDIR that makes its directory: key, then a hit from the store or
// an imported cache, or an execution.
func (s *Solver) solveStep(ctx context.Context, step *plan.Step, cur *state, runs map[*plan.Stage]*stageRun) (*state, error) {
	var p *prepared
	var err error
	switch step.Kind {
	case plan.KindRun:
		p, err = s.prepareRun(ctx, step, cur, runs)
	case plan.KindMkdir:
		p, err = s.prepareMkdir(step, cur)
	default:
		p, err = s.prepareCopy(ctx, step, cur, runs)
	}
	if err != nil {
		return nil, stepError(step, err)
	}
	defer func() { p.release() }() // p.release may be set late (lazy sources)

	var full cache.Key
	lockKey := p.quick
	if lockKey == "" {
		if full, err = p.key(ctx); err != nil {
			return nil, stepError(step, err)
		}
		lockKey = full
	}
	// Two builds of the same step wait for one another instead of both
	// running it; the second then finds the first's record.
	unlock, err := s.opts.Store.Lock(ctx, "key-"+lockKey.Hex())
	if err != nil {
		return nil, stepError(step, err)
	}
	// A step that runs hands the lock to its background half, which
	// holds it until the record is stored.
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()

	ev := progress.Event{Step: step.Number, Total: s.total, Stage: s.stageLabel(step.Stage), Text: step.Text}
	noCache := s.noCache(step)
	// --no-cache still reuses what this build ran itself (a step two
	// platforms share runs once).
	if (!noCache || s.ranHere(p.quick)) && p.quick != "" {
		if next, src, ok := s.find(step, cur, p.quick); ok {
			return s.cached(ev, src, next), nil
		}
	}
	if full == "" {
		if full, err = p.key(ctx); err != nil {
			return nil, stepError(step, err)
		}
	}
	if !noCache || s.ranHere(full) {
		if next, src, ok := s.find(step, cur, full); ok {
			if p.quick != "" && p.quick != next.key {
				// Known by the quick key from now on, here and in exports.
				s.alias(p.quick, next)
				next.records = append(next.records, next.records[0].AliasAs(p.quick))
			}
			return s.cached(ev, src, next), nil
		}
	}
	keys := []cache.Key{full}
	if p.quick != "" {
		keys = append(keys, p.quick)
	}
	s.log.Debug("step miss", "step", step.Number, "text", step.Text, "key", full, "quick", p.quick, "parent", cur.key)
	if p.fileSums != nil {
		if p.files, err = p.fileSums(ctx); err != nil {
			// Explanations are best effort; the step itself reports
			// what is wrong with its sources.
			s.log.Debug("digesting files for the record", "step", step.Number, "err", err)
		}
	}
	ev.Kind = progress.StepStart
	ev.Miss = s.explain(step, cur, p, keys)
	s.noteMiss(ev.Miss)
	s.emit(ev)
	start := s.opts.Now()
	next, finish, err := s.execute(ctx, step, cur, keys, p)
	if err != nil {
		fail := ev
		fail.Kind, fail.Err, fail.Miss = progress.StepFailed, err.Error(), nil
		var se *StepError
		if errors.As(err, &se) {
			fail.ExitCode = se.ExitCode
			fail.Err = se.Err.Error()
		}
		s.emit(fail)
		return nil, stepError(step, err)
	}
	held := unlock
	unlock = nil
	s.count(false)
	for _, k := range keys {
		s.ran.Store(k, true)
	}
	next.missed = step.Number
	ev.Kind, ev.Duration, ev.Miss = progress.StepDone, s.opts.Now().Sub(start), nil
	s.noteTime(ev)
	s.emit(ev)
	// After the done event, which a failure in the background follows.
	s.background(func(ctx context.Context) error {
		defer held()
		return finish(ctx)
	})
	return next, nil
}

// ranHere reports whether this solver executed the step of key (in any
// Solve); "" never.
func (s *Solver) ranHere(key cache.Key) bool {
	if key == "" {
		return false
	}
	_, ok := s.ran.Load(key)
	return ok
}

// noCache reports whether step may not be a cache hit: --no-cache, or its
// stage is one of NoCacheStages.
func (s *Solver) noCache(step *plan.Step) bool {
	return s.opts.NoCache || s.noCacheStage(step) != ""
}

// noCacheStage is the name step's stage has in NoCacheStages, or "".
func (s *Solver) noCacheStage(step *plan.Step) string {
	if step.Stage == nil || step.Stage.Name == "" {
		return ""
	}
	for _, n := range s.opts.NoCacheStages {
		if strings.EqualFold(n, step.Stage.Name) {
			return n
		}
	}
	return ""
}

// cached reports a hit and returns its state.
func (s *Solver) cached(ev progress.Event, src string, next *state) *state {
	s.log.Debug("step hit", "step", ev.Step, "text", ev.Text, "key", next.key, "source", src)
	s.count(true)
	ev.Kind, ev.Source = progress.StepCached, src
	s.emit(ev)
	return next
}

// alias records next's result under one more key, so the next build finds
// it by that key too.
func (s *Solver) alias(key cache.Key, next *state) {
	if len(next.records) == 0 {
		return
	}
	s.putRecords(next.layers, next.records[0].AliasAs(key))
}

// find looks key up in the local store, then in the imported caches.
func (s *Solver) find(step *plan.Step, cur *state, key cache.Key) (*state, string, bool) {
	if next, ok := s.lookup(step, cur, key); ok {
		return next, "local state", true
	}
	if next, src, ok := s.lookupImported(step, cur, key); ok {
		return next, src.Name, true
	}
	return nil, "", false
}

// lookup returns the state after step from a local record, if there is a
// usable one: same parent chain, and the new layer's blob in the store.
func (s *Solver) lookup(step *plan.Step, cur *state, key cache.Key) (*state, bool) {
	rec, err := s.opts.Store.Record(key)
	if err != nil {
		return nil, false
	}
	n := len(cur.layers)
	if len(rec.Layers) != n+1 {
		return nil, false
	}
	for i, l := range cur.layers {
		if rec.Layers[i].DiffID != l.desc.DiffID {
			return nil, false
		}
	}
	top := rec.Layers[n]
	if !s.opts.Store.HasBlob(top.Digest) || s.imports.isBad(top.Digest) {
		return nil, false
	}
	ref, err := s.storeLayer(top)
	if err != nil {
		return nil, false
	}
	layers := append(append([]layerRef(nil), cur.layers...), ref)
	result := *rec
	result.Key = rec.ResultKey()
	if s.opts.SourceDateEpoch != nil {
		result.Created = *s.opts.SourceDateEpoch
	}
	return cur.withLayers(step, result, []cache.Key{key}, layers), true
}

// execute runs a prepared step on a snapshot of cur, commits the snapshot
// and returns the state after it, whose new layer is pending, and finish,
// which compresses the layer and records the result under every key in
// keys (the first is the canonical one, the others are recorded as its
// aliases). The caller must call finish (it releases the rootfs), in the
// background or not.
func (s *Solver) execute(ctx context.Context, step *plan.Step, cur *state, keys []cache.Key, p *prepared) (*state, func(context.Context) error, error) {
	t := newPhases()
	defer func() { s.log.Debug("step phases", append([]any{"step", step.Number}, t.attrs()...)...) }()
	s.prepareRuns(step)
	if err := s.unpack(ctx, cur); err != nil {
		return nil, nil, err
	}
	t.mark("unpack")
	active, err := s.opts.Snapshotter.Prepare(ctx, cur.chain())
	if err != nil {
		return nil, nil, fmt.Errorf("preparing rootfs: %w", err)
	}
	handed := false
	defer func() {
		if !handed {
			active.Release()
			t.mark("release")
		}
	}()
	if err := makeWorkdirs(active.Root(), step.Mkdirs); err != nil {
		return nil, nil, err
	}
	t.mark("prepare")
	if err := p.exec(ctx, active.Root()); err != nil {
		return nil, nil, err
	}
	t.mark("exec")
	diffID, err := s.hashDiff(ctx, active)
	if err != nil {
		return nil, nil, err
	}
	t.mark("hash")
	chain := layer.ChainIDs(append(cur.diffIDs(), diffID))
	if err := active.Commit(ctx, chain[len(chain)-1]); err != nil {
		return nil, nil, fmt.Errorf("keeping snapshot: %w", err)
	}
	t.mark("commit")
	created := s.opts.Now().UTC().Truncate(time.Second)
	if s.opts.SourceDateEpoch != nil {
		created = *s.opts.SourceDateEpoch
	}
	rec := cache.Record{
		Key:       keys[0],
		Parent:    cur.key,
		Inputs:    p.inputs,
		CreatedBy: step.Text,
		Created:   created,
		Stage:     step.Stage.Label(),
		Step:      stepID(step),
		Base:      cur.image,
		Files:     p.files,
	}
	ref := layerRef{desc: cache.Layer{DiffID: diffID}, pending: &pendingLayer{done: make(chan struct{})}}
	layers := append(append([]layerRef(nil), cur.layers...), ref)
	job := &layerJob{step: step, active: active, diffID: diffID, chainID: chain[len(chain)-1], layers: layers, rec: rec, keys: keys}
	handed = true
	return cur.withLayers(step, rec, keys[1:], layers), func(ctx context.Context) error { return s.finishLayer(ctx, job) }, nil
}

// unpack makes sure every layer of st is unpacked in the snapshotter,
// reading (and for lazy layers, fetching) only the missing ones.
func (s *Solver) unpack(ctx context.Context, st *state) error {
	chain := st.chain()
	for i, id := range chain {
		if s.opts.Snapshotter.Has(id) {
			continue
		}
		// A layer this solve made is committed, so it is only missing
		// when something removed it: then it is unpacked from its blob.
		l, err := st.layers[i].ready(ctx)
		if err != nil {
			return err
		}
		if err := s.unpackLayer(ctx, id, chain[:i], l); err != nil {
			return fmt.Errorf("unpacking layer %s: %w", st.layers[i].desc.Digest, err)
		}
	}
	return nil
}

func (s *Solver) unpackLayer(ctx context.Context, id v1.Hash, parents []v1.Hash, l layerRef) error {
	v, imported := s.imported.Load(l.desc.Digest)
	if imported {
		// Fetch an imported layer with the step's context (Ctrl-C stops it).
		if err := v.(*importedLayer).ensure(ctx); err != nil {
			return err
		}
	} else if !s.opts.Store.HasBlob(l.desc.Digest) {
		// A base image layer: through the store, so that a download whose
		// bytes are wrong or stop short is fetched again, not fatal.
		open := func(context.Context) (io.ReadCloser, error) { return l.layer.Compressed() }
		if err := s.fetchBlob(ctx, l.desc, open, nil); err != nil {
			return err
		}
	}
	if s.opts.Store.HasBlob(l.desc.Digest) {
		sl, err := s.storeLayer(l.desc)
		if err != nil {
			return err
		}
		l = sl
	}
	rc, err := l.layer.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	err = s.opts.Snapshotter.UnpackChecked(ctx, id, l.desc.DiffID, parents, rc)
	if err != nil && ctx.Err() == nil && (imported || errors.Is(err, layer.ErrUnsafePath)) {
		// A cached layer that cannot be applied (a ../ entry, say) is a
		// miss like a corrupt one: the step that made it is rebuilt.
		src := "local state"
		if imported {
			src = v.(*importedLayer).src.Name
		}
		return &BadBlobError{Digest: l.desc.Digest, Source: src, Err: err}
	}
	return err
}

// StepError is a step that failed, with where it is and what it printed
// last.
type StepError struct {
	// Step is the step that failed.
	Step *plan.Step
	// Platform is the step's platform when the build is of several
	// ("linux/arm64"), "" otherwise: the message names it.
	Platform string
	// ExitCode is the RUN's exit code, 0 if the step did not get that far.
	ExitCode int
	// Tail holds the last lines the step printed.
	Tail []string
	// Err is the cause.
	Err error
}

// Error is the message: one line.
func (e *StepError) Error() string {
	text := e.Step.Text
	if e.Platform != "" {
		text = "[" + e.Platform + "] " + text
	}
	msg := fmt.Sprintf("%s:%d: %s: %v", e.Step.Pos.File, e.Step.Pos.Line, text, e.Err)
	for _, l := range e.Tail {
		msg += "\n  | " + l
	}
	return msg
}

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

// stepError attaches the step to err, unless it already carries one.
func stepError(step *plan.Step, err error) error {
	var se *StepError
	if errors.As(err, &se) {
		if se.Step == nil {
			se.Step = step
		}
		return err
	}
	return &StepError{Step: step, Err: err}
}
