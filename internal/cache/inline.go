package cache

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// InlineKey is the top-level image config key that carries inline cache
// records (DESIGN.md §4). It is not a label, so it never shows in
// `docker inspect` labels and never collides with one.
const InlineKey = "kiln.cache.v1"

// Inline is the value stored under InlineKey: records whose layer indexes
// refer to the image's own manifest layers.
type Inline struct {
	records []wireRecord
}

// MarshalJSON writes the inline value.
func (in Inline) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Records []wireRecord `json:"records"`
	}{in.records})
}

// Len is how many records the image carries.
func (in Inline) Len() int { return len(in.records) }

// NewInline keeps the records whose layer chain is a prefix of the image's
// layers (by digest) and expresses them against those layers. Other
// records cannot be served from the image and are dropped: inline cache is
// min mode by nature.
func NewInline(records []Record, imageLayers []v1.Descriptor) Inline {
	in := Inline{records: []wireRecord{}}
	seen := map[Key]bool{}
	for _, r := range records {
		if seen[r.Key] || len(r.Layers) > len(imageLayers) {
			continue
		}
		ok := true
		idx := make([]int, len(r.Layers))
		for i, l := range r.Layers {
			if l.Digest != imageLayers[i].Digest {
				ok = false
				break
			}
			idx[i] = i
		}
		if !ok {
			continue
		}
		seen[r.Key] = true
		// The image config is fetched by everyone who pulls the image:
		// it carries no per-file digests (a miss against inline cache
		// says the content changed without naming files).
		r.Files = nil
		in.records = append(in.records, toWire(r, idx))
	}
	return in
}

// DecodeInline reads the inline cache of an image from its raw config and
// manifest. An image without one is ErrNotFound.
func DecodeInline(rawConfig []byte, m *v1.Manifest) (*Manifest, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rawConfig, &top); err != nil {
		return nil, fmt.Errorf("decoding image config: %w", err)
	}
	raw, ok := top[InlineKey]
	if !ok {
		return nil, fmt.Errorf("image carries no inline cache: %w", ErrNotFound)
	}
	var in struct {
		Records []wireRecord `json:"records"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("decoding inline cache: %w", err)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(rawConfig, &cf); err != nil {
		return nil, fmt.Errorf("decoding image config: %w", err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image config has %d diff IDs for %d layers", len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	layers := make([]Layer, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: cf.RootFS.DiffIDs[i]}
	}
	recs, err := fromWireAll(in.Records, layers)
	if err != nil {
		return nil, err
	}
	return &Manifest{Records: recs}, nil
}
