package local

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
)

// Attribute names of type=local, as buildx spells them.
const (
	AttrSrc    = "src"
	AttrDest   = "dest"
	AttrTag    = "tag"
	AttrDigest = "digest"
)

// DefaultTag is the tag used when none is given.
const DefaultTag = "latest"

// ImportConfig is a parsed --cache-from type=local.
type ImportConfig struct {
	// Src is the cache directory.
	Src string
	// Tag picks the cache in index.json.
	Tag string
	// Digest, when set, picks the cache manifest directly and wins over
	// Tag.
	Digest *v1.Hash
}

// ExportConfig is a parsed --cache-to type=local.
type ExportConfig struct {
	// Dest is the cache directory; it is created if missing.
	Dest string
	// Tag names the cache in index.json.
	Tag string
}

// Type is the spec type of the backend.
const Type = "local"

// Backend is type=local in the cache table.
func Backend() cache.Backend {
	return cache.Backend{
		Type:        Type,
		Attrs:       []string{AttrSrc, AttrDest, AttrTag, AttrDigest, cache.AttrOCIMediaTypes, cache.AttrImageManifest, "reset"},
		ParseImport: func(a *cache.Attrs) (cache.ImportConfig, error) { return ParseImportConfig(a) },
		ParseExport: func(a *cache.Attrs) (cache.ExportConfig, error) { return ParseExportConfig(a) },
	}
}

// NewImporter returns the importer of the directory.
func (c ImportConfig) NewImporter(cache.Deps) (cache.Importer, error) { return NewImporter(c), nil }

// NewExporter returns the exporter of the directory.
func (c ExportConfig) NewExporter(cache.Deps) (cache.Exporter, error) { return NewExporter(c), nil }

// ParseImportConfig reads --cache-from attributes (the table has read the
// shared ones). A missing src or a bad digest is an error naming the key.
func ParseImportConfig(a *cache.Attrs) (ImportConfig, error) {
	c := ImportConfig{Src: a.Required(AttrSrc), Tag: a.String(AttrTag, DefaultTag)}
	if d := a.String(AttrDigest, ""); d != "" {
		h, err := v1.NewHash(d)
		if err != nil {
			return c, fmt.Errorf("cache type=local: %s: %q is not a sha256:… digest", AttrDigest, d)
		}
		c.Digest = &h
	}
	a.Reject("is a --cache-to attribute (use src= to import)", AttrDest)
	// buildx accepts the media-type switches on both sides.
	a.Bool(cache.AttrOCIMediaTypes, true)
	a.Bool(cache.AttrImageManifest, true)
	return c, nil
}

// ParseExportConfig reads --cache-to attributes.
func ParseExportConfig(a *cache.Attrs) (ExportConfig, error) {
	c := ExportConfig{Dest: a.Required(AttrDest), Tag: a.String(AttrTag, DefaultTag)}
	a.Reject("is a --cache-from attribute (use dest= to export)", AttrSrc, AttrDigest)
	// The cache is always an OCI image manifest; buildx's switches are
	// accepted for compatibility, and the only shape kiln writes is the one
	// both defaults choose.
	if !a.Bool(cache.AttrOCIMediaTypes, true) {
		return c, fmt.Errorf("cache type=local: %s=false is not supported: kiln writes OCI media types", cache.AttrOCIMediaTypes)
	}
	if !a.Bool(cache.AttrImageManifest, true) {
		return c, fmt.Errorf("cache type=local: %s=false is not supported: kiln writes an OCI image manifest", cache.AttrImageManifest)
	}
	// BuildKit's reset=true is what kiln always does.
	a.Bool("reset", true)
	return c, nil
}
