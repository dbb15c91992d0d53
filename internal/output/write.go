package output

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/remote"
)

// Request is what one build writes: its outputs and its pushes.
type Request struct {
	// Specs are the --output values.
	Specs []Spec
	// Tags name the image; with Push each is pushed.
	Tags []string
	// Push pushes the image to the registry of every tag (--push).
	Push bool
	// Stdout receives an output whose dest is "-".
	Stdout io.Writer
	// Image is the image written to files and directories.
	Image v1.Image
	// PushImage is the same image as pushed: its layers may be registry
	// layers that a push to their registry mounts instead of uploading.
	// nil means Image.
	PushImage v1.Image
	// Remote reaches registries; it may be nil when nothing is pushed.
	Remote *remote.Client
	// Platforms, when set, are the images of a multi-platform build: they
	// are written and pushed as one index, and Image and PushImage are
	// not used.
	Platforms []PlatformImage
	// IndexAnnotations annotate the index of Platforms.
	IndexAnnotations IndexAnnotations
}

// Write writes every output of r, then pushes the image to every tag that
// --push or a type=registry output names, once.
func Write(ctx context.Context, r Request) error {
	pushTags := map[string]bool{}
	if r.Push {
		for _, t := range r.Tags {
			pushTags[t] = true
		}
	}
	for _, o := range r.Specs {
		tags := r.Tags
		if names := o.Names(); len(names) > 0 {
			tags = names
		}
		if o.Type == Registry {
			for _, t := range tags {
				pushTags[t] = true
			}
		}
	}
	if len(r.Platforms) > 0 {
		return writeMulti(ctx, r, pushTags)
	}
	for _, o := range r.Specs {
		tags := r.Tags
		if names := o.Names(); len(names) > 0 {
			tags = names
		}
		if o.Type == Registry {
			continue
		}
		if err := writeOne(ctx, o, r.Stdout, r.Image, tags); err != nil {
			return fmt.Errorf("writing %s output: %w", o.Type, err)
		}
	}
	if len(pushTags) == 0 {
		return nil
	}
	return push(ctx, r, pushTags)
}

// writeOne writes one output that is not a push.
func writeOne(ctx context.Context, o Spec, stdout io.Writer, img v1.Image, tags []string) error {
	switch o.Type {
	case Image:
		return nil // an image that is not pushed goes nowhere: kiln has no image store
	case OCI:
		if o.Dest == Stdout {
			return WriteOCITar(ctx, stdout, img, tags)
		}
		return WriteOCI(ctx, img, tags, o.Dest)
	case Docker:
		if o.Dest == Stdout {
			return WriteDockerTar(ctx, stdout, img, tags)
		}
		return WriteDocker(ctx, img, tags, o.Dest)
	case Local:
		return WriteLocal(ctx, img, o.Dest)
	}
	return fmt.Errorf("unknown output type %q", o.Type)
}

// push pushes the image to tags: the --tag ones in their order, then the
// ones only outputs named.
func push(ctx context.Context, r Request, pushTags map[string]bool) error {
	if r.Remote == nil {
		return fmt.Errorf("pushing: no registry client")
	}
	tags := orderedTags(r.Tags, pushTags)
	img := r.PushImage
	if img == nil {
		img = r.Image
	}
	if err := r.Remote.Push(ctx, img, tags); err != nil {
		return fmt.Errorf("pushing %s: %w", strings.Join(tags, ", "), err)
	}
	return nil
}

// orderedTags are the tags to push: the --tag ones in their order, then
// the ones only outputs named, sorted. It empties pushTags.
func orderedTags(given []string, pushTags map[string]bool) []string {
	var tags []string
	for _, t := range given {
		if pushTags[t] {
			tags = append(tags, t)
			delete(pushTags, t)
		}
	}
	n := len(tags)
	for t := range pushTags {
		tags = append(tags, t)
	}
	sort.Strings(tags[n:])
	return tags
}

// WriteLocal writes the image's root filesystem into dest. It unpacks into
// a new directory beside dest and renames it into place, so a failed
// export leaves any earlier dest untouched.
func WriteLocal(ctx context.Context, img v1.Image, dest string) error {
	dest = filepath.Clean(dest)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("reading layer %d: %w", i, err)
		}
		err = layer.Apply(ctx, rc, tmp, layer.ApplyFlat)
		rc.Close()
		if err != nil {
			return fmt.Errorf("applying layer %d: %w", i, err)
		}
	}
	old := dest + ".old"
	os.RemoveAll(old)
	if _, err := os.Lstat(dest); err == nil {
		if err := os.Rename(dest, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		return err
	}
	return os.RemoveAll(old)
}
