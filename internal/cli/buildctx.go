package cli

import (
	"os"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/build"
	"github.com/kiln-build/kiln/internal/plan"
)

// annotations are --annotation values by where they go.
type annotations struct {
	manifest   map[string]string            // every image manifest
	platform   map[string]map[string]string // one platform's manifest, by os/arch[/variant]
	index      map[string]string            // the index of a multi-platform build
	descriptor map[string]string            // the index's manifest descriptors
}

// parseAnnotations parses --annotation values as buildx does: KEY=VALUE or
// LEVEL[PLATFORM]:KEY=VALUE with LEVEL manifest (the default),
// manifest-descriptor or index. A platform must be one the build makes
// (platforms; none means the host's); index and manifest-descriptor need
// an index, so two platforms or more. index-descriptor (an OCI layout's
// index.json entry) is refused. Any other prefix is part of the key.
func parseAnnotations(vals []string, platforms []v1.Platform) (annotations, error) {
	var a annotations
	if len(vals) == 0 {
		return a, nil
	}
	if len(platforms) == 0 {
		platforms = []v1.Platform{plan.HostPlatform()}
	}
	var names []string
	for _, p := range platforms {
		names = append(names, plan.FormatPlatform(p))
	}
	put := func(m *map[string]string, k, v string) {
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
	}
	for _, s := range vals {
		k, v, err := splitKV("annotation", s)
		if err != nil {
			return a, err
		}
		level, key, platform := "manifest", k, ""
		if pre, rest, ok := strings.Cut(k, ":"); ok {
			lv, pl, _ := strings.Cut(strings.TrimSuffix(pre, "]"), "[")
			switch lv {
			case "manifest", "manifest-descriptor", "index", "index-descriptor":
				level, key, platform = lv, rest, pl
			}
		}
		if key == "" {
			return a, usagef("--annotation %q: empty key", s)
		}
		if platform != "" {
			p, err := plan.ParsePlatform(platform)
			if err != nil {
				return a, usagef("--annotation %q: %v", k, err)
			}
			platform = plan.FormatPlatform(p)
			if !slices.Contains(names, platform) {
				return a, usagef("--annotation %q: platform %s is not one this build makes (%s)", k, platform, strings.Join(names, ", "))
			}
		}
		switch {
		case level == "index-descriptor":
			return a, usagef("--annotation %q: kiln writes no index descriptor annotations (use index: or manifest:)", k)
		case level != "manifest" && len(platforms) < 2:
			return a, usagef("--annotation %q: %s annotations need an image index; kiln builds a single-platform image manifest for one --platform (use manifest: or no prefix)", k, level)
		case level == "index" && platform != "":
			return a, usagef("--annotation %q: an index annotation has no platform", k)
		case level == "index":
			put(&a.index, key, v)
		case level == "manifest-descriptor" && platform != "":
			return a, usagef("--annotation %q: kiln sets manifest-descriptor annotations on every platform's descriptor; drop [%s]", k, platform)
		case level == "manifest-descriptor":
			put(&a.descriptor, key, v)
		case platform != "":
			if a.platform == nil {
				a.platform = map[string]map[string]string{}
			}
			m := a.platform[platform]
			put(&m, key, v)
			a.platform[platform] = m
		default:
			put(&a.manifest, key, v)
		}
	}
	return a, nil
}

// buildContexts parses --build-context NAME=DIR and
// NAME=docker-image://REF, as buildx takes them. Other sources (git URLs,
// oci-layout://, target:) are usage errors naming the form.
func buildContexts(vals []string) (map[string]build.BuildContext, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]build.BuildContext, len(vals))
	for _, s := range vals {
		name, src, err := splitKV("build-context", s)
		if err != nil {
			return nil, err
		}
		if _, dup := out[name]; dup {
			return nil, usagef("--build-context %s given twice", name)
		}
		switch {
		case strings.HasPrefix(src, "docker-image://"):
			ref := strings.TrimPrefix(src, "docker-image://")
			if ref == "" {
				return nil, usagef("--build-context %s: docker-image:// needs a reference", name)
			}
			out[name] = build.BuildContext{Image: ref}
		case strings.Contains(src, "://") || strings.HasPrefix(src, "target:") || strings.HasPrefix(src, "git@"):
			return nil, usagef("--build-context %s=%s: only a directory or docker-image://REF is supported", name, src)
		default:
			if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
				return nil, usagef("--build-context %s=%s: not a directory", name, src)
			}
			out[name] = build.BuildContext{Dir: src}
		}
	}
	return out, nil
}
