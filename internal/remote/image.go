package remote

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
)

// Image resolves ref (a tag or a digest) to an image and returns it with
// its manifest digest. When ref names an index, the manifest for
// Options.Platform is chosen and its digest returned, which is what a cache
// key of FROM uses (DESIGN.md §3).
//
// The manifest and the config are fetched now, the config checked against
// its digest and fetched again (MaxFetchAttempts) when its bytes are wrong
// or stop short. The layers are fetched when first read, through ctx: keep
// ctx alive as long as the image is used.
// Every layer of the result is mountable: pushing it to another repository
// of the same registry is a cross-repo mount, not a copy (see Push).
func (c *Client) Image(ctx context.Context, ref string) (v1.Image, v1.Hash, error) {
	return c.ImageFor(ctx, ref, c.platform)
}

// Layer returns the blob digest of repository repo (e.g.
// "ghcr.io/o/cache") as a layer whose bytes are fetched on first read,
// through ctx. Nothing is fetched now, so a missing blob surfaces on read.
// Pushing the layer to another repository of the same registry is a
// cross-repo mount.
func (c *Client) Layer(ctx context.Context, repo string, digest v1.Hash) (v1.Layer, error) {
	r, err := c.ParseReference(repo + "@" + digest.String())
	if err != nil {
		return nil, err
	}
	d, ok := r.(name.Digest)
	if !ok {
		return nil, fmt.Errorf("parsing layer reference %s@%s: not a digest reference", repo, digest)
	}
	l, err := ggcrremote.Layer(d, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("referencing layer %s: %w", d, toError(d.Context().RegistryStr(), err))
	}
	return l, nil
}
