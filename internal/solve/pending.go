package solve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/snapshot"
)

// A step's layer is finished in the background.
//
// A step that ran reads its diff twice. The first read only hashes the tar
// (its diff ID, all the chain ID of the snapshot needs), the snapshot is
// committed, and the next step starts on it at once. The second read, in
// a goroutine of the solve, compresses the same tar into the store and
// checks that it hashes to the same diff ID (a committed snapshot is never
// written to and the tar depends only on the tree, so a difference is a
// bug, which fails the build); then LayerDone is told, and the step's
// record is written. A record names the compressed digests of all its
// layers, so it waits for the layers below it too; so does everything
// that needs a digest (exports, the image): SolveAll returns only once
// every layer is finished. The step's key lock is held until its record is
// stored, so a build waiting on it still finds the record. Reading the
// diff twice costs a hash pass over the layer, a small part of compressing
// it, and keeps no copy of the tar.

// compressParallelism bounds the layers compressed at once beside the
// steps: two, so that a small layer need not wait for a big one; more
// would cost only memory, since each already uses every core
// (layer.Compress).
const compressParallelism = 2

// pendingLayer is a layer this solve made whose compression runs in the
// background: until done is closed, its layerRef's desc holds only the
// diff ID.
type pendingLayer struct {
	done chan struct{}
	// ref (the complete layer) or err is set before done is closed.
	ref layerRef
	err error
}

// ready returns l complete, waiting for its compression if it is pending;
// the error is the compression's (a *StepError naming the step that made
// the layer) or ctx's.
func (l layerRef) ready(ctx context.Context) (layerRef, error) {
	if l.pending == nil {
		return l, nil
	}
	select {
	case <-l.pending.done:
	case <-ctx.Done():
		return layerRef{}, ctx.Err()
	}
	if l.pending.err != nil {
		return layerRef{}, l.pending.err
	}
	return l.pending.ref, nil
}

