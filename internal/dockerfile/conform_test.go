package dockerfile

import (
	"testing"
	"time"
)

// TestScratchWorkingDir: FROM scratch starts with WorkingDir "/" in the
// config, as BuildKit writes it; a stage built on it inherits it, and an
// image base keeps its own (none here).
func TestScratchWorkingDir(t *testing.T) {
	tests := []struct {
		name, df, want string
	}{
		{"scratch", "FROM scratch\n", "/"},
		{"scratch then workdir", "FROM scratch\nWORKDIR /app\n", "/app"},
		{"stage on scratch", "FROM scratch AS a\nFROM a\n", "/"},
		{"image base", "FROM busybox\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustPlan(t, tt.df, Options{})
			if got := g.Target.Config.WorkingDir; got != tt.want {
				t.Errorf("WorkingDir = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHealthStartInterval: HEALTHCHECK --start-interval is recorded (BuildKit
// writes it), carried to a stage built on the stage, and reset by a later
// HEALTHCHECK without it.
func TestHealthStartInterval(t *testing.T) {
	tests := []struct {
		name, df string
		want     time.Duration
	}{
		{"set", "FROM scratch\nHEALTHCHECK --start-interval=2s --interval=30s CMD true\n", 2 * time.Second},
		{"inherited", "FROM scratch AS a\nHEALTHCHECK --start-interval=3s CMD true\nFROM a\n", 3 * time.Second},
		{"replaced", "FROM scratch\nHEALTHCHECK --start-interval=3s CMD true\nHEALTHCHECK NONE\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustPlan(t, tt.df, Options{})
			if got := g.Target.HealthStartInterval; got != tt.want {
				t.Errorf("HealthStartInterval = %v, want %v", got, tt.want)
			}
		})
	}
}
