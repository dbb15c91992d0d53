package output

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/internal/stream"
)

// WriteDocker writes img as a tar that `docker load` takes (manifest.json
// with RepoTags, the config and the layers) to dest, atomically. With no
// tags the image loads untagged. Tags must be tag references. Lazy layers
// are read (fetched) now.
//
// dest "-" is refused: write stdout through WriteDockerTar.
func WriteDocker(ctx context.Context, img v1.Image, tags []string, dest string) error {
	return writeFileAtomic(ctx, dest, func(w io.Writer) error {
		if err := WriteDockerTar(ctx, w, img, tags); err != nil {
			return fmt.Errorf("writing docker tar to %s: %w", dest, err)
		}
		return nil
	})
}

// WriteDockerTar is WriteDocker to a writer, e.g. stdout for dest "-".
func WriteDockerTar(ctx context.Context, w io.Writer, img v1.Image, tags []string) error {
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return fmt.Errorf("parsing tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	if len(refs) == 0 {
		// tarball needs a reference; a digest one adds no RepoTags.
		d, err := img.Digest()
		if err != nil {
			return fmt.Errorf("reading image digest: %w", err)
		}
		ref, err := name.NewDigest("kiln/untagged@" + d.String())
		if err != nil {
			return fmt.Errorf("naming untagged image: %w", err)
		}
		refs[ref] = img
	}
	return tarball.MultiRefWrite(refs, stream.Writer(ctx, w))
}