// readyLayers is ready of every layer of ls.
func readyLayers(ctx context.Context, ls []layerRef) ([]layerRef, error) {
	out := make([]layerRef, len(ls))
	for i, l := range ls {
		r, err := l.ready(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// final returns l complete. Call it only after the solve's background work
// ended without an error (SolveAll returned a result).
func (l layerRef) final() layerRef {
	if l.pending == nil {
		return l
	}
	return l.pending.ref
}

func finalLayers(ls []layerRef) []layerRef {
	out := make([]layerRef, len(ls))
	for i, l := range ls {
		out[i] = l.final()
	}
	return out
}

func anyPending(ls []layerRef) bool {
	for _, l := range ls {
		if l.pending != nil {
			return true
		}
	}
	return false
}

// finalRecords returns st's records with the compressed descriptors of
// their layers (st's layers, see withLayers); as final, only once the
// solve's background work has ended.
func (st *state) finalRecords() []cache.Record {
	if !anyPending(st.layers) {
		return st.records
	}
	descs := descsOf(finalLayers(st.layers))
	out := make([]cache.Record, len(st.records))
	for i, r := range st.records {
		r.Layers = descs
		out[i] = r
	}
	return out
}

// jobs is the background work of one SolveAll.
type jobs struct {
	// ctx is the jobs' context. It ends when SolveAll's caller cancels or
	// a job fails, but not when a stage fails: the layers of the steps
	// that ran before a failed step are still finished and recorded, so
	// that the next build hits them. (A context kept in a struct, which
	// STYLE.md advises against: it lives for one SolveAll, and it is the
	// context of work that outlives the step that starts it.)
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error // the first job's error
}

func newJobs(ctx context.Context) *jobs {
	ctx, cancel := context.WithCancelCause(ctx)
	return &jobs{ctx: ctx, cancel: cancel}
}

// wait waits for every job and returns the first error of one.
func (j *jobs) wait() error {
	j.wg.Wait()
	j.cancel(nil)
	return j.err
}

// background runs fn beside the steps as part of the current SolveAll, in
// the jobs' context (see jobs): an error fails the solve and cancels its
// stages, and SolveAll returns only once fn has returned.
func (s *Solver) background(fn func(ctx context.Context) error) {
	j := s.jobs
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		if err := fn(j.ctx); err != nil {
			j.once.Do(func() {
				j.err = err
				j.cancel(err)
			})
		}
	}()
}

// putRecords stores recs, whose chain is layers, as soon as every layer
// is complete: now if none is pending, else in the background. It is best
// effort (a record that is not stored costs a lookup next time), for hits
// that record one more key.
func (s *Solver) putRecords(layers []layerRef, recs ...cache.Record) {
	put := func(ls []layerRef) {
		for _, r := range recs {
			r.Layers = descsOf(ls)
			_ = s.opts.Store.PutRecord(&r) // best effort, see above
		}
	}
	if !anyPending(layers) {
		put(layers)
		return
	}
	s.background(func(ctx context.Context) error {
		ls, err := readyLayers(ctx, layers)
		if err == nil {
			put(ls)
		}
		// A failed layer is that layer's step's error to report.
		return nil
	})
}

// layerJob is the background half of a step that ran: compress and store
// its layer, record its result, tell LayerDone.
type layerJob struct {
	step   *plan.Step
	active *snapshot.Active
	// diffID is the first read's, and chainID what the snapshot was
	// committed under.
	diffID, chainID v1.Hash
	// layers are the new state's, the last one pending (this job's).
	layers []layerRef
	// rec is the step's record, with its Layers to be filled in, stored
	// under every key of keys (the first canonical, the others aliases).
	rec  cache.Record
	keys []cache.Key
}

// finishLayer does j. Whatever happens, it releases j's rootfs and ends
// the pending layer, so nothing waits on it forever.
func (s *Solver) finishLayer(ctx context.Context, j *layerJob) (err error) {
	pl := j.layers[len(j.layers)-1].pending
	t := newPhases()
	defer func() {
		s.log.Debug("layer phases", append([]any{"step", j.step.Number}, t.attrs()...)...)
	}()
	finished, below := false, false
	defer func() {
		if err != nil && !below && ctx.Err() == nil {
			// The step was reported done and counted: now it is
			// reported failed, and failed steps are not counted.
			s.uncount()
			s.emit(progress.Event{Kind: progress.StepFailed, Step: j.step.Number, Total: s.total,
				Stage: s.stageLabel(j.step.Stage), Text: j.step.Text, Err: err.Error()})
		}
		if err != nil {
			err = stepError(j.step, err)
		}
		if !finished {
			pl.err = err
			close(pl.done)
		}
	}()
	defer j.active.Release()
	select {
	case s.compressing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	t.mark("queue")
	desc, err := s.commitDiff(ctx, j.active, j.diffID)
	<-s.compressing
	if errors.Is(err, errDiffChanged) {
		// The snapshot was published under the first read's chain ID: a
		// later build must not mount a tree that does not hash to it.
		if rerr := s.opts.Snapshotter.Remove(context.WithoutCancel(ctx), j.chainID); rerr != nil {
			s.log.Warn("removing a snapshot whose diff changed", "chain", j.chainID, "error", rerr)
		}
	}
	if err != nil {
		return err
	}
	t.mark("compress")
	ref, err := s.storeLayer(desc)
	if err != nil {
		return err
	}
	pl.ref, finished = ref, true
	close(pl.done)
	if s.opts.LayerDone != nil {
		s.opts.LayerDone(j.step, ref.layer)
	}
	ls, err := readyLayers(ctx, j.layers)
	if err != nil {
		below = true // a layer below failed: its step reports it
		return err
	}
	t.mark("below")
	j.rec.Layers = descsOf(ls)
	for i, k := range j.keys {
		r := j.rec
		if i > 0 {
			r = j.rec.AliasAs(k)
		}
		if err := s.opts.Store.PutRecord(&r); err != nil {
			return fmt.Errorf("recording step result: %w", err)
		}
	}
	t.mark("record")
	return nil
}

// hashDiff is the first read of active's diff: the tar's diff ID.
func (s *Solver) hashDiff(ctx context.Context, active *snapshot.Active) (v1.Hash, error) {
	h := sha256.New()
	if err := active.WriteDiff(ctx, h, s.tarOptions()); err != nil {
		return v1.Hash{}, fmt.Errorf("hashing layer: %w", err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// errDiffChanged is a layer whose second read hashed otherwise than its
// first.
var errDiffChanged = errors.New("the layer changed between its two reads")

func (s *Solver) tarOptions() layer.TarOptions {
	return layer.TarOptions{SourceDateEpoch: s.opts.SourceDateEpoch}
}

// commitDiff is the second read of active's diff: it compresses the tar
// into a blob in the store, which it commits only if the tar hashes to
// diffID, the first read's.
func (s *Solver) commitDiff(ctx context.Context, active *snapshot.Active, diffID v1.Hash) (cache.Layer, error) {
	bw, err := s.opts.Store.NewBlobWriter()
	if err != nil {
		return cache.Layer{}, err
	}
	defer bw.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(active.WriteDiff(ctx, pw, s.tarOptions()))
	}()
	blob, err := s.compress(ctx, bw, pr, s.opts.Compression, s.opts.CompressionLevel)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return cache.Layer{}, fmt.Errorf("writing layer: %w", err)
	}
	if blob.DiffID != diffID {
		return cache.Layer{}, fmt.Errorf("writing layer: its tar read again hashes to %s, not to the diff ID %s its snapshot was committed under: %w", blob.DiffID, diffID, errDiffChanged)
	}
	if _, err := bw.CommitAs(blob.Digest); err != nil {
		return cache.Layer{}, fmt.Errorf("storing layer: %w", err)
	}
	return cache.Layer{Digest: blob.Digest, DiffID: blob.DiffID, Size: blob.Size, MediaType: blob.MediaType}, nil
}
