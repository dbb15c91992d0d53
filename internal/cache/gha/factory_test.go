package gha

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

// locationOf is the conformance location of the cache c names, as kiln
// makes it: specs parsed by a table that holds type=gha. o (block sizes and
// the like, which no attribute sets) is applied to what the table makes.
func locationOf(c Config, o Options, corrupt func(t *testing.T, h v1.Hash)) cachetest.Location {
	b := Backend()
	parseImport, parseExport := b.ParseImport, b.ParseExport
	b.ParseImport = func(a *cache.Attrs) (cache.ImportConfig, error) {
		ic, err := parseImport(a)
		if err != nil {
			return nil, err
		}
		return importWith{ic.(ImportConfig), o}, nil
	}
	b.ParseExport = func(a *cache.Attrs) (cache.ExportConfig, error) {
		ec, err := parseExport(a)
		if err != nil {
			return nil, err
		}
		return exportWith{ec.(ExportConfig), o}, nil
	}
	spec := fmt.Sprintf("type=gha,token=%s,scope=%s,version=%d", c.Token, c.Scope, c.Version)
	if c.Version == 2 {
		spec += ",url_v2=" + csvQuote(c.URL)
	} else {
		spec += ",url=" + csvQuote(c.URL)
	}
	return cachetest.Location{
		Table:   cache.NewTable(cache.Deps{}, b),
		Import:  spec,
		Export:  spec,
		Corrupt: corrupt,
	}
}

// csvQuote quotes a URL for a CSV field when it needs it.
func csvQuote(s string) string {
	if !strings.ContainsAny(s, ",\"") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

type importWith struct {
	ImportConfig
	o Options
}

func (w importWith) NewImporter(cache.Deps) (cache.Importer, error) {
	return NewImporter(w.ImportConfig, w.o), nil
}

type exportWith struct {
	ExportConfig
	o Options
}

func (w exportWith) NewExporter(cache.Deps) (cache.Exporter, error) {
	return NewExporter(w.ExportConfig, w.o), nil
}
