package backends

import (
	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/gha"
	"github.com/kiln-build/kiln/internal/cache/inline"
	"github.com/kiln-build/kiln/internal/cache/local"
	"github.com/kiln-build/kiln/internal/cache/registry"
)

// All lists every cache type kiln knows, one line each. Adding a backend
// is one package and one line here.
func All() []cache.Backend {
	return []cache.Backend{
		local.Backend(),
		registry.Backend(),
		inline.Backend(),
		gha.Backend(),
		{Type: "s3", Unsupported: "type=s3 is not supported yet"},
		{Type: "azblob", Unsupported: "type=azblob is not supported yet"},
	}
}

// Table is the table of every backend, with the program's dependencies.
func Table(d cache.Deps) *cache.Table { return cache.NewTable(d, All()...) }
