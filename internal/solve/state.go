package solve

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/store"
)

// state is a filesystem plus config at one point of a stage. States are
// immutable once made; each step returns a new one.
type state struct {
	key     cache.Key
	layers  []layerRef
	history *history
	config  plan.Config
	// prev is the state this one was made from (across stage bases too),
	// and records the cache records of the step that made it: the lineage
	// that mode=min exports.
	prev    *state
	records []cache.Record
	// image is the manifest digest of the registry image this state is
	// (after config steps only), "" for every other state: the Base of
	// the record of the step built on it.
	image string
	// missed is the number of the step that made this state by running
	// in this solve, 0 for a hit or a base: the steps after it miss
	// because it did.
	missed int
}

// layerRef is one layer of a state: its descriptor and a v1.Layer that
// reads its bytes on demand. A layer whose compression is still running
// (pending.go) has only its diff ID in desc and no layer: ready and final
// give the complete one.
type layerRef struct {
	desc    cache.Layer
	layer   v1.Layer
	pending *pendingLayer
}

func (st *state) diffIDs() []v1.Hash {
	ids := make([]v1.Hash, len(st.layers))
	for i, l := range st.layers {
		ids[i] = l.desc.DiffID
	}
	return ids
}

// chain returns the chain IDs of the state's layers, bottom first.
func (st *state) chain() []v1.Hash { return layer.ChainIDs(st.diffIDs()) }

func (st *state) descs() []cache.Layer { return descsOf(st.layers) }

func descsOf(layers []layerRef) []cache.Layer {
	d := make([]cache.Layer, len(layers))
	for i, l := range layers {
		d[i] = l.desc
	}
	return d
}

// withConfig returns the state after a config-only step.
func (st *state) withConfig(step *plan.Step, created time.Time) *state {
	next := *st
	next.prev, next.records = st, nil
	next.config = step.Config
	next.history = st.history.add(v1.History{
		Created:    v1.Time{Time: created},
		CreatedBy:  step.Text,
		Comment:    historyComment,
		EmptyLayer: true,
	})
	return &next
}

// withLayers returns the state after a filesystem step whose result is
// rec, with rec.Key its canonical key, which the state carries so that
// later steps' keys never depend on how this one was found; aliases are
// other keys it is known by. The record's chain, instruction and stage are
// taken from layers and step.
func (st *state) withLayers(step *plan.Step, rec cache.Record, aliases []cache.Key, layers []layerRef) *state {
	next := *st
	next.prev = st
	next.key = rec.Key
	next.layers = layers
	next.image, next.missed = "", 0
	// The plan's config for the step is the stage's config at that point
	// (it may differ from the running one: ONBUILD triggers cleared, the
	// default PATH added).
	next.config = step.Config
	rec.Canonical = ""
	rec.Layers = descsOf(layers)
	rec.CreatedBy, rec.Stage = step.Text, step.Stage.Label()
	next.records = []cache.Record{rec}
	for _, a := range aliases {
		if a != rec.Key {
			next.records = append(next.records, rec.AliasAs(a))
		}
	}
	history := v1.History{Created: v1.Time{Time: rec.Created}, CreatedBy: step.Text, Comment: historyComment}
	next.history = st.history.add(history)
	return &next
}

const historyComment = "kiln"

// history is an image history shared between states: a state adds its
// entry to its parent's, so n steps cost n entries, not n²/2 copies (a
// Dockerfile of 10,000 LABEL lines made gigabytes of copied histories).
// A nil *history is the empty history.
type history struct {
	entry  v1.History
	prev   *history
	n      int
	latest time.Time // the latest Created so far
}

func (h *history) add(e v1.History) *history {
	next := &history{entry: e, prev: h, n: 1, latest: e.Created.Time}
	if h != nil {
		next.n = h.n + 1
		if h.latest.After(next.latest) {
			next.latest = h.latest
		}
	}
	return next
}

// slice returns the entries, oldest first.
func (h *history) slice() []v1.History {
	if h == nil {
		return nil
	}
	out := make([]v1.History, h.n)
	for x := h; x != nil; x = x.prev {
		out[x.n-1] = x.entry
	}
	return out
}

// lastTime is the latest Created of the entries.
func (h *history) lastTime() time.Time {
	if h == nil {
		return time.Time{}
	}
	return h.latest
}

