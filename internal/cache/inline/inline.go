package inline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/kiln-build/kiln/internal/cache"
)

// Config is a parsed --cache-to type=inline. It has nothing of its own:
// the shared attributes are all inline cache takes.
type Config struct{}

// Type is the spec type of the backend.
const Type = "inline"

// Backend is type=inline in the cache table. It cannot be imported from
// directly: a registry import of the image reads its inline cache.
func Backend() cache.Backend {
	return cache.Backend{
		Type:        Type,
		ParseExport: func(a *cache.Attrs) (cache.ExportConfig, error) { return ParseExportConfig(a) },
	}
}

// ParseExportConfig reads --cache-to type=inline attributes: mode=min is
// the only mode inline cache has.
func ParseExportConfig(a *cache.Attrs) (Config, error) {
	if a.Export().Mode != cache.ModeMin {
		a.Fail(cache.AttrMode, "inline cache holds only the final image's layers (min); use type=registry,mode=max for intermediate stages")
	}
	return Config{}, nil
}

// NewExporter returns the inline exporter: a cache.ImageExporter whose
// Export has nothing left to do.
func (Config) NewExporter(cache.Deps) (cache.Exporter, error) { return exporter{}, nil }

type exporter struct{}

var (
	_ cache.Exporter      = exporter{}
	_ cache.ImageExporter = exporter{}
)

// Export does nothing: the records went into the image before its
// outputs were written (AttachTo).
func (exporter) Export(context.Context, *cache.Manifest, cache.Fetcher) error { return nil }

// AttachTo writes the records into the image config.
func (exporter) AttachTo(img v1.Image, records []cache.Record) (v1.Image, error) {
	return Attach(img, records)
}

// Attach returns img with the records that its layers can serve written
// into its config under cache.InlineKey. Layers are unchanged; the config
// and manifest digests change.
func Attach(img v1.Image, records []cache.Record) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	in := cache.NewInline(records, m.Layers)
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rawCfg, &top); err != nil {
		return nil, fmt.Errorf("decoding image config: %w", err)
	}
	val, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	top[cache.InlineKey] = val
	newCfg, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	h, size, err := v1.SHA256(bytes.NewReader(newCfg))
	if err != nil {
		return nil, err
	}
	nm := m.DeepCopy()
	nm.Config.Digest, nm.Config.Size = h, size
	rawManifest, err := json.Marshal(nm)
	if err != nil {
		return nil, err
	}
	return &withConfig{Image: img, config: newCfg, configName: h, manifest: nm, rawManifest: rawManifest}, nil
}

// withConfig is img with another config blob. It embeds the base image so
// that its layers stay exactly the values the base returns: lazy layers
// stay lazy and registry layers stay mountable.
type withConfig struct {
	v1.Image
	config      []byte
	configName  v1.Hash
	manifest    *v1.Manifest
	rawManifest []byte
}

func (w *withConfig) RawConfigFile() ([]byte, error) { return w.config, nil }
func (w *withConfig) ConfigName() (v1.Hash, error)   { return w.configName, nil }
func (w *withConfig) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(w.config))
}
func (w *withConfig) RawManifest() ([]byte, error)    { return w.rawManifest, nil }
func (w *withConfig) Manifest() (*v1.Manifest, error) { return w.manifest.DeepCopy(), nil }
func (w *withConfig) Digest() (v1.Hash, error)        { return partial.Digest(w) }
func (w *withConfig) Size() (int64, error)            { return partial.Size(w) }

// LayerByDigest serves the new config blob, and the base's layers as they
// are.
func (w *withConfig) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == w.configName {
		return partial.ConfigLayer(w)
	}
	return w.Image.LayerByDigest(h)
}
