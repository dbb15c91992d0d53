package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The copying fallback, and its trade-off.
//
// Without overlayfs a rootfs must be a real copy, and a diff must compare
// two trees. Unpack stores the layer tar as it came ("tar"): that needs no
// special files or privileges and costs one tar's size. The first Prepare
// or View of a chain builds the chain's merged tree ("m" of its top layer)
// from the highest merged tree below it plus the tars above; each Prepare
// then copies that merged tree, and WriteDiff walks the copy against it.
// Commit renames the changed copy into place as the merged tree of the new
// chain, so the next step starts from it without applying anything.
//
// So every committed step and every prepared chain costs a full copy of the
// rootfs on disk (prune reclaims it), in exchange for Prepare doing one tree
// copy whatever the chain depth, and View costing nothing once the merged
// tree exists. Storing only layer tars and applying the whole chain on every
// Prepare would save disk but cost time proportional to the chain, twice
// (the copy to change and the parent to diff against).

// merged returns the merged tree of chain, building it if needed. The empty
// chain has the empty tree.
func (s *Snapshotter) merged(ctx context.Context, chain []v1.Hash) (string, error) {
	if len(chain) == 0 {
		return filepath.Join(s.root, "empty"), nil
	}
	for _, id := range chain {
		if !s.Has(id) {
			return "", fmt.Errorf("layer %s of the chain: %w", id, ErrNotFound)
		}
	}
	top := filepath.Join(s.dir(chain[len(chain)-1]), "m")
	if _, err := os.Lstat(top); err == nil {
		return top, nil
	}
	if err := s.buildMerged(ctx, chain, s.highestMerged(chain)); err != nil {
		return "", err
	}
	return top, nil
}
