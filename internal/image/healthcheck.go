package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// withStartInterval returns img with "StartInterval" added to the config's
// Healthcheck: v1.HealthConfig has no field for it, so the config JSON is
// rewritten and the manifest made to point at the new config blob.
func withStartInterval(img v1.Image, d time.Duration) (v1.Image, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	var cf map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cf); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(cf["config"], &cfg); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var hc map[string]any
	if err := json.Unmarshal(cfg["Healthcheck"], &hc); err != nil || hc == nil {
		return img, nil // no healthcheck to carry it
	}
	hc["StartInterval"] = int64(d)
	if cfg["Healthcheck"], err = json.Marshal(hc); err != nil {
		return nil, err
	}
	if cf["config"], err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	if raw, err = json.Marshal(cf); err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	m.Config.Digest, m.Config.Size = h, size
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &rawConfigImage{Image: img, config: raw, manifest: m, rawManifest: rawManifest}, nil
}

// rawConfigImage is an image whose config blob is given as bytes; layers
// are the wrapped image's.
type rawConfigImage struct {
	v1.Image
	config      []byte
	manifest    *v1.Manifest
	rawManifest []byte
}

func (i *rawConfigImage) RawConfigFile() ([]byte, error) { return i.config, nil }

func (i *rawConfigImage) ConfigName() (v1.Hash, error) { return i.manifest.Config.Digest, nil }

func (i *rawConfigImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.config))
}

func (i *rawConfigImage) Manifest() (*v1.Manifest, error) { return i.manifest.DeepCopy(), nil }

func (i *rawConfigImage) RawManifest() ([]byte, error) { return i.rawManifest, nil }

func (i *rawConfigImage) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(i.rawManifest))
	return h, err
}

func (i *rawConfigImage) Size() (int64, error) { return int64(len(i.rawManifest)), nil }
