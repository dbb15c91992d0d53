package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// Push writes img under every tag in tags, in order, and returns the first
// failure. Tags may name different repositories and registries.
//
// Blobs the target repository already has are not sent. A layer that came
// from Image or Layer (a lazy remote layer) is cross-repo mounted when it
// is pushed to another repository of the registry it came from. After the
// first repository of a registry is written, later repositories of the
// same registry mount every blob from it instead of uploading again.
// Mounting needs the layer to be the value Image/Layer returned (or an
// image from mutate that keeps it as is): a wrapper around it hides the
// source and makes the push an upload. A registry that refuses a mount gets
// an upload.
//
// Each request is retried on 429, 5xx and dropped connections (see
// Options.RetryMaxWait). A 401 or 403 becomes a *transport.Error that tells the user
// to run `kiln login REGISTRY`.
func (c *Client) Push(ctx context.Context, img v1.Image, tags []string) error {
	if len(tags) == 0 {
		return errors.New("remote: push needs at least one tag")
	}
	refs := make([]name.Reference, 0, len(tags))
	for _, t := range tags {
		r, err := c.ParseReference(t)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	// firstRepo remembers, per registry, the repository written first, which
	// later repositories of that registry mount from.
	firstRepo := map[string]name.Reference{}
	for i, r := range refs {
		reg := r.Context().RegistryStr()
		src := img
		if first, ok := firstRepo[reg]; ok && first.Context().RepositoryStr() != r.Context().RepositoryStr() {
			src = &mountFrom{Image: img, ref: first}
		}
		if err := c.pushImage(ctx, r, src, img); err != nil {
			return fmt.Errorf("pushing image to %s: %w", tags[i], toError(reg, err))
		}
		c.blobs.add(r.Context(), imageBlobs(img)...)
		if _, ok := firstRepo[reg]; !ok {
			firstRepo[reg] = r
		}
	}
	return nil
}

// pushJobs bounds the blob writes of one pushImage, as ggcr's own push
// does by default.
const pushJobs = 4

// pushImage writes src (img, or img as mounted from another repository)
// under the tag r. ggcr's Push first asks whether r already holds the
// manifest, which spares a rebuild of an unchanged image every other
// request. When this process found one of img's blobs missing in r's
// repository and uploaded it (WriteLayer), no manifest listing that blob
// can be there yet (a registry takes a manifest only once its blobs are
// in), so the question is skipped: the blobs are written (those already
// written cost nothing) and the manifest is PUT. A registry that does not
// check a manifest's blobs gets, at worst, the same manifest PUT again.
func (c *Client) pushImage(ctx context.Context, r name.Reference, src, img v1.Image) error {
	if !c.blobs.anySent(r.Context(), imageBlobs(img)) {
		return c.pusher.Push(ctx, r, src)
	}
	ls, err := src.Layers()
	if err != nil {
		return err
	}
	cl, err := partial.ConfigLayer(src)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pushJobs)
	for _, l := range append(ls, cl) {
		g.Go(func() error { return c.pusher.Upload(gctx, r.Context(), l) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return c.pusher.Put(ctx, r, src)
}

// mountFrom presents img's layers as mountable from ref's repository,
// unless a layer already names its own source.
type mountFrom struct {
	v1.Image
	ref name.Reference
}

func (m *mountFrom) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = m.wrap(l)
	}
	return out, nil
}

func (m *mountFrom) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return m.wrap(l), nil
}

func (m *mountFrom) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	return m.wrap(l), nil
}

func (m *mountFrom) wrap(l v1.Layer) v1.Layer {
	if ml, ok := l.(*ggcrremote.MountableLayer); ok {
		if ml.Reference.Context().RegistryStr() == m.ref.Context().RegistryStr() {
			return l
		}
		l = ml.Layer
	}
	return &ggcrremote.MountableLayer{Layer: l, Reference: m.ref}
}
