package registry

import (
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/remote"
)

// Attribute names of type=registry, as buildx spells them.
const (
	AttrRef      = "ref"
	AttrInsecure = "registry.insecure"
)

// ImportConfig is a parsed --cache-from type=registry.
type ImportConfig struct {
	// Ref is the cache (or image) reference; a missing tag means latest.
	Ref string
	// Insecure reaches the registry over plain HTTP / unverified TLS.
	Insecure bool
}

// ExportConfig is a parsed --cache-to type=registry.
type ExportConfig struct {
	// Ref is the cache reference; a missing tag means latest.
	Ref string
	// Insecure reaches the registry over plain HTTP / unverified TLS.
	Insecure bool
}

// Type is the spec type of the backend.
const Type = "registry"

// Backend is type=registry in the cache table.
func Backend() cache.Backend {
	return cache.Backend{
		Type:        Type,
		Attrs:       []string{AttrRef, AttrInsecure, cache.AttrOCIMediaTypes, cache.AttrImageManifest},
		ParseImport: func(a *cache.Attrs) (cache.ImportConfig, error) { return ParseImportConfig(a) },
		ParseExport: func(a *cache.Attrs) (cache.ExportConfig, error) { return ParseExportConfig(a) },
	}
}

var (
	_ cache.InsecureHoster = ImportConfig{}
	_ cache.InsecureHoster = ExportConfig{}
)

// NewImporter returns the importer of the reference.
func (c ImportConfig) NewImporter(d cache.Deps) (cache.Importer, error) {
	return NewImporter(c, remoteOf(d)), nil
}

// NewExporter returns the exporter of the reference.
func (c ExportConfig) NewExporter(d cache.Deps) (cache.Exporter, error) {
	return NewExporter(c, remoteOf(d)), nil
}

func remoteOf(d cache.Deps) func() (*remote.Client, error) {
	if d.Remote == nil {
		return func() (*remote.Client, error) { return nil, errors.New("registry: no registry client") }
	}
	return d.Remote
}

// InsecureHosts is the registry host when registry.insecure=true.
func (c ImportConfig) InsecureHosts() []string { return insecureHosts(c.Insecure, c.Ref) }

// InsecureHosts is the registry host when registry.insecure=true.
func (c ExportConfig) InsecureHosts() []string { return insecureHosts(c.Insecure, c.Ref) }

func insecureHosts(insecure bool, ref string) []string {
	if h := registryOf(ref); insecure && h != "" {
		return []string{h}
	}
	return nil
}

func registryOf(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	return r.Context().RegistryStr()
}

func parseRef(a *cache.Attrs) string {
	ref := a.Required(AttrRef)
	if ref != "" {
		if _, err := name.ParseReference(ref); err != nil {
			a.Fail(AttrRef, "%q is not an image reference", ref)
		}
	}
	return ref
}

// ParseImportConfig reads --cache-from attributes.
func ParseImportConfig(a *cache.Attrs) (ImportConfig, error) {
	c := ImportConfig{Ref: parseRef(a), Insecure: a.Bool(AttrInsecure, false)}
	a.Bool(cache.AttrOCIMediaTypes, true)
	a.Bool(cache.AttrImageManifest, true)
	return c, nil
}

// ParseExportConfig reads --cache-to attributes.
func ParseExportConfig(a *cache.Attrs) (ExportConfig, error) {
	c := ExportConfig{Ref: parseRef(a), Insecure: a.Bool(AttrInsecure, false)}
	if !a.Bool(cache.AttrOCIMediaTypes, true) {
		return c, fmt.Errorf("cache type=registry: %s=false is not supported: kiln writes OCI media types, which every current registry takes", cache.AttrOCIMediaTypes)
	}
	if !a.Bool(cache.AttrImageManifest, true) {
		return c, fmt.Errorf("cache type=registry: %s=false is not supported: kiln always writes an OCI image manifest (the form ECR and every registry take)", cache.AttrImageManifest)
	}
	return c, nil
}
