package solve

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
)

// badDownloads spoils the first n downloads of a blob, alternately with a
// flipped byte and cut short, and counts every download.
type badDownloads struct {
	mu    sync.Mutex
	n     int
	count int
}

// wrap returns rc's bytes, spoiled while downloads are left to spoil.
func (b *badDownloads) wrap(rc io.ReadCloser) (io.ReadCloser, error) {
	b.mu.Lock()
	b.count++
	k := b.count
	b.mu.Unlock()
	if k > b.n {
		return rc, nil
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if k%2 == 1 {
		data[len(data)/2] ^= 0x01
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	return io.NopCloser(io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{io.ErrUnexpectedEOF})), nil
}

func (b *badDownloads) downloads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestImportedBlobFetchedAgain: an imported layer whose first downloads
// are corrupt or cut short is downloaded again and is a hit, not a
// rebuild; past maxFetchAttempts it is a *BadBlobError.
func TestImportedBlobFetchedAgain(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n"})
	epoch := testEpoch
	cold, coldBuild := newEnv(t).solveOnce(ctxDir, twoCopies, Options{SourceDateEpoch: &epoch})
	all := fsSteps(coldBuild.graph)
	top := layerDigests(t, cold.Layers)[2]
	changed := slices.Clone([]byte(twoCopies))
	changed = bytes.Replace(changed, []byte("RUN cat /a.txt > /a.out"), []byte("RUN cat /a.txt /a.txt > /a.out"), 1)
	for _, tc := range []struct {
		name    string
		bad     int
		wantErr bool
	}{
		{"three bad downloads", 3, false},
		{"always bad", 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bd := &badDownloads{n: tc.bad}
			f := cache.FetcherFunc(func(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
				rc, err := cold.Fetcher().Fetch(ctx, desc)
				if err != nil || desc.Digest != top {
					return rc, err
				}
				return bd.wrap(rc)
			})
			imp := Import{Name: "flaky", Manifest: cache.NewManifest(cold.Records(cache.ModeMax)), Fetcher: f}
			b := newEnv(t).newBuild(ctxDir, string(changed), Options{SourceDateEpoch: &epoch, Imports: []Import{imp}})
			_, err := b.s.Solve(context.Background(), b.graph)
			if got := bd.downloads(); got != min(tc.bad+1, maxFetchAttempts) {
				t.Errorf("%d downloads of %s, want %d", got, top, min(tc.bad+1, maxFetchAttempts))
			}
			if tc.wantErr {
				var bad *BadBlobError
				if !errors.As(err, &bad) || bad.Digest != top {
					t.Fatalf("Solve: got %v, want a *BadBlobError for %s", err, top)
				}
				return
			}
			if err != nil {
				t.Fatalf("Solve: %v", err)
			}
			if got := b.stepsBy(progress.StepCached); !slices.Equal(got, all[:3]) {
				t.Errorf("cached %q, want %q", got, all[:3])
			}
		})
	}
}

// flakyLayer is a base image layer whose downloads bd spoils.
type flakyLayer struct {
	v1.Layer
	bd *badDownloads
}

func (l flakyLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return l.bd.wrap(rc)
}

func (l flakyLayer) MediaType() (types.MediaType, error) { return l.Layer.MediaType() }

// flakyImage is img with every layer spoiled by bd.
type flakyImage struct {
	v1.Image
	bd *badDownloads
}

func (i flakyImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for j, l := range ls {
		if out[j], err = partial.CompressedToLayer(flakyLayer{Layer: l, bd: i.bd}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TestBaseLayerFetchedAgain: a base image layer whose first downloads are
// corrupt or cut short is downloaded again when a RUN needs it; past
// maxFetchAttempts the step fails, naming the layer.
func TestBaseLayerFetchedAgain(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	base := imagetest.Busybox(t)
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := base.Digest()
	const df = "FROM base\nRUN [\"/bin/busybox\", \"true\"]\n"
	for _, tc := range []struct {
		name    string
		bad     int
		wantErr bool
	}{
		{"three bad downloads", 3, false},
		{"always bad", 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bd := &badDownloads{n: tc.bad}
			resolve := func(context.Context, string) (*plan.Image, error) {
				return &plan.Image{Ref: "base", Digest: digest, Config: cf}, nil
			}
			image := func(context.Context, *plan.Image) (v1.Image, error) { return flakyImage{Image: base, bd: bd}, nil }
			e := newEnv(t)
			b := e.newBuildPlan(t.TempDir(), planDockerfile(t, df, resolve), Options{Image: image})
			_, err := b.s.Solve(context.Background(), b.graph)
			if got, want := bd.downloads(), min(tc.bad+1, maxFetchAttempts); got != want {
				t.Errorf("%d downloads of the base layer, want %d", got, want)
			}
			if tc.wantErr {
				if !errors.Is(err, cache.ErrDigestMismatch) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("Solve: got %v, want a digest mismatch", err)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Solve: %v", err)
			}
		})
	}
}

// TestRecompressedBlobRefused: an imported blob whose bytes are another
// gzip stream of the very same tar (the diff ID matches, the digest does
// not) never lands in the store under the digest: the blob writer does
// not hash what it stores, so the download's digest check is what refuses
// it.
func TestRecompressedBlobRefused(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n"})
	epoch := testEpoch
	cold, _ := newEnv(t).solveOnce(ctxDir, twoCopies, Options{SourceDateEpoch: &epoch})
	top := layerDigests(t, cold.Layers)[2]
	changed := strings.Replace(twoCopies, "RUN cat /a.txt > /a.out", "RUN cat /a.txt /a.txt > /a.out", 1)
	f := cache.FetcherFunc(func(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
		rc, err := cold.Fetcher().Fetch(ctx, desc)
		if err != nil || desc.Digest != top {
			return rc, err
		}
		defer rc.Close()
		zr, err := gzip.NewReader(rc)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if _, err := io.Copy(zw, zr); err != nil {
			return nil, err
		}
		zw.Close()
		return io.NopCloser(&buf), nil
	})
	imp := Import{Name: "recompressed", Manifest: cache.NewManifest(cold.Records(cache.ModeMax)), Fetcher: f}
	e := newEnv(t)
	b := e.newBuild(ctxDir, changed, Options{SourceDateEpoch: &epoch, Imports: []Import{imp}})
	_, err := b.s.Solve(context.Background(), b.graph)
	var bad *BadBlobError
	if !errors.As(err, &bad) || bad.Digest != top || !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("Solve: got %v, want a *BadBlobError for %s wrapping cache.ErrDigestMismatch", err, top)
	}
	if e.st.HasBlob(top) {
		t.Errorf("the recompressed blob landed in the store as %s", top)
	}
}
