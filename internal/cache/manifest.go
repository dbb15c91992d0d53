package cache

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Entry is one step result to export: its key and the whole layer chain of
// the filesystem after it.
type Entry struct {
	Key Key
	// Canonical, when set, makes Key an alias of this key (see Record).
	Canonical Key
	Layers    []Layer
	CreatedBy string
	Stage     string
	Created   time.Time
}

// NewManifest builds a manifest from entries: layers shared by several
// entries are stored once, in order of first use; a key given twice is
// kept once.
func NewManifest(entries []Entry) *Manifest {
	m := &Manifest{SchemaVersion: SchemaVersion, MediaType: MediaType, Layers: []Layer{}, Records: []Record{}}
	index := map[string]int{}
	seen := map[Key]bool{}
	for _, e := range entries {
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		r := Record{Key: e.Key, Canonical: e.Canonical, Layers: []int{}, CreatedBy: e.CreatedBy, Stage: e.Stage, Created: e.Created.UTC()}
		for _, l := range e.Layers {
			i, ok := index[l.Digest.String()]
			if !ok {
				i = len(m.Layers)
				index[l.Digest.String()] = i
				m.Layers = append(m.Layers, l)
			}
			r.Layers = append(r.Layers, i)
		}
		m.Records = append(m.Records, r)
	}
	return m
}

// Chain returns the layers of record r, bottom first. r must come from m
// and m must be valid.
func (m *Manifest) Chain(r Record) []Layer {
	out := make([]Layer, len(r.Layers))
	for i, li := range r.Layers {
		out[i] = m.Layers[li]
	}
	return out
}

// Without returns m less every record whose chain uses a layer in missing,
// and less the layers no remaining record uses.
func (m *Manifest) Without(missing map[v1.Hash]bool) *Manifest {
	var entries []Entry
	for _, r := range m.Records {
		chain := m.Chain(r)
		ok := true
		for _, l := range chain {
			if missing[l.Digest] {
				ok = false
				break
			}
		}
		if ok {
			entries = append(entries, Entry{Key: r.Key, Canonical: r.Canonical, Layers: chain, CreatedBy: r.CreatedBy, Stage: r.Stage, Created: r.Created})
		}
	}
	return NewManifest(entries)
}
