package build

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// annotate sets opts.Annotations on the image manifest (--annotation,
// buildx's manifest level). The image's digest is then that of the
// annotated manifest; layers stay lazy.
func annotate(img v1.Image, annotations map[string]string) v1.Image {
	if len(annotations) == 0 {
		return img
	}
	return mutate.Annotations(img, annotations).(v1.Image)
}

// descriptorOf is the manifest descriptor buildx writes to the metadata
// file as containerimage.descriptor, of an image or an index.
func descriptorOf(img interface {
	MediaType() (types.MediaType, error)
	Size() (int64, error)
	Digest() (v1.Hash, error)
}) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: size, Digest: d}, nil
}
