package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/plan"
)

// ImageFor is Image for one platform: when ref names an index, the
// manifest whose platform is platform (compared normalized, see
// plan.NormalizePlatform) is chosen and its digest returned; when none is,
// the error names the platforms the index has. A ref that names a single
// image is that image when its config's platform is platform or unset,
// and an error naming its platform otherwise.
func (c *Client) ImageFor(ctx context.Context, ref string, platform v1.Platform) (v1.Image, v1.Hash, error) {
	r, err := c.ParseReference(ref)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	desc, err := ggcrremote.Get(r, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, v1.Hash{}, toError(r.Context().RegistryStr(), err)
	}
	want := plan.FormatPlatform(plan.NormalizePlatform(platform))
	// One manifest request for an image, two for an index (the index,
	// then the platform's manifest): the fetched manifest is used as is.
	var img v1.Image
	if desc.MediaType.IsIndex() {
		d, err := pickManifest(desc.Manifest, platform)
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("image %s: %w", ref, err)
		}
		r = r.Context().Digest(d.String())
		img, err = ggcrremote.Image(r, c.remoteOptions(ctx)...)
		if err != nil {
			return nil, v1.Hash{}, toError(r.Context().RegistryStr(), err)
		}
	} else if img, err = desc.Image(); err != nil {
		return nil, v1.Hash{}, toError(r.Context().RegistryStr(), err)
	}
	h, err := img.Digest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("resolving image %s: %w", ref, err)
	}
	if img, err = c.configure(ctx, r, img); err != nil {
		return nil, v1.Hash{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading the config of %s: %w", ref, err)
	}
	if cf.Architecture != "" {
		have := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
		if cf.OS == "" {
			have.OS = platform.OS
		}
		if !plan.SamePlatform(have, platform) {
			return nil, v1.Hash{}, fmt.Errorf("image %s is for %s only, not %s", ref, plan.FormatPlatform(plan.NormalizePlatform(have)), want)
		}
	}
	return img, h, nil
}

// pickManifest finds the manifest for platform in a raw index.
func pickManifest(raw []byte, platform v1.Platform) (v1.Hash, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return v1.Hash{}, fmt.Errorf("decoding index: %w", err)
	}
	var have []string
	for _, m := range idx.Manifests {
		if m.Platform == nil || m.Platform.OS == "unknown" {
			continue // attestations and the like
		}
		if plan.SamePlatform(*m.Platform, platform) {
			return m.Digest, nil
		}
		have = append(have, plan.FormatPlatform(plan.NormalizePlatform(*m.Platform)))
	}
	list := "none"
	if len(have) > 0 {
		list = strings.Join(have, ", ")
	}
	return v1.Hash{}, fmt.Errorf("no manifest for %s in the index (it has: %s)", plan.FormatPlatform(plan.NormalizePlatform(platform)), list)
}

// PushIndex writes idx, an index of images (one per platform), under every
// tag in tags, in order, and returns the first failure. Each image is
// pushed as Push pushes one (blobs the repository has are not sent, lazy
// registry layers are cross-repo mounted), then the index.
func (c *Client) PushIndex(ctx context.Context, idx v1.ImageIndex, tags []string) error {
	if len(tags) == 0 {
		return errors.New("remote: push needs at least one tag")
	}
	// As Push does: later repositories of a registry mount every blob
	// from the first one written there.
	firstRepo := map[string]name.Reference{}
	for _, t := range tags {
		r, err := c.ParseReference(t)
		if err != nil {
			return err
		}
		reg := r.Context().RegistryStr()
		var src v1.ImageIndex = idx
		if first, ok := firstRepo[reg]; ok && first.Context().RepositoryStr() != r.Context().RepositoryStr() {
			src = &mountIndex{idx: idx, ref: first}
		} else if !ok {
			firstRepo[reg] = r
		}
		if err := c.pusher.Push(ctx, r, src); err != nil {
			return fmt.Errorf("pushing index to %s: %w", t, toError(r.Context().RegistryStr(), err))
		}
		// As Push does: the repository now has every image's blobs.
		c.blobs.add(r.Context(), indexBlobs(idx)...)
	}
	return nil
}

// mountIndex is an index whose images' layers are mountable from ref's
// repository (mountFrom). Its manifests and digests are idx's own.
type mountIndex struct {
	idx v1.ImageIndex
	ref name.Reference
}

var _ v1.ImageIndex = (*mountIndex)(nil)

func (m *mountIndex) MediaType() (types.MediaType, error)         { return m.idx.MediaType() }
func (m *mountIndex) Digest() (v1.Hash, error)                    { return m.idx.Digest() }
func (m *mountIndex) Size() (int64, error)                        { return m.idx.Size() }
func (m *mountIndex) IndexManifest() (*v1.IndexManifest, error)   { return m.idx.IndexManifest() }
func (m *mountIndex) RawManifest() ([]byte, error)                { return m.idx.RawManifest() }
func (m *mountIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return m.idx.ImageIndex(h) }

func (m *mountIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.idx.Image(h)
	if err != nil {
		return nil, err
	}
	return &mountFrom{Image: img, ref: m.ref}, nil
}

// indexBlobs returns the digests of the config and layers of every image
// of idx, as their manifests name them (nothing is read).
func indexBlobs(idx v1.ImageIndex) []v1.Hash {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil
	}
	var out []v1.Hash
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			continue
		}
		out = append(out, imageBlobs(img)...)
	}
	return out
}
