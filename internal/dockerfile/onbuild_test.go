package dockerfile

import (
	"context"
	"testing"
)

// TestOnbuildFromStageIsNeeded: an ONBUILD COPY --from=<stage> in a base
// stage pulls that stage into the graph of a stage built FROM it.
func TestOnbuildFromStageIsNeeded(t *testing.T) {
	df := "FROM scratch AS other\nCOPY a /a\n\nFROM scratch AS base\nONBUILD COPY --from=other /a /b\n\nFROM base AS final\nCOPY c /c\n"
	g, err := Plan(context.Background(), []byte(df), Options{})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	names := map[string]bool{}
	for _, s := range g.Stages {
		names[s.Name] = true
	}
	if !names["other"] || !names["base"] || !names["final"] {
		t.Errorf("stages %v, want other, base and final", names)
	}
	if g.Stages[len(g.Stages)-1].Name != "final" {
		t.Errorf("target is not last")
	}
}
