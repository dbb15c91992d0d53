package cli

import (
	"os"
	"runtime"
	"strings"

	"github.com/kiln-build/kiln/internal/build"
)

// annotationMap parses --annotation values as buildx does: KEY=VALUE or
// LEVEL:KEY=VALUE with LEVEL manifest (the default), manifest-descriptor,
// index or index-descriptor, optionally LEVEL[PLATFORM]. kiln writes one
// image manifest, so only the manifest level (for the host's platform)
// has a place to go; the others are usage errors, as BuildKit's are for a
// single-platform image.
func annotationMap(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(vals))
	for _, s := range vals {
		k, v, err := splitKV("annotation", s)
		if err != nil {
			return nil, err
		}
		level, key := "manifest", k
		if pre, rest, ok := strings.Cut(k, ":"); ok {
			lv, platform, _ := strings.Cut(strings.TrimSuffix(pre, "]"), "[")
			switch lv {
			case "manifest", "manifest-descriptor", "index", "index-descriptor":
				level, key = lv, rest
				if platform != "" && platform != "linux/"+runtime.GOARCH {
					return nil, usagef("--annotation %q: platform %s is not the one kiln builds (linux/%s)", k, platform, runtime.GOARCH)
				}
			}
		}
		if key == "" {
			return nil, usagef("--annotation %q: empty key", s)
		}
		if level != "manifest" {
			return nil, usagef("--annotation %q: %s annotations need an image index; kiln builds a single-platform image manifest (use manifest: or no prefix)", k, level)
		}
		out[key] = v
	}
	return out, nil
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
