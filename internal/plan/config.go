package plan

import (
	"maps"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Config is the image config at one step of a stage.
//
// Steps share it. The keys LABEL, EXPOSE and VOLUME add are kept as a list
// of additions, each step's linked to the step's before, so n such
// instructions cost n entries: a map per step, copied before each write,
// made memory grow with the square of n (10,000 LABEL lines took 3 GiB).
// The maps are built only when asked for, by Labels, ExposedPorts, Volumes
// and Image, with the same content as maps written in order would have.
//
// The embedded v1.Config holds every other field; its Labels, ExposedPorts
// and Volumes are the base's, before the additions, and the methods of the
// same names shadow them so that c.Labels is never read by mistake. Treat
// its slices and maps as read-only: steps share them.
type Config struct {
	v1.Config
	// last is the newest addition, nil for none.
	last *addition
}

// addition is one key added by LABEL (with its value), EXPOSE or VOLUME.
type addition struct {
	prev       *addition
	field      field
	key, value string
}

type field uint8

const (
	fieldLabel field = iota
	fieldPort
	fieldVolume
)

// NewConfig returns c with no additions. c's slices and maps are shared,
// not copied.
func NewConfig(c v1.Config) Config { return Config{Config: c} }

// WithLabel returns c with the label key set to value, c unchanged.
func (c Config) WithLabel(key, value string) Config { return c.with(fieldLabel, key, value) }

// WithExposedPort returns c with port ("80/tcp") exposed, c unchanged.
func (c Config) WithExposedPort(port string) Config { return c.with(fieldPort, port, "") }

// WithVolume returns c with the volume path added, c unchanged.
func (c Config) WithVolume(path string) Config { return c.with(fieldVolume, path, "") }

func (c Config) with(f field, key, value string) Config {
	c.last = &addition{prev: c.last, field: f, key: key, value: value}
	return c
}

// Labels returns the labels: the base's, then each addition in order, the
// last value of a key winning. The map is new on each call, nil when the
// base has none and nothing was added.
func (c Config) Labels() map[string]string {
	return collect(c.Config.Labels, c.last, fieldLabel, func(a *addition) string { return a.value })
}

// ExposedPorts returns the exposed ports, as Labels does the labels.
func (c Config) ExposedPorts() map[string]struct{} {
	return collect(c.Config.ExposedPorts, c.last, fieldPort, func(*addition) struct{} { return struct{}{} })
}

// Volumes returns the volumes, as Labels does the labels.
func (c Config) Volumes() map[string]struct{} {
	return collect(c.Config.Volumes, c.last, fieldVolume, func(*addition) struct{} { return struct{}{} })
}

// Image returns the config as a v1.Config whose maps are new.
func (c Config) Image() v1.Config {
	out := c.Config
	out.Labels = c.Labels()
	out.ExposedPorts = c.ExposedPorts()
	out.Volumes = c.Volumes()
	return out
}

// collect returns base with the additions of field f applied, oldest
// first. Like the map writes it replaces, it clones base (nil stays nil)
// and makes a map as soon as there is one addition.
func collect[V any](base map[string]V, last *addition, f field, value func(*addition) V) map[string]V {
	var adds []*addition
	for a := last; a != nil; a = a.prev {
		if a.field == f {
			adds = append(adds, a)
		}
	}
	out := maps.Clone(base)
	if len(adds) > 0 && out == nil {
		out = make(map[string]V, len(adds))
	}
	for i := len(adds) - 1; i >= 0; i-- {
		out[adds[i].key] = value(adds[i])
	}
	return out
}
