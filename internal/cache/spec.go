package cache

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/kv"
)

// Spec is one --cache-from or --cache-to value, split but not yet
// interpreted: Type and the remaining key=value attributes. Only this file
// and the backends' ParseConfig functions look at Attrs.
type Spec struct {
	// Type is the type= value.
	Type string
	// Attrs are the other key=value fields, keys lower-cased.
	Attrs map[string]string
	// Raw is the value as the user typed it, for messages.
	Raw string
}

// ParseSpec parses one flag value the way buildx does: CSV fields of
// key=value (double quotes allowed), keys lower-cased, values verbatim. A
// value without any "=" is the registry shorthand: each field is its own
// type=registry,ref=FIELD spec.
func ParseSpec(s string) ([]Spec, error) {
	if !strings.Contains(s, "=") {
		fields, err := kv.Fields(s)
		if err != nil {
			return nil, fmt.Errorf("cache spec: %v", err)
		}
		var out []Spec
		for _, f := range fields {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, Spec{Type: "registry", Attrs: map[string]string{"ref": f}, Raw: s})
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("cache spec is empty")
		}
		return out, nil
	}
	attrs, err := kv.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("cache spec %q: %v", s, err)
	}
	sp := Spec{Type: attrs["type"], Attrs: attrs, Raw: s}
	delete(attrs, "type")
	if sp.Type == "" {
		return nil, fmt.Errorf("cache spec %q: type required (type=local|registry|inline|gha)", s)
	}
	return []Spec{sp}, nil
}

// Redacted renders the spec canonically (type first, attributes sorted),
// for progress and summaries, with the values of the secret attributes
// replaced by "***".
func (s Spec) Redacted(secret []string) string {
	keys := make([]string, 0, len(s.Attrs))
	for k := range s.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{"type=" + s.Type}
	for _, k := range keys {
		v := s.Attrs[k]
		if slices.Contains(secret, k) {
			v = "***"
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// Mode says which records an export holds.
type Mode string

// Export modes.
const (
	// ModeMin exports the records of the final image's layers.
	ModeMin Mode = "min"
	// ModeMax also exports every intermediate step of every stage built.
	ModeMax Mode = "max"
)

// Attribute names shared by several backends (buildx's names).
const (
	AttrMode             = "mode"
	AttrIgnoreError      = "ignore-error"
	AttrCompression      = "compression"
	AttrCompressionLevel = "compression-level"
	AttrForceCompression = "force-compression"
	AttrOCIMediaTypes    = "oci-mediatypes"
	AttrImageManifest    = "image-manifest"
)

// SharedAttrs are the attributes the table reads for every backend: on
// export as ExportOptions, on import ignore-error (accepted) and the rest
// refused as --cache-to attributes.
func SharedAttrs() []string {
	return []string{AttrMode, AttrIgnoreError, AttrCompression, AttrCompressionLevel, AttrForceCompression}
}

// ExportOptions are the attributes every exporting backend shares.
type ExportOptions struct {
	// Mode says which records the export holds (min by default).
	Mode Mode
	// IgnoreError turns a failed export into a warning.
	IgnoreError bool
	// Compression is gzip (default), zstd or uncompressed: what new
	// layers are made with.
	Compression string
	// CompressionLevel is the level; 0 is the compressor's default.
	CompressionLevel int
	// ForceCompression is accepted (buildx's force-compression); layers
	// that exist keep their compression.
	ForceCompression bool
}

// Attrs reads a spec's attributes and remembers which were read, so that
// Done can reject the rest by name. Backends use it in ParseConfig.
type Attrs struct {
	typ    string
	m      map[string]string
	used   map[string]bool
	err    error
	getenv func(string) string
	export ExportOptions
}

// Getenv reads an environment default through the table's Deps.Getenv
// ("" when there is none).
func (a *Attrs) Getenv(name string) string {
	if a.getenv == nil {
		return ""
	}
	return a.getenv(name)
}

// Export returns the shared export attributes, which the table reads
// before a backend's ParseExport.
func (a *Attrs) Export() ExportOptions { return a.export }

// NewAttrs starts reading the attributes of a spec of type typ.
func NewAttrs(typ string, m map[string]string) *Attrs {
	return &Attrs{typ: typ, m: m, used: map[string]bool{}}
}

// Fail records an error about key (the first one recorded wins), for
// checks a backend makes itself.
func (a *Attrs) Fail(key, format string, args ...any) { a.fail(key, format, args...) }

func (a *Attrs) fail(key, format string, args ...any) {
	if a.err == nil {
		a.err = fmt.Errorf("cache type=%s: %s: %s", a.typ, key, fmt.Sprintf(format, args...))
	}
}

// String returns the attribute's value, or def when absent.
func (a *Attrs) String(key, def string) string {
	a.used[key] = true
	if v, ok := a.m[key]; ok {
		return v
	}
	return def
}

// Required returns the attribute's value; absent or empty is an error.
func (a *Attrs) Required(key string) string {
	a.used[key] = true
	v := a.m[key]
	if v == "" {
		a.fail(key, "required attribute is missing")
	}
	return v
}

// Bool returns the attribute as a boolean; an empty value means true, as
// buildx reads flags like force-compression.
func (a *Attrs) Bool(key string, def bool) bool {
	a.used[key] = true
	v, ok := a.m[key]
	if !ok {
		return def
	}
	if v == "" {
		return true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		a.fail(key, "%q is not a boolean (true or false)", v)
	}
	return b
}

// Int returns the attribute as an integer within [lo, hi].
func (a *Attrs) Int(key string, def, lo, hi int) int {
	a.used[key] = true
	v, ok := a.m[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		a.fail(key, "%q is not an integer from %d to %d", v, lo, hi)
	}
	return n
}

// OneOf returns the attribute, which must be one of allowed.
func (a *Attrs) OneOf(key, def string, allowed ...string) string {
	v := a.String(key, def)
	for _, x := range allowed {
		if v == x {
			return v
		}
	}
	a.fail(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// Reject marks attributes that exist for other directions or types, so
// that giving one is an error that says why.
func (a *Attrs) Reject(reason string, keys ...string) {
	for _, k := range keys {
		a.used[k] = true
		if _, ok := a.m[k]; ok {
			a.fail(k, "%s", reason)
		}
	}
}

// ExportOptions reads the shared export attributes.
func (a *Attrs) ExportOptions() ExportOptions {
	o := ExportOptions{
		Mode:             Mode(a.OneOf(AttrMode, string(ModeMin), string(ModeMin), string(ModeMax))),
		IgnoreError:      a.Bool(AttrIgnoreError, false),
		Compression:      a.OneOf(AttrCompression, "gzip", "gzip", "zstd", "uncompressed"),
		ForceCompression: a.Bool(AttrForceCompression, false),
	}
	hi := 9
	if o.Compression == "zstd" {
		hi = 22
	}
	o.CompressionLevel = a.Int(AttrCompressionLevel, 0, 0, hi)
	return o
}

// Done returns the first error met, or an error naming an attribute that
// was never read (unknown for this type and direction).
func (a *Attrs) Done() error {
	if a.err != nil {
		return a.err
	}
	var unknown []string
	for k := range a.m {
		if !a.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("cache type=%s: unknown attribute %q", a.typ, unknown[0])
	}
	return nil
}
