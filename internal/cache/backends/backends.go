package backends

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/inline"
	"github.com/kiln-build/kiln/internal/cache/local"
	"github.com/kiln-build/kiln/internal/cache/registry"
	"github.com/kiln-build/kiln/internal/remote"
)

// Deps are what backends may need from the program: passed in, never
// global.
type Deps struct {
	// Getenv reads defaults some backends take from the environment.
	Getenv func(string) string
	Logger *slog.Logger
	// Remote returns the registry client. It is called when a cache is
	// imported or exported, not when specs are parsed, so that the client
	// can be made after every spec's registry.insecure is known.
	Remote func() (*remote.Client, error)
}

// Import is a parsed --cache-from: a name for messages and its importer.
type Import struct {
	Name     string
	Importer cache.Importer
	// IgnoreError is accepted for symmetry; a failed import is always a
	// warning and a miss.
	IgnoreError bool
	// InsecureRegistry is a registry host the spec asked to reach without
	// TLS verification (registry.insecure=true).
	InsecureRegistry string
}

// Export is a parsed --cache-to.
type Export struct {
	Name     string
	Exporter cache.Exporter
	Options  cache.ExportOptions
	// Inline marks type=inline: the records go into the image config
	// (inline.Attach) instead of through Exporter, which is nil.
	Inline bool
	// InsecureRegistry is as for Import.
	InsecureRegistry string
}

type backend struct {
	importer func(attrs map[string]string, d Deps) (Import, error)
	exporter func(attrs map[string]string, d Deps) (Export, error)
	// later, when set, is why the type is known but not built yet.
	later string
}

// table is every cache type kiln knows.
var table = map[string]backend{
	"local":    {importer: localImporter, exporter: localExporter},
	"registry": {importer: registryImporter, exporter: registryExporter},
	"inline":   {exporter: inlineExporter},
	"gha":      {later: "type=gha is not supported yet"},
	"s3":       {later: "type=s3 is not supported yet"},
	"azblob":   {later: "type=azblob is not supported yet"},
}

func localImporter(attrs map[string]string, _ Deps) (Import, error) {
	c, err := local.ParseImportConfig(attrs)
	if err != nil {
		return Import{}, err
	}
	return Import{Importer: local.NewImporter(c), IgnoreError: attrs[cache.AttrIgnoreError] == "true"}, nil
}

func localExporter(attrs map[string]string, _ Deps) (Export, error) {
	c, err := local.ParseExportConfig(attrs)
	if err != nil {
		return Export{}, err
	}
	return Export{Exporter: local.NewExporter(c), Options: c.ExportOptions}, nil
}

func registryImporter(attrs map[string]string, d Deps) (Import, error) {
	c, err := registry.ParseImportConfig(attrs)
	if err != nil {
		return Import{}, err
	}
	imp := Import{Importer: registry.NewImporter(c, d.Remote), IgnoreError: attrs[cache.AttrIgnoreError] == "true"}
	if c.Insecure {
		imp.InsecureRegistry = c.Registry()
	}
	return imp, nil
}

func registryExporter(attrs map[string]string, d Deps) (Export, error) {
	c, err := registry.ParseExportConfig(attrs)
	if err != nil {
		return Export{}, err
	}
	exp := Export{Exporter: registry.NewExporter(c, d.Remote), Options: c.ExportOptions}
	if c.Insecure {
		exp.InsecureRegistry = c.Registry()
	}
	return exp, nil
}

func inlineExporter(attrs map[string]string, _ Deps) (Export, error) {
	c, err := inline.ParseExportConfig(attrs)
	if err != nil {
		return Export{}, err
	}
	return Export{Options: c.ExportOptions, Inline: true}, nil
}

func lookup(spec cache.Spec) (backend, error) {
	b, ok := table[spec.Type]
	if !ok {
		var types []string
		for t, b := range table {
			if b.later == "" {
				types = append(types, t)
			}
		}
		sort.Strings(types)
		return b, fmt.Errorf("unknown cache type %q (kiln supports %s)", spec.Type, strings.Join(types, ", "))
	}
	if b.later != "" {
		return b, fmt.Errorf("%s", b.later)
	}
	return b, nil
}

// ParseImports parses every --cache-from value. Any bad value is an error
// naming it, before any work starts.
func ParseImports(values []string, d Deps) ([]Import, error) {
	var out []Import
	for _, v := range values {
		specs, err := cache.ParseSpec(v)
		if err != nil {
			return nil, fmt.Errorf("--cache-from: %w", err)
		}
		for _, s := range specs {
			b, err := lookup(s)
			if err != nil {
				return nil, fmt.Errorf("--cache-from %s: %w", v, err)
			}
			if b.importer == nil {
				return nil, fmt.Errorf("--cache-from %s: type=%s cannot be imported from", v, s.Type)
			}
			imp, err := b.importer(s.Attrs, d)
			if err != nil {
				return nil, fmt.Errorf("--cache-from: %w", err)
			}
			imp.Name = s.String()
			out = append(out, imp)
		}
	}
	return out, nil
}

// ParseExports parses every --cache-to value.
func ParseExports(values []string, d Deps) ([]Export, error) {
	var out []Export
	seen := map[string]bool{}
	for _, v := range values {
		specs, err := cache.ParseSpec(v)
		if err != nil {
			return nil, fmt.Errorf("--cache-to: %w", err)
		}
		for _, s := range specs {
			b, err := lookup(s)
			if err != nil {
				return nil, fmt.Errorf("--cache-to %s: %w", v, err)
			}
			if b.exporter == nil {
				return nil, fmt.Errorf("--cache-to %s: type=%s cannot be exported to", v, s.Type)
			}
			exp, err := b.exporter(s.Attrs, d)
			if err != nil {
				return nil, fmt.Errorf("--cache-to: %w", err)
			}
			exp.Name = s.String()
			if seen[exp.Name] {
				return nil, fmt.Errorf("--cache-to %s is given twice", v)
			}
			seen[exp.Name] = true
			out = append(out, exp)
		}
	}
	return out, nil
}
