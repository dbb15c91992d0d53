package image

import (
	"encoding/json"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestAssemble(t *testing.T) {
	l1, _ := random.Layer(100, types.OCILayer)
	l2, _ := random.Layer(200, types.OCILayer)
	t1 := time.Unix(1700000000, 0).UTC()
	t2 := t1.Add(time.Hour)
	spec := Spec{
		Config: v1.Config{Env: []string{"A=1"}, Cmd: []string{"sh"}},
		Layers: []v1.Layer{l1, l2},
		History: []v1.History{
			{Created: v1.Time{Time: t1}, CreatedBy: "COPY a /a"},
			{Created: v1.Time{Time: t1}, CreatedBy: "ENV A=1", EmptyLayer: true},
			{Created: v1.Time{Time: t2}, CreatedBy: "RUN b"},
		},
	}
	img, err := Assemble(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	cf, _ := img.ConfigFile()
	if !cf.Created.Time.Equal(t2) {
		t.Errorf("created = %v, want the latest history time %v", cf.Created, t2)
	}
	if cf.OS != "linux" || len(cf.RootFS.DiffIDs) != 2 || cf.Config.Env[0] != "A=1" {
		t.Errorf("config file = %+v", cf)
	}
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("media type %s, want OCI", mt)
	}
	// Same spec, same digest.
	img2, _ := Assemble(spec)
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Errorf("two assemblies of one spec differ: %s vs %s", d1, d2)
	}
	spec.History = spec.History[:2]
	if _, err := Assemble(spec); err == nil {
		t.Errorf("history with 1 layer entry for 2 layers was accepted")
	}
}

// TestAssembleAuthor: Spec.Author (MAINTAINER) is the config's author.
func TestAssembleAuthor(t *testing.T) {
	for _, author := range []string{"", "Jane Doe <jane@example.com>"} {
		img, err := Assemble(Spec{Author: author})
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Author != author {
			t.Errorf("author = %q, want %q", cf.Author, author)
		}
	}
}

// TestAssembleStartInterval: Spec.HealthStartInterval reaches the config
// JSON as Healthcheck.StartInterval (nanoseconds, as Docker writes it), and
// the image stays valid (manifest points at the rewritten config).
func TestAssembleStartInterval(t *testing.T) {
	l, _ := random.Layer(100, types.OCILayer)
	img, err := Assemble(Spec{
		Config:              v1.Config{Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Minute}},
		Layers:              []v1.Layer{l},
		History:             []v1.History{{CreatedBy: "COPY a /a"}},
		HealthStartInterval: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Config struct {
			Healthcheck struct {
				Interval, StartInterval time.Duration
			}
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	if h := cf.Config.Healthcheck; h.StartInterval != 2*time.Second || h.Interval != time.Minute {
		t.Errorf("healthcheck = %+v, want StartInterval 2s and Interval 1m", h)
	}
}
