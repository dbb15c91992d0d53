package output

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations written on each index.json entry of an OCI layout.
const (
	// AnnotationRefName is the OCI reference name: the tag only ("v1"),
	// as containerd and buildkit write it.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationImageName is containerd's full image name
	// ("docker.io/library/app:v1"), which `ctr import` and nerdctl use.
	AnnotationImageName = "io.containerd.image.name"
)

// WriteOCI writes img as an OCI image layout tar to dest, atomically (a
// temporary file renamed into place). index.json has one entry per tag,
// annotated with AnnotationRefName and AnnotationImageName; with no tags,
// one entry without annotations. Tags must be tag references (REPO:TAG; a
// missing tag means latest). Lazy layers are read (fetched) now.
//
// dest "-" is refused: write stdout through WriteOCITar.
func WriteOCI(ctx context.Context, img v1.Image, tags []string, dest string) error {
	return writeFileAtomic(ctx, dest, func(w io.Writer) error {
		if err := WriteOCITar(ctx, w, img, tags); err != nil {
			return fmt.Errorf("writing OCI layout to %s: %w", dest, err)
		}
		return nil
	})
}

// WriteOCITar is WriteOCI to a writer, e.g. stdout for dest "-". Entries
// are written in a fixed order with fixed times, so the same image and
// tags give the same bytes.
func WriteOCITar(ctx context.Context, w io.Writer, img v1.Image, tags []string) error {
	return writeOCILayoutTar(w, img, tags, func(lw *layoutWriter) error {
		return writeBlobs(ctx, lw, img)
	})
}

// layoutWriter is the tar of an OCI layout being written, and the writer
// under it, which the bytes of a layer that is a file go to directly
// (writeFileEntry).
type layoutWriter struct {
	*tar.Writer
	raw io.Writer
}

// writeOCILayoutTar writes an OCI image layout tar whose index.json
// points at top under tags: oci-layout, the blob directories, the blobs
// writeBlobs writes, then index.json.
func writeOCILayoutTar(w io.Writer, top manifestLike, tags []string, writeBlobs func(*layoutWriter) error) error {
	index, err := ociIndex(top, tags)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := writeBlobs(&layoutWriter{Writer: tw, raw: w}); err != nil {
		return err
	}
	if err := writeEntry(tw, "index.json", index); err != nil {
		return err
	}
	return tw.Close()
}

// epoch is the mtime of every entry: output tars are reproducible.
var epoch = time.Unix(0, 0)

// manifestLike is an image or an index: what index.json points at.
type manifestLike interface {
	MediaType() (types.MediaType, error)
	Digest() (v1.Hash, error)
	Size() (int64, error)
}

// ociIndex builds index.json for img (an image or an index) under tags.
func ociIndex(img manifestLike, tags []string) ([]byte, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, fmt.Errorf("reading image media type: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading image digest: %w", err)
	}
	size, err := img.Size()
	if err != nil {
		return nil, fmt.Errorf("reading image size: %w", err)
	}
	base := v1.Descriptor{MediaType: mt, Digest: digest, Size: size}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if len(tags) == 0 {
		idx.Manifests = append(idx.Manifests, base)
	}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return nil, fmt.Errorf("parsing tag %q: %w", t, err)
		}
		d := base
		d.Annotations = map[string]string{
			AnnotationRefName:   tag.TagStr(),
			AnnotationImageName: fullName(tag),
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	return json.Marshal(idx)
}

// fullName is tag in containerd's normalized form: Docker Hub as docker.io.
func fullName(tag name.Tag) string {
	reg := tag.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

// writeBlobs writes img's layers, config and manifest under blobs/sha256/,
// each digest once.
func writeBlobs(ctx context.Context, lw *layoutWriter, img v1.Image) error {
	return writeBlobsSeen(ctx, lw, img, map[v1.Hash]bool{})
}

// writeBlobsSeen is writeBlobs skipping (and adding to) the digests in seen.
func writeBlobsSeen(ctx context.Context, lw *layoutWriter, img v1.Image, seen map[v1.Hash]bool) error {
	tw := lw.Writer
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("listing layers: %w", err)
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("reading layer digest: %w", err)
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := writeLayer(lw, blobPath(d), l); err != nil {
			return err
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("reading config digest: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if !seen[cfgName] {
		seen[cfgName] = true
		if err := writeEntry(tw, blobPath(cfgName), cfg); err != nil {
			return err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("reading manifest digest: %w", err)
	}
	m, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	if seen[digest] {
		return nil
	}
	seen[digest] = true
	return writeEntry(tw, blobPath(digest), m)
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// writeLayer copies l's compressed bytes into the tar.
func writeLayer(lw *layoutWriter, path string, l v1.Layer) error {
	size, err := l.Size()
	if err != nil {
		return fmt.Errorf("reading layer size: %w", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", path, err)
	}
	defer rc.Close()
	if f, ok := rc.(*os.File); ok {
		return writeFileEntry(lw, path, size, f)
	}
	tw := lw.Writer
	if err := tw.WriteHeader(fileHeader(path, size)); err != nil {
		return err
	}
	if _, err := io.Copy(tw, rc); err != nil {
		return fmt.Errorf("copying layer %s: %w", path, err)
	}
	// A short layer leaves the entry open; Flush reports it.
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("copying layer %s: %w", path, err)
	}
	return nil
}

// writeFileEntry writes the entry of a layer whose bytes are the file f
// (a blob of the state dir) around the tar writer, so that they go from
// file to file in the kernel (copy_file_range: the writer under the tar is
// the output file, whose ReadFrom stream.Writer hands them to), not
// through this process: the header comes from a scratch tar writer (the
// same bytes lw would write: a header depends on nothing else), then the
// body straight into lw.raw, then the padding to the next 512-byte block.
// lw is between entries before and after, so it writes on unaware.
func writeFileEntry(lw *layoutWriter, path string, size int64, f *os.File) error {
	// A file of another size is refused, as the tar writer would refuse
	// too many or too few bytes.
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		if err == nil {
			err = fmt.Errorf("%d bytes, want %d", fi.Size(), size)
		}
		return fmt.Errorf("copying layer %s: %w", path, err)
	}
	if err := lw.Flush(); err != nil {
		return err
	}
	var hdr bytes.Buffer
	if err := tar.NewWriter(&hdr).WriteHeader(fileHeader(path, size)); err != nil {
		return err
	}
	if _, err := lw.raw.Write(hdr.Bytes()); err != nil {
		return err
	}
	n, err := io.Copy(lw.raw, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("copying layer %s: %w", path, err)
	}
	if n != size {
		return fmt.Errorf("copying layer %s: %d bytes, want %d: %w", path, n, size, io.ErrUnexpectedEOF)
	}
	if pad := (blockSize - size%blockSize) % blockSize; pad > 0 {
		if _, err := lw.raw.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return nil
}

// blockSize is the tar block size entries are padded to.
const blockSize = 512

func writeEntry(tw *tar.Writer, path string, data []byte) error {
	if err := tw.WriteHeader(fileHeader(path, int64(len(data)))); err != nil {
		return err
	}
	_, err := io.Copy(tw, bytes.NewReader(data))
	return err
}

func fileHeader(path string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: path, Size: size, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}
}