// baseState is the state a stage starts from.
func (s *Solver) baseState(ctx context.Context, st *plan.Stage, runs map[*plan.Stage]*stageRun) (*state, error) {
	switch {
	case st.Base.Stage != nil:
		dep, err := waitStage(ctx, runs, st.Base.Stage)
		if err != nil {
			return nil, err
		}
		return dep, nil
	case st.Base.Image != nil:
		return s.imageState(ctx, st.Base.Image)
	default:
		return &state{key: cache.ScratchKey(plan.FormatPlatform(stagePlatform(st))), config: plan.NewConfig(st.Config)}, nil
	}
}

// stagePlatform is the platform st is built for; a stage planned without
// one (a graph made by hand) is for the host's.
func stagePlatform(st *plan.Stage) v1.Platform {
	if st.Platform.OS == "" {
		return plan.HostPlatform()
	}
	return st.Platform
}

// imageState is the state of a registry image: its layers stay lazy.
func (s *Solver) imageState(ctx context.Context, pi *plan.Image) (*state, error) {
	if s.opts.Image == nil {
		return nil, fmt.Errorf("image %s: no image resolver configured", pi.Ref)
	}
	img, err := s.opts.Image(ctx, pi)
	if err != nil {
		return nil, fmt.Errorf("fetching image %s: %w", pi.Ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading layers of %s: %w", pi.Ref, err)
	}
	st := &state{key: cache.ImageKey(pi.Digest.String()), image: pi.Digest.String()}
	if pi.Config != nil && pi.Config.Architecture == "" {
		// The same manifest serves every platform: the key says which.
		st.key = cache.ImageKeyOn(pi.Digest.String(), plan.FormatPlatform(plan.NormalizePlatform(pi.Platform)))
	}
	for i, l := range ls {
		d, err := describe(l)
		if err != nil {
			return nil, fmt.Errorf("reading layer %d of %s: %w", i, pi.Ref, err)
		}
		st.layers = append(st.layers, layerRef{desc: d, layer: l})
	}
	var hist []v1.History
	if pi.Config != nil {
		st.config = plan.NewConfig(pi.Config.Config)
		hist = pi.Config.History
	}
	// An image without history still needs one entry per layer.
	if n := nonEmpty(hist); n != len(st.layers) {
		hist = nil
		for range st.layers {
			hist = append(hist, v1.History{CreatedBy: "FROM " + pi.Ref, Comment: historyComment})
		}
	}
	for _, h := range hist {
		st.history = st.history.add(h)
	}
	return st, nil
}

func nonEmpty(h []v1.History) int {
	n := 0
	for _, e := range h {
		if !e.EmptyLayer {
			n++
		}
	}
	return n
}

// describe reads a layer's descriptor; for registry and store layers this
// needs no layer bytes.
func describe(l v1.Layer) (cache.Layer, error) {
	var d cache.Layer
	var err error
	if d.Digest, err = l.Digest(); err != nil {
		return d, err
	}
	if d.DiffID, err = l.DiffID(); err != nil {
		return d, err
	}
	if d.Size, err = l.Size(); err != nil {
		return d, err
	}
	if d.MediaType, err = l.MediaType(); err != nil {
		return d, err
	}
	return d, nil
}

// commitDiff compresses into a store blob writer, which hashes what it
// stores: layer.Compress takes the blob digest from it instead of hashing
// the same bytes a second time, and the store remembers the blob as
// verified for the exports of this build (store.OpenBlobFile).
var _ layer.HashingWriter = (*store.BlobWriter)(nil)

// storeLayer is a layer whose compressed blob is in the local store. It
// implements partial.CompressedLayer and partial.WithDiffID, so it is read
// only when its bytes are needed.
type storeLayer struct {
	s *store.Store
	d cache.Layer
}

func (l storeLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l storeLayer) DiffID() (v1.Hash, error)            { return l.d.DiffID, nil }
func (l storeLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l storeLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l storeLayer) Compressed() (io.ReadCloser, error)  { return l.s.OpenBlob(l.d.Digest) }

func (s *Solver) storeLayer(d cache.Layer) (layerRef, error) {
	l, err := partial.CompressedToLayer(storeLayer{s: s.opts.Store, d: d})
	if err != nil {
		return layerRef{}, err
	}
	return layerRef{desc: d, layer: l}, nil
}
