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
	entries := []Entry{
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
	if len(in.Records) != 2 {
		t.Fatalf("got %d inline records, want 2 (the non-prefix entry dropped)", len(in.Records))
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
	if diff := cmp.Diff(layers, m.Layers); diff != "" {
		t.Errorf("layers differ (-want +got):\n%s", diff)
	}
	if got := m.Chain(m.Records[1]); len(got) != 3 || got[2].DiffID != hashOf('3') {
		t.Errorf("chain of k2 = %+v", got)
	}
	delete(cfg, InlineKey)
	raw, _ = json.Marshal(cfg)
	if _, err := DecodeInline(raw, &v1.Manifest{Layers: descs}); !errors.Is(err, ErrNotFound) {
		t.Errorf("image without inline cache: %v, want ErrNotFound", err)
	}
}
