package solve

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/progress"
)

// escapingLayer is a gzip layer blob holding a "../" entry, and its
// descriptor.
func escapingLayer(t *testing.T) ([]byte, cache.Layer) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	diffID, _, _ := v1.SHA256(bytes.NewReader(tb.Bytes()))
	var gb bytes.Buffer
	zw := gzip.NewWriter(&gb)
	zw.Write(tb.Bytes())
	zw.Close()
	h, n, _ := v1.SHA256(bytes.NewReader(gb.Bytes()))
	return gb.Bytes(), cache.Layer{MediaType: types.OCILayer, Digest: h, Size: n, DiffID: diffID}
}

// TestUnusableCacheLayer: a cached layer that cannot be used (no size,
// bytes compressed other than its media type says, a tar that cannot be
// applied) is a warning or a bad blob, then a miss: the step is rebuilt
// and the solve succeeds with a layer whose descriptor is right.
func TestUnusableCacheLayer(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n"})
	epoch := testEpoch
	cold, coldBuild := newEnv(t).solveOnce(ctxDir, twoCopies, Options{SourceDateEpoch: &epoch})
	all := fsSteps(coldBuild.graph)
	top := layerDigests(t, cold.Layers)[2] // COPY a.txt
	changed := strings.Replace(twoCopies, "RUN cat /a.txt > /a.out", "RUN cat /a.txt /a.txt > /a.out", 1)
	evil, evilDesc := escapingLayer(t)

	for _, tc := range []struct {
		name    string
		edit    func(l *cache.Layer)
		wantBad bool // a *BadBlobError first (bytes needed), else a warning
	}{
		{"size -1", func(l *cache.Layer) { l.Size = -1 }, false},
		{"not a layer media type", func(l *cache.Layer) { l.MediaType = types.OCIConfigJSON }, false},
		{"zstd declared, gzip bytes", func(l *cache.Layer) { l.MediaType = types.OCILayerZStd }, true},
		{"a ../ entry", func(l *cache.Layer) { *l = evilDesc }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var recs []cache.Record
			for _, r := range cold.Records(cache.ModeMax) {
				if len(r.Layers) == 3 && r.Layers[2].Digest == top {
					r.Layers = slices.Clone(r.Layers)
					tc.edit(&r.Layers[2])
				}
				recs = append(recs, r)
			}
			f := cache.FetcherFunc(func(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
				if desc.Digest == evilDesc.Digest {
					return io.NopCloser(bytes.NewReader(evil)), nil
				}
				return cold.Fetcher().Fetch(ctx, desc)
			})
			imp := Import{Name: tc.name, Manifest: cache.NewManifest(recs), Fetcher: f}
			e := newEnv(t)
			b := e.newBuild(ctxDir, changed, Options{SourceDateEpoch: &epoch, Imports: []Import{imp}})
			res, err := b.s.Solve(context.Background(), b.graph)
			if tc.wantBad {
				var bad *BadBlobError
				if !errors.As(err, &bad) {
					t.Fatalf("Solve: got error %v, want a *BadBlobError", err)
				}
				b.s.MarkBad(bad.Digest)
				b.events = resetRecorder(b)
				res, err = b.s.Solve(context.Background(), b.graph)
			} else {
				var warned bool
				for _, ev := range b.events.Events() {
					warned = warned || ev.Kind == progress.Warning && strings.Contains(ev.Message, tc.name)
				}
				if !warned {
					t.Errorf("no warning naming the cache")
				}
			}
			if err != nil {
				t.Fatalf("Solve: %v", err)
			}
			if got := b.stepsBy(progress.StepDone); len(got) == 0 || got[0] != all[2] {
				t.Errorf("ran %q, want %q (the unusable step) first", got, all[2])
			}
			l := res.Layers[2]
			mt, _ := l.MediaType()
			size, _ := l.Size()
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			blob, _ := io.ReadAll(rc)
			if mt != types.OCILayer || size != int64(len(blob)) || blob[0] != 0x1f {
				t.Errorf("rebuilt layer: media type %s, size %d for %d bytes, want a gzip layer of its own size", mt, size, len(blob))
			}
		})
	}
}
