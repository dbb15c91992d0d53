package build

import (
	"context"
	"log/slog"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/remote"
)

// earlyUploadParallelism bounds the layer uploads running beside the
// build.
const earlyUploadParallelism = 2

// uploader sends each layer of the image's own stage to the registries the
// image is pushed to as soon as the step that made it is done, while the
// build goes on: the push at the end then finds the blobs there and sends
// only the manifest. One repository per registry gets them (the first tag's
// there); the push mounts them into the others. A failed upload is left to
// the push, which sends what is missing.
type uploader struct {
	ctx    context.Context
	remote *remote.Client
	logger *slog.Logger
	target *plan.Stage
	repos  []string
	sem    chan struct{}
	wg     sync.WaitGroup // every upload
	layers sync.WaitGroup // the layers' uploads
	// sent[i] is closed once a layer's bytes go to repos[i]: the registry
	// did not have it, so no manifest of the image can be there yet.
	sent     []chan struct{}
	sentOnce []sync.Once
}

// newUploader returns nil when the build pushes nothing.
func newUploader(ctx context.Context, opts Options, g *plan.Graph) *uploader {
	if !opts.Push || opts.Remote == nil || g.Target == nil {
		return nil
	}
	seen := map[string]bool{}
	var repos []string
	for _, t := range opts.Tags {
		r, err := opts.Remote.ParseReference(t)
		if err != nil {
			continue
		}
		if reg := r.Context().RegistryStr(); !seen[reg] {
			seen[reg] = true
			repos = append(repos, repoName(r))
		}
	}
	if len(repos) == 0 {
		return nil
	}
	u := &uploader{ctx: ctx, remote: opts.Remote, logger: opts.Logger, target: g.Target, repos: repos,
		sem: make(chan struct{}, earlyUploadParallelism), sentOnce: make([]sync.Once, len(repos))}
	for range repos {
		u.sent = append(u.sent, make(chan struct{}))
	}
	return u
}

func repoName(r name.Reference) string { return r.Context().Name() }

// layerDone is solve.Options.LayerDone: it starts the uploads of l when
// step is in the image's stage.
func (u *uploader) layerDone(step *plan.Step, l v1.Layer) {
	if step.Stage != u.target {
		return
	}
	for i, repo := range u.repos {
		u.layers.Add(1)
		u.wg.Go(func() {
			defer u.layers.Done()
			select {
			case u.sem <- struct{}{}:
			case <-u.ctx.Done():
				return
			}
			defer func() { <-u.sem }()
			// The bytes are read only when the registry lacks the blob.
			l := remote.CountReads(l, func(int64) { u.sentOnce[i].Do(func() { close(u.sent[i]) }) })
			if err := u.remote.WriteLayer(u.ctx, repo, l); err != nil {
				u.logger.Debug("early layer upload failed; the push sends it", "repo", repo, "err", err)
			}
		})
	}
}

// configDone starts the uploads of img's config blob, which exists once
// the image is assembled, beside the last layers' uploads: the push then
// has only the manifest to send. The config is a few kilobytes, so it
// does not queue behind the layers for a slot. A repository gets it once
// one of the image's layers was sent there; where every layer was there
// already, the image may be too, and the push's one question about the
// tag is all it takes to find out.
func (u *uploader) configDone(img v1.Image) {
	if u == nil {
		return
	}
	cl, err := partial.ConfigLayer(img)
	if err != nil {
		return // the push reports it
	}
	layersDone := make(chan struct{})
	u.wg.Go(func() { // in wg, so that wait also waits for this Wait
		u.layers.Wait()
		close(layersDone)
	})
	for i, repo := range u.repos {
		u.wg.Go(func() {
			select {
			case <-u.sent[i]:
			case <-layersDone:
				select {
				case <-u.sent[i]:
				default:
					return
				}
			case <-u.ctx.Done():
				return
			}
			if err := u.remote.WriteLayer(u.ctx, repo, cl); err != nil {
				u.logger.Debug("early config upload failed; the push sends it", "repo", repo, "err", err)
			}
		})
	}
}

// wait returns when every upload started has ended.
func (u *uploader) wait() {
	if u != nil {
		u.wg.Wait()
	}
}
