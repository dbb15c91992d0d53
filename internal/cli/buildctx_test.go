package cli

import (
	"errors"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/build"
)

func TestAnnotationMap(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	tests := []struct {
		name string
		in   []string
		want map[string]string
		bad  bool
	}{
		{name: "plain", in: []string{"a=1", "org.opencontainers.image.title=x=y"}, want: map[string]string{"a": "1", "org.opencontainers.image.title": "x=y"}},
		{name: "manifest prefix", in: []string{"manifest:a=1"}, want: map[string]string{"a": "1"}},
		{name: "host platform", in: []string{"manifest[" + host + "]:a=1"}, want: map[string]string{"a": "1"}},
		{name: "unknown prefix is part of the key", in: []string{"com.example:a=1"}, want: map[string]string{"com.example:a": "1"}},
		{name: "index", in: []string{"index:a=1"}, bad: true},
		{name: "manifest-descriptor", in: []string{"manifest-descriptor:a=1"}, bad: true},
		{name: "other platform", in: []string{"manifest[linux/s390x]:a=1"}, bad: runtime.GOARCH != "s390x", want: map[string]string{"a": "1"}},
		{name: "no value", in: []string{"a"}, bad: true},
		{name: "empty key", in: []string{"manifest:=1"}, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := annotationMap(tt.in)
			if tt.bad {
				if !errors.Is(err, build.ErrUsage) {
					t.Fatalf("got %v, %v; want a usage error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
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
