package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/stream"
	"github.com/kiln-build/kiln/internal/transport"
)

// Caps on the JSON documents a registry sends (see stream.ReadAllLimited).
const (
	// MaxManifestSize caps an image manifest or index: 4 MiB is what the
	// distribution registry itself accepts.
	MaxManifestSize = 4 << 20
	// MaxConfigSize caps an image config.
	MaxConfigSize = 16 << 20
)

// MaxFetchAttempts bounds how often one blob is downloaded when its bytes
// fail their digest check or stop short. Answers the transport retries
// (429, 5xx, dropped connections) count once.
const MaxFetchAttempts = 4

// ErrDigestMismatch is a blob whose bytes do not hash to its digest (or
// whose size is not the one its descriptor says), after MaxFetchAttempts
// downloads.
var ErrDigestMismatch = errors.New("remote: blob digest mismatch")

// manifestURLPath matches a manifest GET or HEAD.
var manifestURLPath = regexp.MustCompile(`/v2/.+/manifests/[^/]+$`)

// manifestCap fails the body of a manifest answer once it passes
// MaxManifestSize, so no registry makes kiln read a huge manifest (ggcr's
// own cap is 100 MiB, held in memory several times over while decoding).
type manifestCap struct {
	next http.RoundTripper
}

func (m *manifestCap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := m.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !manifestURLPath.MatchString(req.URL.Path) || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	what := "the manifest at " + transport.RedactURL(req.URL)
	if resp.ContentLength > MaxManifestSize {
		resp.Body.Close()
		return nil, &stream.TooLargeError{What: what, Limit: MaxManifestSize}
	}
	resp.Body = stream.LimitReader(resp.Body, what, MaxManifestSize)
	return resp, nil
}

// Unwrap returns the transport below, so its capabilities stay visible.
func (m *manifestCap) Unwrap() http.RoundTripper { return m.next }

// CloseIdleConnections forwards to the transport below.
func (m *manifestCap) CloseIdleConnections() {
	if c, ok := m.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// readBlob downloads a small blob (an image config) whole, checked against
// desc, at most MaxFetchAttempts times: a download whose bytes are wrong
// or stop short is fetched again. Errors that are not about the bytes (no
// such blob, a bound on time, a cancelled ctx) are returned at once.
func (c *Client) readBlob(ctx context.Context, repo name.Repository, desc v1.Descriptor, what string, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, &stream.TooLargeError{What: what, Limit: limit}
	}
	if desc.Data != nil {
		if err := checkBytes(desc.Data, desc); err != nil {
			return nil, fmt.Errorf("%s (embedded in the manifest): %w", what, err)
		}
		return desc.Data, nil
	}
	var last error
	for attempt := 1; attempt <= MaxFetchAttempts; attempt++ {
		l, err := ggcrremote.Layer(repo.Digest(desc.Digest.String()), c.remoteOptions(ctx)...)
		if err != nil {
			return nil, toError(repo.RegistryStr(), err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, notFound(repo.RegistryStr(), "fetching "+what, err)
		}
		b, err := stream.ReadAllLimited(rc, what, limit)
		rc.Close()
		if err == nil {
			if err = checkBytes(b, desc); err == nil {
				return b, nil
			}
		}
		if ctx.Err() != nil || errors.Is(err, transport.ErrTimeout) || errors.Is(err, stream.ErrTooLarge) {
			return nil, fmt.Errorf("reading %s: %w", what, toError(repo.RegistryStr(), err))
		}
		c.logger.DebugContext(ctx, "blob download bad, fetching again", "digest", desc.Digest, "attempt", attempt, "error", transport.RedactError(err).Error())
		last = err
	}
	return nil, fmt.Errorf("reading %s: %d downloads, none whole and right; the last: %v: %w", what, MaxFetchAttempts, transport.RedactError(last), ErrDigestMismatch)
}

// checkBytes checks b against desc's digest and size.
func checkBytes(b []byte, desc v1.Descriptor) error {
	sum := sha256.Sum256(b)
	got := hex.EncodeToString(sum[:])
	if desc.Digest.Algorithm != "sha256" || got != desc.Digest.Hex || int64(len(b)) != desc.Size {
		return fmt.Errorf("got sha256:%s (%d bytes), want %s (%d bytes): %w", got, len(b), desc.Digest, desc.Size, ErrDigestMismatch)
	}
	return nil
}

// configuredImage is a registry image whose config was fetched and
// checked by readBlob. go-containerregistry's own config read is never
// used: it keeps the bytes of a failed read and returns them, unchecked,
// the next time. The layers' diff IDs come from the checked config too.
type configuredImage struct {
	v1.Image  // go-containerregistry's: manifest, digest, layer bytes
	raw       []byte
	cf        *v1.ConfigFile
	name      v1.Hash
	mediaType types.MediaType
}

func (i *configuredImage) RawConfigFile() ([]byte, error)      { return i.raw, nil }
func (i *configuredImage) ConfigFile() (*v1.ConfigFile, error) { return i.cf.DeepCopy(), nil }
func (i *configuredImage) ConfigName() (v1.Hash, error)        { return i.name, nil }

// ConfigLayer is the checked config as a layer that stays mountable from
// the image's repository, so a push to the same registry mounts it.
func (i *configuredImage) ConfigLayer() (v1.Layer, error) {
	own := static.NewLayer(i.raw, i.mediaType)
	if wcl, ok := i.Image.(interface{ ConfigLayer() (v1.Layer, error) }); ok {
		if l, err := wcl.ConfigLayer(); err == nil {
			if ml, ok := l.(*ggcrremote.MountableLayer); ok {
				return &ggcrremote.MountableLayer{Layer: own, Reference: ml.Reference}, nil
			}
		}
	}
	return own, nil
}

// Descriptor is the descriptor the image was found by (its platform).
func (i *configuredImage) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(i.Image) }

