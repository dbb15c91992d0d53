package registry

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/remote"
)

// importIndex imports the inline cache of every image of an index (one per
// platform, as a multi-platform build pushes), merged into one manifest:
// records of every platform, each key once. Entries without a platform
// or of platform unknown (attestations) are skipped; an image without
// inline cache adds nothing, and only when none has any is it a miss.
func (i *importer) importIndex(ctx context.Context, c *remote.Client, raw []byte) (*cache.Manifest, cache.Fetcher, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, nil, fmt.Errorf("decoding index %s: %w", i.r.ref, err)
	}
	var records []cache.Record
	var firstErr error
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" || !d.MediaType.IsImage() {
			continue
		}
		mraw, _, _, err := c.Manifest(ctx, i.r.repo+"@"+d.Digest.String())
		if err != nil {
			return nil, nil, mapNotFound(err)
		}
		m, _, err := i.importManifest(ctx, mraw)
		if err != nil {
			if cache.IsMiss(err) {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			return nil, nil, fmt.Errorf("%s (%s/%s): %w", i.r.ref, d.Platform.OS, d.Platform.Architecture, err)
		}
		records = append(records, m.Records...)
	}
	if len(records) == 0 {
		if firstErr != nil {
			return nil, nil, firstErr
		}
		return nil, nil, fmt.Errorf("%s: index has no image with inline cache: %w", i.r.ref, cache.ErrNotFound)
	}
	return cache.NewManifest(records), verifying{i.r}, nil
}
