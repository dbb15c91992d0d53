package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ggcrstream "github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/stream"
)

// ErrNotFound is a manifest or blob the registry does not have.
var ErrNotFound = errors.New("remote: not found")

// notFound wraps ErrNotFound when err is the registry's 404 (or its
// MANIFEST_UNKNOWN / BLOB_UNKNOWN / NAME_UNKNOWN codes); other errors become
// a *transport.Error as everywhere in this package.
func notFound(registry, what string, err error) error {
	var terr *ggcrtransport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case ggcrtransport.ManifestUnknownErrorCode, ggcrtransport.BlobUnknownErrorCode, ggcrtransport.NameUnknownErrorCode:
				return fmt.Errorf("%s: %w", what, ErrNotFound)
			}
		}
	}
	return fmt.Errorf("%s: %w", what, toError(registry, err))
}

// Manifest fetches the raw manifest (image or index) ref names, with its
// media type and digest. A missing one is ErrNotFound.
func (c *Client) Manifest(ctx context.Context, ref string) ([]byte, types.MediaType, v1.Hash, error) {
	r, err := c.ParseReference(ref)
	if err != nil {
		return nil, "", v1.Hash{}, err
	}
	d, err := ggcrremote.Get(r, c.remoteOptions(ctx)...)
	if err != nil {
		err = notFound(r.Context().RegistryStr(), "fetching manifest "+ref, err)
		if errors.Is(err, ErrNotFound) {
			c.held.put(r, heldManifest{missing: true})
		}
		return nil, "", v1.Hash{}, err
	}
	c.held.put(r, heldManifest{raw: d.Manifest, mt: d.MediaType})
	return d.Manifest, d.MediaType, d.Digest, nil
}

// rawManifest is a manifest to PUT as is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// PutManifest uploads a raw manifest under ref. Every blob it refers to
// must already be in the repository.
func (c *Client) PutManifest(ctx context.Context, ref string, raw []byte, mediaType types.MediaType) error {
	r, err := c.ParseReference(ref)
	if err != nil {
		return err
	}
	if err := ggcrremote.Put(r, rawManifest{raw, mediaType}, c.remoteOptions(ctx)...); err != nil {
		c.held.forget(r) // the tag may or may not have moved
		return fmt.Errorf("pushing manifest %s: %w", ref, toError(r.Context().RegistryStr(), err))
	}
	c.held.put(r, heldManifest{raw: raw, mt: mediaType})
	return nil
}

// BlobExists reports whether repo holds the blob. A blob this client saw
// there or wrote there (BlobExists, WriteLayer, Push) is there without a
// request. A blob it finds missing is uploaded by the next WriteLayer of
// it without asking again.
func (c *Client) BlobExists(ctx context.Context, repo string, digest v1.Hash) (bool, error) {
	r, rerr := name.NewRepository(repo, c.nameOptions(repo)...)
	if rerr == nil && c.blobs.has(r, digest) {
		return true, nil
	}
	l, err := c.Layer(ctx, repo, digest)
	if err != nil {
		return false, err
	}
	if _, err := l.Size(); err != nil {
		err = notFound(c.registryOf(repo), "checking blob "+digest.String(), err)
		if errors.Is(err, ErrNotFound) {
			if rerr == nil {
				c.blobs.addMissing(r, digest)
			}
			return false, nil
		}
		return false, err
	}
	if rerr == nil {
		c.blobs.add(r, digest)
	}
	return true, nil
}

// Blob opens a blob of repo. A missing blob is ErrNotFound; ggcr checks
// the digest as the blob is read. The caller closes the reader.
func (c *Client) Blob(ctx context.Context, repo string, digest v1.Hash) (io.ReadCloser, error) {
	l, err := c.Layer(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, notFound(c.registryOf(repo), "fetching blob "+digest.String(), err)
	}
	return rc, nil
}

