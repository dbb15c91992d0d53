package gha

import (
	"testing"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

func smallManifest(t *testing.T) (*cache.Manifest, *cachetest.Blobs) {
	t.Helper()
	b := cachetest.NewBlobs()
	return cachetest.RandomManifest(b, 7, 3), b
}
