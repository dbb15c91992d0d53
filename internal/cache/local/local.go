package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/cache"
)

const (
	refNameAnnotation       = "org.opencontainers.image.ref.name"
	containerdNameAnnotaton = "io.containerd.image.name"
	indexFile               = "index.json"
	lockFile                = "index.json.lock"
	layoutFile              = "oci-layout"
)

// ErrNotDir is returned for a cache directory whose blobs directory is a
// symlink or another non-directory: it is refused, never followed.
var ErrNotDir = errors.New("local: not a directory (a symlink?), refusing to follow it out of the cache")

// dir is a cache directory and the tag (or digest) a cache is kept under.
type dir struct {
	path   string
	tag    string
	digest *v1.Hash
}

var (
	_ cache.BlobStore  = (*dir)(nil)
	_ cache.Locker     = (*dir)(nil)
	_ cache.FilePutter = (*dir)(nil)
)

// NewImporter returns the importer of a type=local cache. A directory that
// does not exist, or holds no cache under the tag, is cache.ErrNotFound.
func NewImporter(c ImportConfig) cache.Importer {
	return cache.NewImporter(&dir{path: c.Src, tag: c.Tag, digest: c.Digest})
}

// NewExporter returns the exporter of a type=local cache.
func NewExporter(c ExportConfig) cache.Exporter {
	return cache.NewExporter(&dir{path: c.Dest, tag: c.Tag})
}

func (d *dir) blobPath(h v1.Hash) string {
	return filepath.Join(d.path, "blobs", h.Algorithm, h.Hex)
}

func validHash(h v1.Hash) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 || strings.ContainsAny(h.Hex, "/\\.") {
		return fmt.Errorf("unsupported digest %q", h)
	}
	return nil
}

