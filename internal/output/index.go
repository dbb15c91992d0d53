package output

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PlatformImage is the image built for one platform of a multi-platform
// build.
type PlatformImage struct {
	// Platform is the image's platform, normalized.
	Platform v1.Platform
	// Dir is the platform's directory name in a local export
	// ("linux_arm64", as buildx names it).
	Dir string
	// Image and PushImage are as in Request.
	Image, PushImage v1.Image
}

// IndexAnnotations are the annotations of an index: on the index itself
// (buildx's index:) and on each of its manifest descriptors
// (manifest-descriptor:).
type IndexAnnotations struct {
	Index, Descriptor map[string]string
}

// Index returns the OCI image index of images, one manifest per platform
// in the order given, each descriptor carrying its platform and
// ann.Descriptor, the index ann.Index. With push, the images are the
// PushImage ones (nil falls back to Image).
func Index(images []PlatformImage, push bool, ann IndexAnnotations) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, pi := range images {
		img := pi.Image
		if push && pi.PushImage != nil {
			img = pi.PushImage
		}
		p := pi.Platform
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p, Annotations: ann.Descriptor}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	if len(ann.Index) > 0 {
		idx = mutate.Annotations(idx, ann.Index).(v1.ImageIndex)
	}
	return idx
}

// writeMulti is Write for a build of several platforms: pushes and
// type=oci carry one index; type=local writes one directory per platform;
// type=docker, which holds one image, is refused.
func writeMulti(ctx context.Context, r Request, pushTags map[string]bool) error {
	idx := Index(r.Platforms, false, r.IndexAnnotations)
	for _, o := range r.Specs {
		tags := r.Tags
		if names := o.Names(); len(names) > 0 {
			tags = names
		}
		var err error
		switch o.Type {
		case Registry, Image:
			continue
		case OCI:
			if o.Dest == Stdout {
				err = WriteOCIIndexTar(ctx, r.Stdout, idx, tags)
			} else {
				err = writeFileAtomic(ctx, o.Dest, func(w io.Writer) error { return WriteOCIIndexTar(ctx, w, idx, tags) })
			}
		case Docker:
			err = fmt.Errorf("a docker tar holds one image, not the %d platforms of this build (%s): use type=oci, or one --platform", len(r.Platforms), platformList(r.Platforms))
		case Local:
			err = writeLocalMulti(ctx, r.Platforms, o.Dest)
		default:
			err = fmt.Errorf("unknown output type %q", o.Type)
		}
		if err != nil {
			return fmt.Errorf("writing %s output: %w", o.Type, err)
		}
	}
	if len(pushTags) == 0 {
		return nil
	}
	if r.Remote == nil {
		return fmt.Errorf("pushing: no registry client")
	}
	tags := orderedTags(r.Tags, pushTags)
	if err := r.Remote.PushIndex(ctx, Index(r.Platforms, true, r.IndexAnnotations), tags); err != nil {
		return fmt.Errorf("pushing %s: %w", strings.Join(tags, ", "), err)
	}
	return nil
}

func platformList(images []PlatformImage) string {
	var s []string
	for _, pi := range images {
		s = append(s, strings.ReplaceAll(pi.Dir, "_", "/"))
	}
	return strings.Join(s, ", ")
}

// CheckPlatforms returns an error naming the first output that cannot
// hold a build of n platforms (type=docker), or nil: the build checks it
// before any work.
func CheckPlatforms(specs []Spec, n int) error {
	if n < 2 {
		return nil
	}
	for _, o := range specs {
		if o.Type == Docker {
			return fmt.Errorf("--output type=docker holds one image, not %d platforms: use type=oci, or one --platform", n)
		}
	}
	return nil
}

// writeLocalMulti writes each platform's filesystem into dest/DIR (buildx's
// layout: dest/linux_amd64/, dest/linux_arm64/), each one atomically.
func writeLocalMulti(ctx context.Context, images []PlatformImage, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	for _, pi := range images {
		if err := WriteLocal(ctx, pi.Image, filepath.Join(dest, pi.Dir)); err != nil {
			return fmt.Errorf("%s: %w", pi.Dir, err)
		}
	}
	return nil
}

// WriteOCIIndexTar writes idx (its images and itself) as an OCI image
// layout tar whose index.json points at idx, once per tag as WriteOCITar
// does for one image.
func WriteOCIIndexTar(ctx context.Context, w io.Writer, idx v1.ImageIndex, tags []string) error {
	return writeOCILayoutTar(w, idx, tags, func(lw *layoutWriter) error {
		im, err := idx.IndexManifest()
		if err != nil {
			return fmt.Errorf("reading index: %w", err)
		}
		seen := map[v1.Hash]bool{}
		for _, d := range im.Manifests {
			img, err := idx.Image(d.Digest)
			if err != nil {
				return fmt.Errorf("reading image %s of the index: %w", d.Digest, err)
			}
			if err := writeBlobsSeen(ctx, lw, img, seen); err != nil {
				return err
			}
		}
		digest, err := idx.Digest()
		if err != nil {
			return err
		}
		raw, err := idx.RawManifest()
		if err != nil {
			return err
		}
		return writeEntry(lw.Writer, blobPath(digest), raw)
	})
}
