package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/layer"
	"github.com/kiln-build/kiln/internal/output"
)

func hasRegistryOutput(outs []output.Spec) bool {
	for _, o := range outs {
		if o.Type == output.Registry || (o.Type == output.Image && o.Push) {
			return true
		}
	}
	return false
}

func namedRegistryOutput(outs []output.Spec) bool {
	for _, o := range outs {
		if (o.Type == output.Registry || o.Type == output.Image) && o.Name != "" {
			return true
		}
	}
	return false
}

// writeOutputs pushes pushImg and writes img (the same image; pushImg's
// layers may be registry layers that a push can mount).
func writeOutputs(ctx context.Context, opts Options, img, pushImg v1.Image) error {
	pushTags := map[string]bool{}
	if opts.Push {
		for _, t := range opts.Tags {
			pushTags[t] = true
		}
	}
	for _, o := range opts.Outputs {
		tags := opts.Tags
		if names := o.Names(); len(names) > 0 {
			tags = names
		}
		var err error
		switch o.Type {
		case output.Registry:
			for _, t := range tags {
				pushTags[t] = true
			}
		case output.Image:
			if o.Push {
				for _, t := range tags {
					pushTags[t] = true
				}
			}
		case output.OCI:
			if o.Dest == output.Stdout {
				err = output.WriteOCITar(ctx, opts.Stdout, img, tags)
			} else {
				err = output.WriteOCI(ctx, img, tags, o.Dest)
			}
		case output.Docker:
			if o.Dest == output.Stdout {
				err = output.WriteDockerTar(ctx, opts.Stdout, img, tags)
			} else {
				err = output.WriteDocker(ctx, img, tags, o.Dest)
			}
		case output.Local:
			err = writeLocal(ctx, img, o.Dest)
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
	if opts.Remote == nil {
		return fmt.Errorf("pushing: no registry client")
	}
	var tags []string
	for _, t := range opts.Tags {
		if pushTags[t] {
			tags = append(tags, t)
			delete(pushTags, t)
		}
	}
	for t := range pushTags {
		tags = append(tags, t)
	}
	if err := opts.Remote.Push(ctx, pushImg, tags); err != nil {
		return fmt.Errorf("pushing %s: %w", strings.Join(tags, ", "), err)
	}
	return nil
}

// writeLocal writes the image's root filesystem into dest. It unpacks into
// a new directory beside dest and renames it into place, so a failed
// export leaves any earlier dest untouched.
func writeLocal(ctx context.Context, img v1.Image, dest string) error {
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