func (d *dir) Fetch(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	if err := validHash(desc.Digest); err != nil {
		return nil, err
	}
	if err := checkBlobDirs(d.path); err != nil {
		return nil, err
	}
	f, err := os.Open(d.blobPath(desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s in %s: %w", desc.Digest, d.path, cache.ErrNotFound)
	}
	return f, err
}

func (d *dir) Has(ctx context.Context, desc v1.Descriptor) (bool, error) {
	if err := validHash(desc.Digest); err != nil {
		return false, err
	}
	if err := checkBlobDirs(d.path); err != nil {
		return false, err
	}
	fi, err := os.Stat(d.blobPath(desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A blob of the wrong size is as good as absent: rewrite it.
	return desc.Size < 0 || fi.Size() == desc.Size, nil
}

func (d *dir) Put(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	blobs, err := d.blobsDir(desc)
	if err != nil {
		return err
	}
	return d.copyIn(blobs, desc, r)
}

// blobsDir checks desc's digest and the cache's blob directories, creating
// them, and returns the one desc's blob goes in.
func (d *dir) blobsDir(desc v1.Descriptor) (string, error) {
	if err := validHash(desc.Digest); err != nil {
		return "", err
	}
	if err := checkBlobDirs(d.path); err != nil {
		return "", err
	}
	blobs := filepath.Join(d.path, "blobs", desc.Digest.Algorithm)
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", blobs, err)
	}
	return blobs, nil
}

// PutFile stores the blob in f, whose bytes the caller verified, as a hard
// link to f's file when the cache is on its file system, else as a copy
// that an *os.File source lets the kernel make (copy_file_range).
//
// Sharing the inode is safe because neither side ever writes into a blob
// file: kiln's store and this cache both write a temporary file and rename
// it into place, so a blob written again replaces a name, never the shared
// bytes, and garbage collection on either side unlinks only its own name.
// The blob is content-addressed, so the two names can never need different
// bytes. What is shared is the inode's metadata (mode 0644, owner, mtime);
// a tool that wrote into this cache's files in place would change the
// store's blob too, which the store then no longer counts as verified
// (store.OpenBlobFile), so it is hashed again before any later export; the
// store also hashes every linked blob it hands out otherwise
// (store.OpenBlob: an image output or push of it), and its diff ID is
// checked before it is ever unpacked. A linked blob's disk
// space is freed once both names are gone (kiln prune alone frees none).
func (d *dir) PutFile(ctx context.Context, desc v1.Descriptor, f *os.File) error {
	blobs, err := d.blobsDir(desc)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if desc.Size >= 0 && fi.Size() != desc.Size {
		return fmt.Errorf("blob %s is %d bytes, want %d: %w", desc.Digest, fi.Size(), desc.Size, cache.ErrDigestMismatch)
	}
	if linked, err := d.link(blobs, desc, f, fi); linked || err != nil {
		return err
	}
	return d.copyIn(blobs, desc, f)
}

// link hard-links f's file into place as desc's blob. linked is false
// (and err nil) when it cannot be linked: another file system, a file
// system without hard links, or f's name no longer naming f's file.
func (d *dir) link(blobs string, desc v1.Descriptor, f *os.File, fi fs.FileInfo) (linked bool, err error) {
	// A fresh name to link to: reserved by CreateTemp, then freed for the
	// link (Link does not replace).
	tmp, err := os.CreateTemp(blobs, ".tmp-"+desc.Digest.Hex[:12]+"-*")
	if err != nil {
		return false, err
	}
	name := tmp.Name()
	tmp.Close()
	if err := os.Remove(name); err != nil {
		return false, err
	}
	if err := os.Link(f.Name(), name); err != nil {
		return false, nil
	}
	defer os.Remove(name)
	// f was verified, not whatever its name names now.
	if lfi, err := os.Lstat(name); err != nil || !os.SameFile(fi, lfi) {
		return false, nil
	}
	if err := os.Rename(name, d.blobPath(desc.Digest)); err != nil {
		return false, err
	}
	return true, nil
}

// copyIn writes what r yields as desc's blob: to a temporary file renamed
// into place.
func (d *dir) copyIn(blobs string, desc v1.Descriptor, r io.Reader) error {
	tmp, err := os.CreateTemp(blobs, ".tmp-"+desc.Digest.Hex[:12]+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// An *os.File r is copied in the kernel (File.ReadFrom).
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), d.blobPath(desc.Digest))
}

// Root returns the manifest of the tag (or digest) from index.json.
func (d *dir) Root(ctx context.Context) ([]byte, error) {
	var desc v1.Descriptor
	if d.digest != nil {
		desc = v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: *d.digest, Size: -1}
	} else {
		idx, err := readIndex(d.path)
		if err != nil {
			return nil, err
		}
		found := false
		for _, m := range idx.Manifests {
			if m.Annotations[containerdNameAnnotaton] == d.tag || m.Annotations[refNameAnnotation] == d.tag {
				desc, found = m, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("no cache tagged %q in %s: %w", d.tag, d.path, cache.ErrNotFound)
		}
	}
	rc, err := d.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := cache.ReadAllLimited(cache.VerifyReader(rc, desc.Digest, desc.Size), "cache manifest "+desc.Digest.String()+" in "+d.path, cache.MaxRootSize)
	if err != nil {
		return nil, fmt.Errorf("reading cache manifest %s: %w", desc.Digest, err)
	}
	return b, nil
}

// readIndex reads index.json; a missing directory or index is
// cache.ErrNotFound.
func readIndex(path string) (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(path, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no cache in %s: %w", path, cache.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := cache.ReadAllLimited(f, filepath.Join(path, indexFile), cache.MaxRootSize)
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(path, indexFile), err)
	}
	return &idx, nil
}

