package build

import (
	"context"
	"testing"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/plan"
)

// TestNumberAcross: the steps of a two-platform build have numbers unique
// across both graphs, and each graph's total is the build's.
func TestNumberAcross(t *testing.T) {
	df := []byte("FROM --platform=$BUILDPLATFORM scratch AS a\nCOPY x /x\nFROM scratch\nCOPY --from=a /x /y\nENV A=1\n")
	var graphs []*plan.Graph
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		pl, err := plan.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		g, err := dockerfile.Plan(context.Background(), df, dockerfile.Options{Platform: pl})
		if err != nil {
			t.Fatal(err)
		}
		graphs = append(graphs, g)
	}
	per := graphs[0].Steps
	numberAcross(graphs)
	seen := map[int]bool{}
	for _, g := range graphs {
		if g.Steps != 2*per {
			t.Errorf("graph %s: Steps = %d, want %d", plan.FormatPlatform(g.Platform), g.Steps, 2*per)
		}
		for _, st := range g.Stages {
			for _, step := range st.Steps {
				if seen[step.Number] || step.Number < 1 || step.Number > 2*per {
					t.Errorf("step %q of %s has number %d: repeated or out of 1..%d", step.Text, plan.FormatPlatform(g.Platform), step.Number, 2*per)
				}
				seen[step.Number] = true
			}
		}
	}
	one := []*plan.Graph{graphs[0]}
	before := graphs[0].Steps
	numberAcross(one)
	if graphs[0].Steps != before {
		t.Errorf("one graph was renumbered")
	}
}
