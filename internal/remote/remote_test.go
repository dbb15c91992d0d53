package remote

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestPushPullRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newRegistry(t, nil)
	c := newClient(t, Options{})
	img := randomImage(t)
	want := mustDigest(t, img)

	tags := []string{reg + "/app:v1", reg + "/app:latest", reg + "/other/app:v1"}
	if err := c.Push(ctx, img, tags); err != nil {
		t.Fatalf("Push: %v", err)
	}
	for _, tag := range tags {
		t.Run(tag, func(t *testing.T) {
			got, h, err := c.Image(ctx, tag)
			if err != nil {
				t.Fatalf("Image: %v", err)
			}
			if h != want {
				t.Errorf("Image digest = %s, want %s", h, want)
			}
			// validate reads every layer, so the lazy fetch path is covered.
			if err := validate.Image(got); err != nil {
				t.Errorf("validate.Image: %v", err)
			}
			ls, err := got.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ls {
				if _, ok := l.(*ggcrremote.MountableLayer); !ok {
					t.Errorf("layer is %T, want a mountable remote layer", l)
				}
			}
		})
	}
}

func TestImageByDigest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newRegistry(t, nil)
	c := newClient(t, Options{})
	img := randomImage(t)
	h := mustDigest(t, img)
	if err := c.Push(ctx, img, []string{reg + "/app:v1"}); err != nil {
		t.Fatalf("Push: %v", err)
	}
	_, got, err := c.Image(ctx, reg+"/app@"+h.String())
	if err != nil {
		t.Fatalf("Image: %v", err)
	}
	if got != h {
		t.Errorf("digest = %s, want %s", got, h)
	}
}

func TestImageIndexResolvesPlatform(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newRegistry(t, nil)
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref := reg + "/multi:1"
	// Pushing an index is not part of the Client API; use ggcr directly.
	c0 := newClient(t, Options{})
	r, err := c0.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrremote.WriteIndex(r, idx, c0.remoteOptions(ctx)...); err != nil {
		t.Fatalf("WriteIndex: %v", err)
	}

	tests := []struct {
		name     string
		platform v1.Platform
		want     v1.Hash
		wantErr  string
	}{
		{name: "amd64", platform: v1.Platform{OS: "linux", Architecture: "amd64"}, want: mustDigest(t, amd)},
		{name: "arm64", platform: v1.Platform{OS: "linux", Architecture: "arm64"}, want: mustDigest(t, arm)},
		{name: "missing", platform: v1.Platform{OS: "linux", Architecture: "s390x"}, wantErr: "s390x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Options{Platform: tt.platform})
			img, h, err := c.Image(ctx, ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Image error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Image: %v", err)
			}
			if h != tt.want {
				t.Errorf("digest = %s, want %s", h, tt.want)
			}
			if got := mustDigest(t, img); got != tt.want {
				t.Errorf("image digest = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseReferenceScheme(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref      string
		insecure []string
		want     string // scheme
		wantName string
	}{
		{ref: "registry.example:5000/a/b:1", want: "https", wantName: "registry.example:5000/a/b:1"},
		{ref: "registry.example:5000/a/b:1", insecure: []string{"registry.example:5000"}, want: "http", wantName: "registry.example:5000/a/b:1"},
		{ref: "registry.example:5000/a/b:1", insecure: []string{"other:5000"}, want: "https", wantName: "registry.example:5000/a/b:1"},
		{ref: "registry.example/a", insecure: []string{"registry.example"}, want: "http", wantName: "registry.example/a:latest"},
		{ref: "127.0.0.1:5000/x", want: "http", wantName: "127.0.0.1:5000/x:latest"},
		{ref: "localhost:5000/x@sha256:" + strings.Repeat("a", 64), want: "http", wantName: "localhost:5000/x@sha256:" + strings.Repeat("a", 64)},
		{ref: "[::1]:5000/x", want: "http", wantName: "[::1]:5000/x:latest"},
		{ref: "alpine", want: "https", wantName: "index.docker.io/library/alpine:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.ref+strings.Join(tt.insecure, ","), func(t *testing.T) {
			c := newClient(t, Options{Insecure: tt.insecure})
			r, err := c.ParseReference(tt.ref)
			if err != nil {
				t.Fatalf("ParseReference: %v", err)
			}
			if got := r.Context().Scheme(); got != tt.want {
				t.Errorf("scheme = %s, want %s", got, tt.want)
			}
			if diff := cmp.Diff(tt.wantName, r.Name()); diff != "" {
				t.Errorf("name (-want +got):\n%s", diff)
			}
		})
	}
	c := newClient(t, Options{})
	if _, err := c.ParseReference("UPPER/case"); err == nil || !strings.Contains(err.Error(), "UPPER/case") {
		t.Errorf("ParseReference(bad) error = %v, want one naming the reference", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "missing CA file", opts: Options{CAFile: dir + "/nope.pem"}, wantErr: "reading registry CA file"},
		{name: "CA with custom transport", opts: Options{CAFile: writeFile(t, dir, "ca.pem", testCAPEM(t)), Transport: &countingTransport{}}, wantErr: "*http.Transport"},
		{name: "not PEM", opts: Options{CAFile: writeFile(t, dir, "junk.pem", []byte("junk"))}, wantErr: "no PEM certificate"},
		{name: "empty insecure", opts: Options{Insecure: []string{""}}, wantErr: "empty insecure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
