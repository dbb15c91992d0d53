package cache

import (
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MediaType is the media type of the portable cache manifest.
const MediaType types.MediaType = "application/vnd.kiln.cache.config.v1+json"

// SchemaVersion is the version of the manifest format this kiln writes and
// reads. Records' parent and inputs were added within version 1 as optional
// fields, and so were their step identity, base digest and file digests:
// manifests of earlier kilns read unchanged.
const SchemaVersion = 1

// Manifest is the portable cache manifest of DESIGN.md §4: the records of a
// cache, independent of where it is stored. In JSON each layer is stored
// once and records refer to layers by index (see MarshalJSON); in memory a
// record carries its chain.
type Manifest struct {
	// Records are the step results the cache holds, one per key.
	Records []Record
}

// NewManifest returns a manifest of records: a key given twice is kept
// once (the first), and creation times are made UTC.
func NewManifest(records []Record) *Manifest {
	m := &Manifest{Records: []Record{}}
	seen := map[Key]bool{}
	for _, r := range records {
		if seen[r.Key] {
			continue
		}
		seen[r.Key] = true
		r.Created = r.Created.UTC()
		if r.Layers == nil {
			r.Layers = []Layer{}
		}
		m.Records = append(m.Records, r)
	}
	return m
}

// Layers returns every layer the records use, each once, in order of first
// use.
func (m *Manifest) Layers() []Layer {
	out := []Layer{}
	seen := map[v1.Hash]bool{}
	for _, r := range m.Records {
		for _, l := range r.Layers {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				out = append(out, l)
			}
		}
	}
	return out
}

// Without returns m less every record whose chain uses a layer in missing.
func (m *Manifest) Without(missing map[v1.Hash]bool) *Manifest {
	var keep []Record
	for _, r := range m.Records {
		ok := true
		for _, l := range r.Layers {
			if missing[l.Digest] {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, r)
		}
	}
	return NewManifest(keep)
}

// wireManifest is the manifest as JSON: layers once, records by index.
type wireManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	Layers        []Layer         `json:"layers"`
	Records       []wireRecord    `json:"records"`
}

// wireRecord is a Record whose chain is indexes into a list of layers (the
// manifest's, or an image's for inline cache).
type wireRecord struct {
	Key       Key       `json:"key"`
	Canonical Key       `json:"canonical,omitempty"`
	Parent    Key       `json:"parent,omitempty"`
	Inputs    []Input   `json:"inputs,omitempty"`
	Layers    []int     `json:"layers"`
	CreatedBy string    `json:"createdBy,omitempty"`
	Stage     string    `json:"stage,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	Step      string    `json:"step,omitempty"`
	Base      string    `json:"base,omitempty"`
	Files     []FileSum `json:"files,omitempty"`
}

func toWire(r Record, layers []int) wireRecord {
	return wireRecord{Key: r.Key, Canonical: r.Canonical, Parent: r.Parent, Inputs: r.Inputs, Layers: layers,
		CreatedBy: r.CreatedBy, Stage: r.Stage, Created: r.Created.UTC(), Step: r.Step, Base: r.Base, Files: r.Files}
}

// fromWire resolves w's layer indexes against layers.
func fromWire(w wireRecord, layers []Layer) (Record, error) {
	if w.Key == "" {
		return Record{}, fmt.Errorf("cache record has no key")
	}
	r := Record{Key: w.Key, Canonical: w.Canonical, Parent: w.Parent, Inputs: w.Inputs, Layers: make([]Layer, len(w.Layers)),
		CreatedBy: w.CreatedBy, Stage: w.Stage, Created: w.Created, Step: w.Step, Base: w.Base, Files: w.Files}
	for i, li := range w.Layers {
		if li < 0 || li >= len(layers) {
			return Record{}, fmt.Errorf("cache record %s: layer index %d out of range", w.Key, li)
		}
		r.Layers[i] = layers[li]
	}
	return r, nil
}

// MarshalJSON writes the manifest in its portable form.
func (m Manifest) MarshalJSON() ([]byte, error) {
	layers := m.Layers()
	index := make(map[v1.Hash]int, len(layers))
	for i, l := range layers {
		index[l.Digest] = i
	}
	w := wireManifest{SchemaVersion: SchemaVersion, MediaType: MediaType, Layers: layers, Records: make([]wireRecord, len(m.Records))}
	for i, r := range m.Records {
		idx := make([]int, len(r.Layers))
		for j, l := range r.Layers {
			idx[j] = index[l.Digest]
		}
		w.Records[i] = toWire(r, idx)
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a manifest and checks its version, media type and
// layer indexes: a manifest that fails is unusable as a whole.
func (m *Manifest) UnmarshalJSON(b []byte) error {
	var w wireManifest
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.SchemaVersion != SchemaVersion {
		return fmt.Errorf("cache manifest schema version %d, this kiln reads %d", w.SchemaVersion, SchemaVersion)
	}
	if w.MediaType != MediaType {
		return fmt.Errorf("cache manifest media type %q, want %q", w.MediaType, MediaType)
	}
	recs, err := fromWireAll(w.Records, w.Layers)
	if err != nil {
		return err
	}
	m.Records = recs
	return nil
}

func fromWireAll(ws []wireRecord, layers []Layer) ([]Record, error) {
	out := make([]Record, 0, len(ws))
	for _, w := range ws {
		r, err := fromWire(w, layers)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
