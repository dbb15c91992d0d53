package cache

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/remote"
)

// Deps are what backends may need from the program: passed in at
// construction, never global (STYLE habit 12).
type Deps struct {
	// Getenv reads the environment defaults some backends take (the
	// GitHub Actions variables); nil reads nothing. Only cli reads the
	// real environment and passes it here.
	Getenv func(string) string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Transport carries the HTTP requests of backends that speak HTTP
	// themselves; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Remote returns the registry client. It is called when a cache is
	// imported or exported, not when specs are parsed, so that the client
	// can be made after every spec's InsecureHosts are known. nil means no
	// registry can be reached.
	Remote func() (*remote.Client, error)
}

// Backend is one cache type: how its specs parse and what they make. Each
// backend package offers one, and package backends lists them all.
type Backend struct {
	// Type is the spec's type= value.
	Type string
	// Attrs lists the attributes the backend reads itself, beyond the
	// shared ones (SharedAttrs), in either direction: for docs, tests and
	// buildx-compatibility checks.
	Attrs []string
	// Secret lists the attributes whose values are never shown.
	Secret []string
	// ParseImport reads a --cache-from spec into the backend's own config.
	// The attributes every import shares are read and checked before it
	// is called. nil means the type cannot be imported from.
	ParseImport func(a *Attrs) (ImportConfig, error)
	// ParseExport reads a --cache-to spec; a.Export() holds the shared
	// export attributes, already read. nil means the type cannot be
	// exported to.
	ParseExport func(a *Attrs) (ExportConfig, error)
	// Unsupported, when set, is why the type is known but not built.
	Unsupported string
}

// ImportConfig is a backend's parsed import spec; it makes the importer.
type ImportConfig interface {
	NewImporter(d Deps) (Importer, error)
}

// ExportConfig is a backend's parsed export spec; it makes the exporter.
type ExportConfig interface {
	NewExporter(d Deps) (Exporter, error)
}

// InsecureHoster is an optional ImportConfig/ExportConfig capability:
// registry hosts the spec asks to reach without TLS verification, which
// the program's registry client must know before it is made.
type InsecureHoster interface {
	InsecureHosts() []string
}

// Import is a parsed --cache-from.
type Import struct {
	// Name is the spec as messages show it, secrets redacted.
	Name string
	// Config is the backend's parsed spec.
	Config ImportConfig
	// Importer reads the cache.
	Importer Importer
}

// Export is a parsed --cache-to.
type Export struct {
	// Name is the spec as messages show it, secrets redacted.
	Name string
	// Options are the shared export attributes.
	Options ExportOptions
	// Config is the backend's parsed spec.
	Config ExportConfig
	// Exporter writes the cache.
	Exporter Exporter
}

// Table is the set of cache types a program knows, with the dependencies
// their constructors get.
type Table struct {
	byType map[string]Backend
	deps   Deps
}

// NewTable returns a table of backends. A type given twice is a
// programming error and panics.
func NewTable(d Deps, backends ...Backend) *Table {
	t := &Table{byType: map[string]Backend{}, deps: d}
	for _, b := range backends {
		if _, dup := t.byType[b.Type]; dup {
			panic("cache: backend type " + b.Type + " registered twice")
		}
		t.byType[b.Type] = b
	}
	return t
}

func (t *Table) lookup(s Spec) (Backend, error) {
	b, ok := t.byType[s.Type]
	if !ok {
		var types []string
		for typ, b := range t.byType {
			if b.Unsupported == "" {
				types = append(types, typ)
			}
		}
		sort.Strings(types)
		return b, fmt.Errorf("unknown cache type %q (kiln supports %s)", s.Type, strings.Join(types, ", "))
	}
	if b.Unsupported != "" {
		return b, fmt.Errorf("%s", b.Unsupported)
	}
	return b, nil
}

func (t *Table) attrs(s Spec) *Attrs {
	a := NewAttrs(s.Type, s.Attrs)
	a.getenv = t.deps.Getenv
	return a
}

// ParseImports parses every --cache-from value and makes its importer. Any
// bad value is an error naming it, before any work starts.
func (t *Table) ParseImports(values []string) ([]Import, error) {
	var out []Import
	for _, v := range values {
		specs, err := ParseSpec(v)
		if err != nil {
			return nil, fmt.Errorf("--cache-from: %w", err)
		}
		for _, s := range specs {
			imp, err := t.ParseImport(s)
			if err != nil {
				return nil, fmt.Errorf("--cache-from: %w", err)
			}
			out = append(out, imp)
		}
	}
	return out, nil
}

// ParseImport parses one split --cache-from spec and makes its importer.
func (t *Table) ParseImport(s Spec) (Import, error) {
	b, err := t.lookup(s)
	if err != nil {
		return Import{}, fmt.Errorf("%s: %w", s.Raw, err)
	}
	if b.ParseImport == nil {
		return Import{}, fmt.Errorf("%s: type=%s cannot be imported from", s.Raw, s.Type)
	}
	a := t.attrs(s)
	// A failed import is always a warning and a miss, so ignore-error
	// changes nothing; buildx accepts it on both sides.
	a.Bool(AttrIgnoreError, false)
	a.Reject("is a --cache-to attribute", AttrMode, AttrCompression, AttrCompressionLevel, AttrForceCompression)
	c, err := b.ParseImport(a)
	if err == nil {
		err = a.Done()
	}
	if err != nil {
		return Import{}, err
	}
	imp, err := c.NewImporter(t.deps)
	if err != nil {
		return Import{}, fmt.Errorf("%s: %w", s.Raw, err)
	}
	return Import{Name: s.Redacted(b.Secret), Config: c, Importer: imp}, nil
}

// ParseExports parses every --cache-to value and makes its exporter. The
// same export given twice is an error.
func (t *Table) ParseExports(values []string) ([]Export, error) {
	var out []Export
	seen := map[string]bool{}
	for _, v := range values {
		specs, err := ParseSpec(v)
		if err != nil {
			return nil, fmt.Errorf("--cache-to: %w", err)
		}
		for _, s := range specs {
			exp, err := t.ParseExport(s)
			if err != nil {
				return nil, fmt.Errorf("--cache-to: %w", err)
			}
			if seen[exp.Name] {
				return nil, fmt.Errorf("--cache-to %s is given twice", v)
			}
			seen[exp.Name] = true
			out = append(out, exp)
		}
	}
	return out, nil
}

// ParseExport parses one split --cache-to spec and makes its exporter.
func (t *Table) ParseExport(s Spec) (Export, error) {
	b, err := t.lookup(s)
	if err != nil {
		return Export{}, fmt.Errorf("%s: %w", s.Raw, err)
	}
	if b.ParseExport == nil {
		return Export{}, fmt.Errorf("%s: type=%s cannot be exported to", s.Raw, s.Type)
	}
	a := t.attrs(s)
	a.export = a.ExportOptions()
	c, err := b.ParseExport(a)
	if err == nil {
		err = a.Done()
	}
	if err != nil {
		return Export{}, err
	}
	exp, err := c.NewExporter(t.deps)
	if err != nil {
		return Export{}, fmt.Errorf("%s: %w", s.Raw, err)
	}
	return Export{Name: s.Redacted(b.Secret), Options: a.export, Config: c, Exporter: exp}, nil
}
