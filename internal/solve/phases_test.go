package solve

import (
	"testing"
	"time"
)

// TestPhases: each mark is the time since the one before, in order, as
// slog key-value pairs.
func TestPhases(t *testing.T) {
	p := newPhases()
	p.mark("a")
	time.Sleep(20 * time.Millisecond)
	p.mark("b")
	attrs := p.attrs()
	if len(attrs) != 4 || attrs[0] != "a" || attrs[2] != "b" {
		t.Fatalf("attrs = %v, want a, <d>, b, <d>", attrs)
	}
	a, err := time.ParseDuration(attrs[1].(string))
	if err != nil {
		t.Fatal(err)
	}
	b, err := time.ParseDuration(attrs[3].(string))
	if err != nil {
		t.Fatal(err)
	}
	if a >= 20*time.Millisecond || b < 20*time.Millisecond {
		t.Errorf("a = %v, b = %v; want a < 20ms <= b", a, b)
	}
}
