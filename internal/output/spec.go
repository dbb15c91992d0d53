package output

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/kv"
)

// Type is the kind of an output.
type Type string

// The output types kiln knows, spelled as in buildx.
const (
	// Registry pushes the image to the registry of every name.
	Registry Type = "registry"
	// Image is buildx's image exporter. With push=true it is
	// Registry (ParseSpec rewrites it); with push=false kiln, which has
	// no image store, only builds: nothing is written.
	Image Type = "image"
	// OCI writes an OCI image layout as a tar file.
	OCI Type = "oci"
	// Docker writes a tar that `docker load` takes.
	Docker Type = "docker"
	// Local copies the image's filesystem into a directory.
	Local Type = "local"
)

// Attribute names of an --output CSV.
const (
	AttrType = "type"
	AttrDest = "dest"
	AttrName = "name"
	AttrPush = "push"
)

// Stdout is the Dest that means standard output (oci and docker only).
const Stdout = "-"

// allowedAttrs lists, per type, the attributes besides type.
var allowedAttrs = map[Type][]string{
	Registry: {AttrName, AttrPush},
	Image:    {AttrName, AttrPush},
	OCI:      {AttrDest, AttrName},
	Docker:   {AttrDest, AttrName},
	Local:    {AttrDest},
}

// Spec is one parsed --output.
type Spec struct {
	// Type is never Image with Push true: that is Registry.
	Type Type
	// Dest is the file (oci, docker; Stdout allowed) or directory (local).
	// Empty for registry and image.
	Dest string
	// Push is true for Registry, false for Image, and false for
	// the file types.
	Push bool
	// Name is the name= attribute as given: comma-separated image names,
	// used instead of the --tag values when set. See Names.
	Name string
}

// Names returns the names in Name, trimmed, empties dropped.
func (s Spec) Names() []string {
	var out []string
	for n := range strings.SplitSeq(s.Name, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// ParseSpec parses one --output value, as buildx does:
//
//	type=registry[,name=REG/IMG:TAG[,…]]
//	type=image,push=true|false[,name=…]
//	type=oci,dest=FILE.tar[,name=…]      (dest=- is stdout)
//	type=docker,dest=FILE.tar[,name=…]   (dest=- is stdout)
//	type=local,dest=DIR
//	DIR                                  (a bare path: type=local,dest=DIR)
//
// Values may be quoted CSV fields, so a name list can hold commas:
// `type=oci,dest=x.tar,"name=a:1,b:2"`. An unknown type or attribute, a
// repeated or missing required attribute, or a bad value is an error that
// names the key.
func ParseSpec(s string) (Spec, error) {
	if strings.TrimSpace(s) == "" {
		return Spec{}, errors.New("output: empty --output value")
	}
	if !strings.Contains(s, "=") {
		if s == Stdout {
			return Spec{}, errors.New(`output: "-" (a tar of the image filesystem on stdout) is not supported; use type=oci,dest=- or type=docker,dest=-`)
		}
		return Spec{Type: Local, Dest: s}, nil
	}
	attrs, err := kv.Parse(s)
	if err != nil {
		return Spec{}, fmt.Errorf("output: %w", err)
	}
	t, ok := attrs[AttrType]
	if !ok {
		return Spec{}, fmt.Errorf("output: %q has no type= attribute", s)
	}
	spec := Spec{Type: Type(t)}
	allowed, ok := allowedAttrs[spec.Type]
	if !ok {
		return Spec{}, fmt.Errorf("output: unknown type=%q (want registry, image, oci, docker or local)", t)
	}
	for k := range attrs {
		if k != AttrType && !slices.Contains(allowed, k) {
			return Spec{}, fmt.Errorf("output: unknown attribute %q for type=%s", k, t)
		}
	}
	spec.Dest = attrs[AttrDest]
	spec.Name = attrs[AttrName]
	return finish(spec, attrs)
}

// finish applies the per-type rules to a spec whose attributes are known.
func finish(spec Spec, attrs map[string]string) (Spec, error) {
	switch spec.Type {
	case Registry:
		// buildx forces push=true here; so do we, after checking the value.
		if v, ok := attrs[AttrPush]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				return Spec{}, fmt.Errorf("output: attribute %q: %q is not a boolean", AttrPush, v)
			}
		}
		spec.Push = true
	case Image:
		v, ok := attrs[AttrPush]
		if ok {
			push, err := strconv.ParseBool(v)
			if err != nil {
				return Spec{}, fmt.Errorf("output: attribute %q: %q is not a boolean", AttrPush, v)
			}
			spec.Push = push
		}
		if spec.Push {
			spec.Type = Registry
		}
	case OCI, Docker, Local:
		if _, ok := attrs[AttrDest]; !ok || spec.Dest == "" {
			return Spec{}, fmt.Errorf("output: type=%s needs attribute %q", spec.Type, AttrDest)
		}
		if spec.Type == Local && spec.Dest == Stdout {
			return Spec{}, fmt.Errorf("output: attribute %q: type=local cannot write to stdout", AttrDest)
		}
	}
	return spec, nil
}
