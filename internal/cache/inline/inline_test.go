package inline

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

func TestAttach(t *testing.T) {
	img, err := random.Image(512, 3)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	cf, _ := img.ConfigFile()
	var layers []cache.Layer
	for i, d := range m.Layers {
		layers = append(layers, cache.Layer{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, DiffID: cf.RootFS.DiffIDs[i]})
	}
	entries := []cache.Record{
		{Key: "sha256:aa", Layers: layers[:1], CreatedBy: "COPY a"},
		{Key: "sha256:bb", Layers: layers, CreatedBy: "RUN b"},
	}
	out, err := Attach(img, entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(out); err != nil {
		t.Fatalf("attached image is invalid: %v", err)
	}
	d0, _ := img.Digest()
	d1, _ := out.Digest()
	if d0 == d1 {
		t.Errorf("digest unchanged after attaching inline cache")
	}
	raw, _ := out.RawConfigFile()
	om, _ := out.Manifest()
	got, err := cache.DecodeInline(raw, om)
	if err != nil {
		t.Fatalf("decoding inline cache: %v", err)
	}
	if len(got.Records) != 2 || len(got.Records[1].Layers) != 3 {
		t.Errorf("decoded %+v", got.Records)
	}
	// The ordinary config fields survive.
	ocf, err := out.ConfigFile()
	if err != nil || ocf.Architecture != cf.Architecture || len(ocf.RootFS.DiffIDs) != 3 {
		t.Errorf("config file = %+v, %v", ocf, err)
	}
	// Layers are the base's own values.
	ls, _ := out.Layers()
	bl, _ := img.Layers()
	for i := range ls {
		if ls[i] != bl[i] {
			t.Errorf("layer %d is a new value, want the base's layer", i)
		}
	}
}

func TestParse(t *testing.T) {
	cachetest.RunParse(t, cachetest.ExportParser(Backend()),
		[]map[string]string{{}, {"mode": "min"}, {"ignore-error": "true"}},
		[]cachetest.BadAttrs{
			{Attrs: map[string]string{"mode": "max"}, Want: "mode"},
			{Attrs: map[string]string{"ref": "x"}, Want: `"ref"`},
		})
}