// Layers returns the image's layers, bottom first, each with the diff ID
// the checked config gives it; mountable layers stay mountable.
func (i *configuredImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	ids := i.cf.RootFS.DiffIDs
	if len(ls) != len(ids) {
		return nil, fmt.Errorf("image has %d layers but its config lists %d diff IDs", len(ls), len(ids))
	}
	out := make([]v1.Layer, len(ls))
	for j, l := range ls {
		out[j] = withDiffID(l, ids[j])
	}
	return out, nil
}

// LayerByDiffID finds a layer by the diff ID the checked config gives it.
func (i *configuredImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	ls, err := i.Layers()
	if err != nil {
		return nil, err
	}
	for j, id := range i.cf.RootFS.DiffIDs {
		if id == h {
			return ls[j], nil
		}
	}
	return nil, fmt.Errorf("image has no layer with diff ID %s", h)
}

// LayerByDigest finds a layer by its digest.
func (i *configuredImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	ls, err := i.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return i.Image.LayerByDigest(h)
}

func withDiffID(l v1.Layer, id v1.Hash) v1.Layer {
	if ml, ok := l.(*ggcrremote.MountableLayer); ok {
		return &ggcrremote.MountableLayer{Layer: diffIDLayer{Layer: ml.Layer, id: id}, Reference: ml.Reference}
	}
	return diffIDLayer{Layer: l, id: id}
}

type diffIDLayer struct {
	v1.Layer
	id v1.Hash
}

func (l diffIDLayer) DiffID() (v1.Hash, error) { return l.id, nil }

// configure returns img with its config read through readBlob.
func (c *Client) configure(ctx context.Context, ref name.Reference, img v1.Image) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", ref, err)
	}
	raw, err := c.readBlob(ctx, ref.Context(), m.Config, "the config of "+ref.String(), MaxConfigSize)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decoding the config of %s: %w", ref, err)
	}
	return &configuredImage{Image: img, raw: raw, cf: cf, name: m.Config.Digest, mediaType: m.Config.MediaType}, nil
}
