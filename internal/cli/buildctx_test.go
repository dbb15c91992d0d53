package cli

import (
	"errors"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/build"
)

func TestParseAnnotations(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	two := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	tests := []struct {
		name      string
		in        []string
		platforms []v1.Platform
		want      annotations
		bad       bool
	}{
		{name: "plain", in: []string{"a=1", "org.opencontainers.image.title=x=y"}, want: annotations{manifest: map[string]string{"a": "1", "org.opencontainers.image.title": "x=y"}}},
		{name: "manifest prefix", in: []string{"manifest:a=1"}, want: annotations{manifest: map[string]string{"a": "1"}}},
		{name: "host platform", in: []string{"manifest[" + host + "]:a=1"}, want: annotations{platform: map[string]map[string]string{host: {"a": "1"}}}},
		{name: "unknown prefix is part of the key", in: []string{"com.example:a=1"}, want: annotations{manifest: map[string]string{"com.example:a": "1"}}},
		{name: "index needs two platforms", in: []string{"index:a=1"}, bad: true},
		{name: "manifest-descriptor needs two platforms", in: []string{"manifest-descriptor:a=1"}, bad: true},
		{name: "other platform", in: []string{"manifest[linux/s390x]:a=1"}, bad: runtime.GOARCH != "s390x",
			want: annotations{platform: map[string]map[string]string{"linux/s390x": {"a": "1"}}}},
		{name: "no value", in: []string{"a"}, bad: true},
		{name: "empty key", in: []string{"manifest:=1"}, bad: true},
		{name: "two platforms", platforms: two,
			in: []string{"a=1", "index:b=2", "manifest-descriptor:c=3", "manifest[linux/aarch64]:d=4"},
			want: annotations{manifest: map[string]string{"a": "1"}, index: map[string]string{"b": "2"},
				descriptor: map[string]string{"c": "3"}, platform: map[string]map[string]string{"linux/arm64": {"d": "4"}}}},
		{name: "a platform the build does not make", platforms: two, in: []string{"manifest[linux/s390x]:a=1"}, bad: true},
		{name: "index-descriptor", platforms: two, in: []string{"index-descriptor:a=1"}, bad: true},
		{name: "index with a platform", platforms: two, in: []string{"index[linux/arm64]:a=1"}, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAnnotations(tt.in, tt.platforms)
			if tt.bad {
				if !errors.Is(err, build.ErrUsage) {
					t.Fatalf("got %v, %v; want a usage error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(annotations{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildContexts(t *testing.T) {
	dir := t.TempDir()
	got, err := buildContexts([]string{"src=" + dir, "base=docker-image://reg.example/img:1"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]build.BuildContext{"src": {Dir: dir}, "base": {Image: "reg.example/img:1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{
		{"x=" + dir + "/missing"},
		{"x=https://github.com/a/b.git"},
		{"x=oci-layout://" + dir},
		{"x=target:foo"},
		{"x=docker-image://"},
		{"x=" + dir, "x=" + dir},
		{"=" + dir},
	} {
		if _, err := buildContexts(bad); !errors.Is(err, build.ErrUsage) {
			t.Errorf("%q: got %v, want a usage error", bad, err)
		}
	}
}
