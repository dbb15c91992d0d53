package registry

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/internal/cache"
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
	Ref      string
	Insecure bool
	cache.ExportOptions
}

// Registry returns the registry host of the reference.
func (c ImportConfig) Registry() string { return registryOf(c.Ref) }

// Registry returns the registry host of the reference.
func (c ExportConfig) Registry() string { return registryOf(c.Ref) }

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
func ParseImportConfig(attrs map[string]string) (ImportConfig, error) {
	a := cache.NewAttrs("registry", attrs)
	c := ImportConfig{Ref: parseRef(a), Insecure: a.Bool(AttrInsecure, false)}
	a.Reject("is a --cache-to attribute", cache.AttrMode, cache.AttrCompression, cache.AttrCompressionLevel, cache.AttrForceCompression)
	a.Bool(cache.AttrIgnoreError, false)
	a.Bool(cache.AttrOCIMediaTypes, true)
	a.Bool(cache.AttrImageManifest, true)
	return c, a.Done()
}

// ParseExportConfig reads --cache-to attributes.
func ParseExportConfig(attrs map[string]string) (ExportConfig, error) {
	a := cache.NewAttrs("registry", attrs)
	c := ExportConfig{Ref: parseRef(a), Insecure: a.Bool(AttrInsecure, false)}
	c.ExportOptions = a.ExportOptions()
	if !a.Bool(cache.AttrOCIMediaTypes, true) {
		return c, fmt.Errorf("cache type=registry: %s=false is not supported: kiln writes OCI media types, which every current registry takes", cache.AttrOCIMediaTypes)
	}
	if !a.Bool(cache.AttrImageManifest, true) {
		return c, fmt.Errorf("cache type=registry: %s=false is not supported: kiln always writes an OCI image manifest (the form ECR and every registry take)", cache.AttrImageManifest)
	}
	return c, a.Done()
}