// WriteLayer uploads l to repo unless it is already there. A layer that
// Image or Layer returned from another repository of the same registry is
// cross-repo mounted instead of uploaded.
//
// Whether the blob is there is asked first (a HEAD), unless this client
// just asked (BlobExists found it missing, the way a cache export checks
// each blob before it writes it): then the upload starts at once. The
// answer may be stale; an upload of a blob that arrived meanwhile costs
// its bytes, not a failure. A mountable layer is always asked about, as
// ggcr offers the mount only after its own HEAD.
func (c *Client) WriteLayer(ctx context.Context, repo string, l v1.Layer) error {
	r, err := name.NewRepository(repo, c.nameOptions(repo)...)
	if err != nil {
		return fmt.Errorf("parsing repository %s: %w", repo, err)
	}
	d, derr := l.Digest()
	if derr == nil {
		// ggcr reads the bytes only after a HEAD found the blob missing
		// (a mount reads nothing), or after BlobExists did: Push then
		// knows no manifest listing it is in the repository yet.
		l = onOpen(l, func() { c.blobs.addSent(r, d) })
		if _, mountable := l.(*ggcrremote.MountableLayer); !mountable && c.blobs.takeMissing(r, d) {
			l = &lateDigest{Layer: l}
		}
	}
	if err := ggcrremote.WriteLayer(r, l, c.remoteOptions(ctx)...); err != nil {
		return fmt.Errorf("writing blob to %s: %w", repo, toError(r.RegistryStr(), err))
	}
	if d, err := l.Digest(); err == nil {
		c.blobs.add(r, d)
	}
	return nil
}

// lateDigest is a layer whose digest is known only once its bytes are
// opened, as a ggcr stream.Layer's is: ggcr then uploads it without first
// asking the registry whether it has it, and commits it under the digest.
// Unlike a stream.Layer, its size is known and its bytes can be read again,
// so a failed request is retried.
type lateDigest struct {
	v1.Layer
	opened atomic.Bool
}

func (l *lateDigest) Digest() (v1.Hash, error) {
	if !l.opened.Load() {
		return v1.Hash{}, ggcrstream.ErrNotComputed
	}
	return l.Layer.Digest()
}

func (l *lateDigest) Compressed() (io.ReadCloser, error) {
	l.opened.Store(true)
	return l.Layer.Compressed()
}

// registryOf returns the registry host of a repository string.
func (c *Client) registryOf(repo string) string {
	r, err := name.NewRepository(repo)
	if err != nil {
		return repo
	}
	return r.RegistryStr()
}

// nameOptions marks a repository insecure when its registry is.
func (c *Client) nameOptions(repo string) []name.Option {
	if r, err := name.NewRepository(repo); err == nil && c.allowHTTP(r.RegistryStr()) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Mountable returns l marked as living in repo: a push of it to another
// repository of the same registry is a cross-repo mount (ggcr recognises
// its *MountableLayer), while its descriptors and bytes stay l's own.
func (c *Client) Mountable(l v1.Layer, repo string) (v1.Layer, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	ref, err := c.ParseReference(repo + "@" + d.String())
	if err != nil {
		return nil, err
	}
	return &ggcrremote.MountableLayer{Layer: l, Reference: ref}, nil
}

// CountReads returns l with every byte read through Compressed reported to
// add. A mountable layer stays mountable (a mount reads nothing).
func CountReads(l v1.Layer, add func(int64)) v1.Layer {
	if ml, ok := l.(*ggcrremote.MountableLayer); ok {
		return &ggcrremote.MountableLayer{Layer: CountReads(ml.Layer, add), Reference: ml.Reference}
	}
	return countingLayer{Layer: l, add: add}
}

// onOpen returns l with opened called each time its bytes are opened
// (Compressed). A mountable layer stays mountable.
func onOpen(l v1.Layer, opened func()) v1.Layer {
	if ml, ok := l.(*ggcrremote.MountableLayer); ok {
		return &ggcrremote.MountableLayer{Layer: onOpen(ml.Layer, opened), Reference: ml.Reference}
	}
	return openedLayer{Layer: l, opened: opened}
}

type openedLayer struct {
	v1.Layer
	opened func()
}

func (l openedLayer) Compressed() (io.ReadCloser, error) {
	l.opened()
	return l.Layer.Compressed()
}

type countingLayer struct {
	v1.Layer
	add func(int64)
}

func (l countingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return stream.Count(rc, l.add), nil
}