// Lock takes an exclusive flock on index.json.lock for a whole export, so
// that one export's garbage collection never deletes another's fresh blobs.
func (d *dir) Lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return nil, fmt.Errorf("creating cache directory: %w", err)
	}
	if err := checkBlobDirs(d.path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(d.path, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking cache directory: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking cache directory: %w", err)
		}
	case <-ctx.Done():
		// The flock goroutine ends when the holder unlocks; closing the file
		// releases whatever it got.
		go func() { <-done; f.Close() }()
		return nil, ctx.Err()
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// SetRoot stores the manifest blob, points the tag at it in a new
// index.json (renamed into place), then deletes unreferenced blobs.
func (d *dir) SetRoot(ctx context.Context, manifest []byte) error {
	desc, err := describe(manifest)
	if err != nil {
		return err
	}
	if ok, _ := d.Has(ctx, desc); !ok {
		if err := d.Put(ctx, desc, strings.NewReader(string(manifest))); err != nil {
			return err
		}
	}
	idx, err := readIndex(d.path)
	if errors.Is(err, cache.ErrNotFound) {
		idx, err = &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	if err != nil {
		return err
	}
	keep := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		if m.Annotations[refNameAnnotation] != d.tag && m.Annotations[containerdNameAnnotaton] != d.tag {
			keep = append(keep, m)
		}
	}
	desc.Annotations = map[string]string{refNameAnnotation: d.tag}
	idx.Manifests = append(keep, desc)
	if err := atomicfile.Write(filepath.Join(d.path, layoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(d.path, indexFile), b, 0o644); err != nil {
		return err
	}
	return collect(ctx, d.path, idx)
}

// markLive marks h and, if it is a manifest or an index, everything it
// refers to.
func markLive(path string, h v1.Hash, live map[string]bool, depth int) {
	if h.Algorithm != "sha256" || live[h.Hex] {
		return
	}
	live[h.Hex] = true
	if depth > maxIndexDepth || validHash(h) != nil {
		return
	}
	b, err := os.ReadFile(filepath.Join(path, "blobs", h.Algorithm, h.Hex))
	if err != nil {
		return
	}
	// Manifests and indexes in one shape: whichever fields the blob has.
	var doc struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
		Subject   *v1.Descriptor  `json:"subject"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return
	}
	if doc.Config != nil {
		live[doc.Config.Digest.Hex] = true
	}
	for _, l := range doc.Layers {
		live[l.Digest.Hex] = true
	}
	if doc.Subject != nil {
		markLive(path, doc.Subject.Digest, live, depth+1)
	}
	for _, m := range doc.Manifests {
		markLive(path, m.Digest, live, depth+1)
	}
}

// checkBlobDirs refuses a cache directory whose blobs or blobs/sha256 is
// not a real directory (a symlink, say, that a restored archive planted):
// writing or collecting garbage through it would touch files outside the
// cache directory.
func checkBlobDirs(path string) error {
	for _, rel := range []string{"blobs", filepath.Join("blobs", "sha256")} {
		fi, err := os.Lstat(filepath.Join(path, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("checking local cache %s: %w", path, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("local cache %s: %s: %w", path, rel, ErrNotDir)
		}
	}
	return nil
}

func describe(manifest []byte) (v1.Descriptor, error) {
	h, size, err := v1.SHA256(strings.NewReader(string(manifest)))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: size}, nil
}

// maxIndexDepth bounds how deep collect follows indexes of indexes.
const maxIndexDepth = 8

// collect deletes every blob that nothing reachable from idx refers to: a
// manifest keeps its config and layers (and subject), an index keeps its
// manifests, recursively, so an image index stored beside the cache under
// another tag keeps every platform's image. A blob that cannot be read or
// decoded keeps only itself (the other tags' owners will rewrite it), which
// errs on the side of keeping blobs.
func collect(ctx context.Context, path string, idx *v1.IndexManifest) error {
	if err := checkBlobDirs(path); err != nil {
		return err
	}
	live := map[string]bool{}
	for _, m := range idx.Manifests {
		markLive(path, m.Digest, live, 0)
	}
	blobs := filepath.Join(path, "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return fmt.Errorf("listing %s: %w", blobs, err)
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if live[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(blobs, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing unreferenced blob: %w", err)
		}
	}
	return nil
}
