package dockerfile

import (
	"testing"
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
