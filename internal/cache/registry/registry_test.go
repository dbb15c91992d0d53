package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
	"github.com/kiln-build/kiln/internal/remote"
)

// corrupting is an in-memory blob store whose Get can return damaged bytes
// for chosen digests.
type corrupting struct {
	ggcrregistry.BlobHandler
	mu  sync.Mutex
	bad map[v1.Hash]bool
}

func (c *corrupting) Stat(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	return c.BlobHandler.(ggcrregistry.BlobStatHandler).Stat(ctx, repo, h)
}

func (c *corrupting) Put(ctx context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	return c.BlobHandler.(ggcrregistry.BlobPutHandler).Put(ctx, repo, h, rc)
}

func (c *corrupting) Get(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	rc, err := c.BlobHandler.Get(ctx, repo, h)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	bad := c.bad[h]
	c.mu.Unlock()
	if !bad {
		return rc, nil
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	b[len(b)/2] ^= 0xff
	return io.NopCloser(bytes.NewReader(b)), nil
}

var repoN atomic.Int64

// Factory returns a conformance factory over a registry at host, reached
// with client; corrupt may be nil.
func Factory(host string, client *remote.Client, corrupt func(t *testing.T, h v1.Hash)) cachetest.Factory {
	return func(t *testing.T) cachetest.Location {
		ref := fmt.Sprintf("%s/conformance/c%d:cache", host, repoN.Add(1))
		get := func() (*remote.Client, error) { return client, nil }
		return cachetest.Location{
			Table:   cache.NewTable(cache.Deps{Remote: get}, Backend()),
			Import:  "type=registry,ref=" + ref,
			Export:  "type=registry,ref=" + ref,
			Corrupt: corrupt,
			Mounter: true,
		}
	}
}

func TestConformanceInProcess(t *testing.T) {
	h := &corrupting{BlobHandler: ggcrregistry.NewInMemoryBlobHandler(), bad: map[v1.Hash]bool{}}
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithBlobHandler(h), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	client, err := remote.New(remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	cachetest.Run(t, Factory(host, client, func(t *testing.T, d v1.Hash) {
		h.mu.Lock()
		h.bad[d] = true
		h.mu.Unlock()
	}))
}

func TestParse(t *testing.T) {
	cachetest.RunParse(t, cachetest.ImportParser(Backend()),
		[]map[string]string{
			{"ref": "reg.example/app:cache"},
			{"ref": "reg.example/app", "registry.insecure": "true", "ignore-error": "true"},
		},
		[]cachetest.BadAttrs{
			{Attrs: map[string]string{}, Want: "ref"},
			{Attrs: map[string]string{"ref": "a:b:c:d"}, Want: "ref"},
			{Attrs: map[string]string{"ref": "r/a", "mode": "max"}, Want: "mode"},
			{Attrs: map[string]string{"ref": "r/a", "dest": "/x"}, Want: `"dest"`},
			{Attrs: map[string]string{"ref": "r/a", "registry.insecure": "sometimes"}, Want: "registry.insecure"},
		})
	cachetest.RunParse(t, cachetest.ExportParser(Backend()),
		[]map[string]string{
			{"ref": "r/a:c", "mode": "max"},
			{"ref": "r/a:c", "compression": "zstd", "compression-level": "3", "force-compression": "true", "oci-mediatypes": "true", "image-manifest": "true"},
			{"ref": "r/a:c", "compression": "uncompressed", "ignore-error": "true"},
		},
		[]cachetest.BadAttrs{
			{Attrs: map[string]string{"mode": "max"}, Want: "ref"},
			{Attrs: map[string]string{"ref": "r/a", "mode": "all"}, Want: "mode"},
			{Attrs: map[string]string{"ref": "r/a", "compression": "brotli"}, Want: "compression"},
			{Attrs: map[string]string{"ref": "r/a", "image-manifest": "false"}, Want: "image-manifest"},
			{Attrs: map[string]string{"ref": "r/a", "oci-mediatypes": "false"}, Want: "oci-mediatypes"},
			{Attrs: map[string]string{"ref": "r/a", "src": "/x"}, Want: `"src"`},
		})
}

// TestImportMissingRefIsMiss: the first build has no cache yet.
func TestImportMissingRefIsMiss(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	client, _ := remote.New(remote.Options{})
	get := func() (*remote.Client, error) { return client, nil }
	imp := NewImporter(ImportConfig{Ref: strings.TrimPrefix(srv.URL, "http://") + "/none/such:tag"}, get)
	_, _, err := imp.Import(context.Background())
	if !cache.IsMiss(err) {
		t.Errorf("import of a missing ref = %v, want a miss", err)
	}
}
