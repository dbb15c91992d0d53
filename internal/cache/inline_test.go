package cache

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func hashOf(c byte) v1.Hash {
	h := make([]byte, 64)
	for i := range h {
		h[i] = c
	}
	return v1.Hash{Algorithm: "sha256", Hex: string(h)}
}

func TestInlineRoundTrip(t *testing.T) {
	layers := []Layer{
		{MediaType: types.OCILayer, Digest: hashOf('a'), Size: 10, DiffID: hashOf('1')},
		{MediaType: types.OCILayer, Digest: hashOf('b'), Size: 20, DiffID: hashOf('2')},
		{MediaType: types.OCILayer, Digest: hashOf('c'), Size: 30, DiffID: hashOf('3')},
	}
	entries := []Record{
		{Key: "sha256:k1", Layers: layers[:2], CreatedBy: "RUN a"},
		{Key: "sha256:k2", Layers: layers[:3], CreatedBy: "RUN b"},
		// Not a prefix of the image: another stage's layer.
		{Key: "sha256:k3", Layers: []Layer{layers[0], {Digest: hashOf('x')}}, CreatedBy: "RUN other"},
	}
	var descs []v1.Descriptor
	for _, l := range layers {
		descs = append(descs, l.Descriptor())
	}
	in := NewInline(entries, descs)
	if in.Len() != 2 {
		t.Fatalf("got %d inline records, want 2 (the non-prefix entry dropped)", in.Len())
	}
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{hashOf('1').String(), hashOf('2').String(), hashOf('3').String()}},
		InlineKey: in,
	}
	raw, _ := json.Marshal(cfg)
	m, err := DecodeInline(raw, &v1.Manifest{Layers: descs})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(layers, m.Layers()); diff != "" {
		t.Errorf("layers differ (-want +got):\n%s", diff)
	}
	if got := m.Records[1].Layers; len(got) != 3 || got[2].DiffID != hashOf('3') {
		t.Errorf("chain of k2 = %+v", got)
	}
	delete(cfg, InlineKey)
	raw, _ = json.Marshal(cfg)
	if _, err := DecodeInline(raw, &v1.Manifest{Layers: descs}); !errors.Is(err, ErrNotFound) {
		t.Errorf("image without inline cache: %v, want ErrNotFound", err)
	}
}

// TestManifestJSON pins the portable form: layers once, records by index,
// parent and inputs carried, and a manifest written before records had
// parents and inputs still reads.
func TestManifestJSON(t *testing.T) {
	a := Layer{MediaType: types.OCILayer, Digest: hashOf('a'), Size: 10, DiffID: hashOf('1')}
	b := Layer{MediaType: types.OCILayer, Digest: hashOf('b'), Size: 20, DiffID: hashOf('2')}
	m := NewManifest([]Record{
		{Key: "sha256:k1", Layers: []Layer{a}, CreatedBy: "RUN a"},
		{Key: "sha256:k2", Parent: "sha256:k1", Inputs: []Input{{Name: "args", Digest: "sha256:00"}}, Layers: []Layer{a, b}, CreatedBy: "RUN b"},
		{Key: "sha256:k1", Layers: []Layer{b}}, // a key given twice is kept once
	})
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Layers  []Layer `json:"layers"`
		Records []struct {
			Key    Key   `json:"key"`
			Layers []int `json:"layers"`
		} `json:"records"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		t.Fatal(err)
	}
	if len(wire.Layers) != 2 || len(wire.Records) != 2 || !cmp.Equal(wire.Records[1].Layers, []int{0, 1}) {
		t.Fatalf("wire form = %s", raw)
	}
	var got Manifest
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, &got); diff != "" {
		t.Errorf("round trip differs (-want +got):\n%s", diff)
	}
	old := `{"schemaVersion":1,"mediaType":"application/vnd.kiln.cache.config.v1+json",
		"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + hashOf('a').String() + `","size":10,"diffID":"` + hashOf('1').String() + `"}],
		"records":[{"key":"sha256:k1","layers":[0],"createdBy":"RUN a"}]}`
	if err := json.Unmarshal([]byte(old), &got); err != nil {
		t.Fatalf("reading a manifest of the earlier form: %v", err)
	}
	if len(got.Records) != 1 || got.Records[0].Layers[0] != a || got.Records[0].Parent != "" {
		t.Errorf("earlier form read as %+v", got.Records)
	}
	for name, bad := range map[string]string{
		"index out of range": `{"schemaVersion":1,"mediaType":"application/vnd.kiln.cache.config.v1+json","layers":[],"records":[{"key":"sha256:k","layers":[0]}]}`,
		"schema version":     `{"schemaVersion":2,"mediaType":"application/vnd.kiln.cache.config.v1+json","layers":[],"records":[]}`,
		"media type":         `{"schemaVersion":1,"mediaType":"x","layers":[],"records":[]}`,
		"record has no key":  `{"schemaVersion":1,"mediaType":"application/vnd.kiln.cache.config.v1+json","layers":[],"records":[{"layers":[]}]}`,
	} {
		if err := json.Unmarshal([]byte(bad), new(Manifest)); err == nil {
			t.Errorf("%s: decoding %s succeeded", name, bad)
		}
	}
}
