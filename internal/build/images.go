package build

import (
	"context"
	"fmt"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/remote"
)

// images resolves and remembers registry images for one build. Each
// reference is resolved once, by whichever caller asks first; callers of
// other references do not wait for it.
type images struct {
	remote *remote.Client
	mu     sync.Mutex
	byRef  map[imageAt]*imageCall
	byDig  map[v1.Hash]v1.Image
}

// imageCall is the resolution of one reference; done is closed when pi
// and err are set.
type imageCall struct {
	done chan struct{}
	pi   *plan.Image
	err  error
}

// imageAt is a reference resolved for one platform.
type imageAt struct{ ref, platform string }

func newImages(r *remote.Client) *images {
	return &images{remote: r, byRef: map[imageAt]*imageCall{}, byDig: map[v1.Hash]v1.Image{}}
}

// start begins resolving ref for platform unless it is resolved or being
// resolved, and returns its call.
func (im *images) start(ctx context.Context, ref string, platform v1.Platform) *imageCall {
	platform = plan.NormalizePlatform(platform)
	at := imageAt{ref, plan.FormatPlatform(platform)}
	im.mu.Lock()
	defer im.mu.Unlock()
	if c, ok := im.byRef[at]; ok {
		return c
	}
	c := &imageCall{done: make(chan struct{})}
	im.byRef[at] = c
	go func() {
		defer close(c.done)
		c.pi, c.err = im.fetch(ctx, ref, platform)
	}()
	return c
}

func (im *images) fetch(ctx context.Context, ref string, platform v1.Platform) (*plan.Image, error) {
	if im.remote == nil {
		return nil, fmt.Errorf("image %s: no registry client", ref)
	}
	img, digest, err := im.remote.ImageFor(ctx, ref, platform)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", ref, err)
	}
	im.mu.Lock()
	im.byDig[digest] = img
	im.mu.Unlock()
	return &plan.Image{Ref: ref, Digest: digest, Config: cf, Platform: platform}, nil
}

func (im *images) resolve(ctx context.Context, ref string, platform v1.Platform) (*plan.Image, error) {
	c := im.start(ctx, ref, platform)
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.err != nil {
		return nil, c.err
	}
	// Plan may fill in the value it is given: each caller gets its own.
	pi := *c.pi
	return &pi, nil
}

// prefetch starts resolving every registry image the Dockerfile names,
// all at once, so that planning (which resolves them one after the other,
// as it meets them) finds them resolved or on their way. It plans the
// Dockerfile once with a resolver that only starts the fetches and answers
// with an empty image; what that plan gets wrong (an image named through a
// base image's ENV, an ONBUILD trigger of a base) the real plan resolves
// itself. A Dockerfile that does not plan prefetches what it named before
// its error; the real plan reports the error. It plans once per target
// platform: an image is resolved for each platform a stage needs it for.
func (im *images) prefetch(ctx context.Context, opts Options, df []byte, dfPath string, platforms []v1.Platform) {
	if im.remote == nil {
		return
	}
	for _, p := range platforms {
		_, _ = dockerfile.Plan(ctx, df, dockerfile.Options{
			File:      displayName(dfPath, opts.ContextDir),
			BuildArgs: opts.BuildArgs,
			Target:    opts.Target,
			Platform:  p,
			Network:   opts.Network,
			ResolveImage: func(ctx context.Context, ref string, platform v1.Platform) (*plan.Image, error) {
				im.start(ctx, ref, platform)
				return &plan.Image{Ref: ref, Config: &v1.ConfigFile{}, Platform: platform}, nil
			},
			Contexts: plannedContexts(opts),
		})
	}
}

func (im *images) image(ctx context.Context, pi *plan.Image) (v1.Image, error) {
	im.mu.Lock()
	img, ok := im.byDig[pi.Digest]
	im.mu.Unlock()
	if ok {
		return img, nil
	}
	if _, err := im.resolve(ctx, pi.Ref, pi.Platform); err != nil {
		return nil, err
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if img, ok := im.byDig[pi.Digest]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("image %s changed while building (want %s)", pi.Ref, pi.Digest)
}
