package image

import (
	"fmt"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec is what the solver hands over for one image.
type Spec struct {
	// Config is the runtime config (env, cmd, entrypoint, …).
	Config v1.Config
	// Layers are the filesystem layers, bottom first.
	Layers []v1.Layer
	// History has one entry per instruction that made the image, base
	// image history included; entries with EmptyLayer false correspond one
	// to one, in order, with Layers.
	History []v1.History
	// Created is the image creation time. The zero value means "the latest
	// history entry's time", which keeps a fully cached rebuild
	// byte-identical.
	Created time.Time
	// OS and Architecture default to linux and the host's GOARCH; Variant
	// (arm's v7, for example) defaults to none.
	OS, Architecture, Variant string
	// Author is the config's author field (the last MAINTAINER); "" leaves
	// it out.
	Author string
	// HealthStartInterval is the healthcheck's StartInterval (HEALTHCHECK
	// --start-interval), which v1.HealthConfig cannot hold; 0 leaves it
	// out, and so does a Config without a Healthcheck.
	HealthStartInterval time.Duration
}

// Assemble builds an OCI image from spec. The result's manifest and config
// are computed eagerly; layers stay as given (lazy layers stay lazy).
func Assemble(spec Spec) (v1.Image, error) {
	if n := countNonEmpty(spec.History); n != len(spec.Layers) {
		return nil, fmt.Errorf("assembling image: %d history entries with layers for %d layers", n, len(spec.Layers))
	}
	diffIDs := make([]v1.Hash, len(spec.Layers))
	for i, l := range spec.Layers {
		d, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("reading diff ID of layer %d: %w", i, err)
		}
		diffIDs[i] = d
	}
	created := spec.Created
	if created.IsZero() {
		for _, h := range spec.History {
			if h.Created.After(created) {
				created = h.Created.Time
			}
		}
	}
	cf := &v1.ConfigFile{
		Architecture: orDefault(spec.Architecture, runtime.GOARCH),
		OS:           orDefault(spec.OS, "linux"),
		Variant:      spec.Variant,
		Author:       spec.Author,
		Created:      v1.Time{Time: created.UTC()},
		Config:       spec.Config,
		History:      spec.History,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, spec.Layers...)
	if err != nil {
		return nil, fmt.Errorf("appending layers: %w", err)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting image config: %w", err)
	}
	if spec.HealthStartInterval != 0 && spec.Config.Healthcheck != nil {
		if img, err = withStartInterval(img, spec.HealthStartInterval); err != nil {
			return nil, fmt.Errorf("setting the healthcheck's start interval: %w", err)
		}
	}
	return img, nil
}

func countNonEmpty(h []v1.History) int {
	n := 0
	for _, e := range h {
		if !e.EmptyLayer {
			n++
		}
	}
	return n
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
