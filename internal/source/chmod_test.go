package source

import (
	"errors"
	"io/fs"
	"testing"
)

// TestChmod: octal and symbolic --chmod values give the modes BuildKit
// v0.34.2 gave for them (recorded in e2e/testdata/conformance/04-chmod-symbolic).
func TestChmod(t *testing.T) {
	dir := fs.ModeDir
	tests := []struct {
		chmod string
		in    fs.FileMode
		want  fs.FileMode
	}{
		{"0755", 0o600, 0o755},
		{"640", dir | 0o755, dir | 0o640},
		{"4755", 0o600, fs.ModeSetuid | 0o755},
		{"u+x", 0o664, 0o764},
		{"g-w,o=r", 0o664, 0o644},
		{"+X", dir | 0o700, dir | 0o711},
		{"+X", 0o664, 0o664},
		{"+X", 0o744, 0o755},
		{"a=rwx,u-w", 0o664, 0o577},
		{"go=", 0o664, 0o600},
		{"go=", dir | 0o700, dir | 0o700},
		{"u=rwx,g=u-w", 0o600, 0o750},
		{"o=g", 0o650, 0o655},
		{"u+s", 0o755, fs.ModeSetuid | 0o755},
		{"+t", dir | 0o777, dir | fs.ModeSticky | 0o777},
	}
	for _, tt := range tests {
		c, err := ParseChmod(tt.chmod)
		if err != nil {
			t.Errorf("ParseChmod(%q): %v", tt.chmod, err)
			continue
		}
		if got := c.Apply(tt.in); got != tt.want {
			t.Errorf("%q on %v = %v, want %v", tt.chmod, tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"u+q", "8755", "07777a", "x", "u", "u+x,", "ugo"} {
		var ce *ChmodError
		if _, err := ParseChmod(bad); !errors.As(err, &ce) || ce.Value != bad {
			t.Errorf("ParseChmod(%q) = %v, want a *ChmodError for it", bad, err)
		}
	}
	if c, err := ParseChmod(""); c != nil || err != nil {
		t.Errorf(`ParseChmod("") = %v, %v; want nil, nil`, c, err)
	}
}
