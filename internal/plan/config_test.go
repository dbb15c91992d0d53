package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// mapConfig is the config as kiln kept it before Config: maps copied
// before each write once a step shares them, a new map at the first write
// to a nil one. Config must give the same maps, nil or empty alike.
type mapConfig struct{ c v1.Config }

func (m *mapConfig) add(f field, k, v string) {
	switch f {
	case fieldLabel:
		m.c.Labels = maps.Clone(m.c.Labels)
		if m.c.Labels == nil {
			m.c.Labels = map[string]string{}
		}
		m.c.Labels[k] = v
	case fieldPort:
		m.c.ExposedPorts = maps.Clone(m.c.ExposedPorts)
		if m.c.ExposedPorts == nil {
			m.c.ExposedPorts = map[string]struct{}{}
		}
		m.c.ExposedPorts[k] = struct{}{}
	case fieldVolume:
		m.c.Volumes = maps.Clone(m.c.Volumes)
		if m.c.Volumes == nil {
			m.c.Volumes = map[string]struct{}{}
		}
		m.c.Volumes[k] = struct{}{}
	}
}

// TestConfigMatchesMaps: after any sequence of LABEL, EXPOSE and VOLUME
// additions on any base, every step's Image equals the map-based config
// of that step, and marshals to the same bytes (so image digests stay).
func TestConfigMatchesMaps(t *testing.T) {
	bases := map[string]v1.Config{
		"nil maps":   {Env: []string{"A=1"}},
		"empty maps": {Labels: map[string]string{}, ExposedPorts: map[string]struct{}{}, Volumes: map[string]struct{}{}},
		"full maps": {Labels: map[string]string{"k1": "base", "base": "b"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}}, Volumes: map[string]struct{}{"/data": {}}},
	}
	for name, base := range bases {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(20) {
				r := rand.New(rand.NewPCG(seed, 11))
				baseCopy := v1.Config{Labels: maps.Clone(base.Labels), ExposedPorts: maps.Clone(base.ExposedPorts), Volumes: maps.Clone(base.Volumes)}
				c := NewConfig(base)
				model := mapConfig{c: v1.Config{Env: base.Env, Labels: maps.Clone(base.Labels),
					ExposedPorts: maps.Clone(base.ExposedPorts), Volumes: maps.Clone(base.Volumes)}}
				var steps []Config
				var want []v1.Config
				for i := range 60 + r.IntN(60) {
					f := field(r.IntN(3))
					k, v := fmt.Sprintf("k%d", r.IntN(8)), fmt.Sprintf("v%d", i)
					switch f {
					case fieldLabel:
						c = c.WithLabel(k, v)
					case fieldPort:
						k = fmt.Sprintf("%d/tcp", 80+r.IntN(5))
						c = c.WithExposedPort(k)
					case fieldVolume:
						k = "/" + k
						c = c.WithVolume(k)
					}
					model.add(f, k, v)
					steps, want = append(steps, c), append(want, model.c)
				}
				for i, s := range steps {
					got := s.Image()
					if diff := cmp.Diff(want[i], got); diff != "" {
						t.Fatalf("seed %d step %d: config differs from the map-based one (-want +got):\n%s", seed, i, diff)
					}
					wb, _ := json.Marshal(want[i])
					gb, _ := json.Marshal(got)
					if string(wb) != string(gb) {
						t.Fatalf("seed %d step %d: JSON %s, want %s", seed, i, gb, wb)
					}
				}
				if diff := cmp.Diff(baseCopy, v1.Config{Labels: base.Labels, ExposedPorts: base.ExposedPorts, Volumes: base.Volumes}); diff != "" {
					t.Fatalf("the base's maps were written (-before +after):\n%s", diff)
				}
			}
		})
	}
}

// TestConfigMapsAreNew: a caller writing to a returned map changes no step.
func TestConfigMapsAreNew(t *testing.T) {
	c := NewConfig(v1.Config{Labels: map[string]string{"a": "1"}}).WithLabel("b", "2")
	c.Labels()["a"] = "changed"
	c.Image().Labels["b"] = "changed"
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "2"}, c.Labels()); diff != "" {
		t.Errorf("labels after writes to returned maps (-want +got):\n%s", diff)
	}
}
