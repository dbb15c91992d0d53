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
	history []v1.History
	config  v1.Config
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
// reads its bytes on demand.
type layerRef struct {
	desc  cache.Layer
	layer v1.Layer
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
	next.history = appendHistory(st.history, v1.History{
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
	next.history = appendHistory(st.history, history)
	return &next
}

const historyComment = "kiln"

func appendHistory(h []v1.History, e v1.History) []v1.History {
	out := make([]v1.History, len(h), len(h)+1)
	copy(out, h)
	return append(out, e)
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
		return &state{key: cache.ScratchKey(), config: st.Config}, nil
	}
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
	for i, l := range ls {
		d, err := describe(l)
		if err != nil {
			return nil, fmt.Errorf("reading layer %d of %s: %w", i, pi.Ref, err)
		}
		st.layers = append(st.layers, layerRef{desc: d, layer: l})
	}
	if pi.Config != nil {
		st.config = pi.Config.Config
		st.history = append(st.history, pi.Config.History...)
	}
	// An image without history still needs one entry per layer.
	if n := nonEmpty(st.history); n != len(st.layers) {
		st.history = nil
		for range st.layers {
			st.history = append(st.history, v1.History{CreatedBy: "FROM " + pi.Ref, Comment: historyComment})
		}
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
