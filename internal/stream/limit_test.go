package stream

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadAllLimited(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		limit   int64
		wantErr bool
	}{
		{"under", "abc", 4, false},
		{"exact", "abcd", 4, false},
		{"over", "abcde", 4, true},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ReadAllLimited(strings.NewReader(tt.in), "test document", tt.limit)
			if tt.wantErr {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("got %v, want ErrTooLarge", err)
				}
				if msg := err.Error(); !strings.Contains(msg, "test document") || !strings.Contains(msg, "4 B") {
					t.Errorf("error %q does not name the document and the cap", msg)
				}
				return
			}
			if err != nil || string(b) != tt.in {
				t.Fatalf("got %q, %v; want %q", b, err, tt.in)
			}
		})
	}
}

func TestLimitReader(t *testing.T) {
	r := LimitReader(io.NopCloser(strings.NewReader(strings.Repeat("x", 5000))), "manifest m", 4096)
	b, err := io.ReadAll(r)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if len(b) > 4096 {
		t.Errorf("read %d bytes past a 4096-byte cap", len(b))
	}
	if want := "manifest m is too large: more than 4 KiB, the limit"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	ok := LimitReader(io.NopCloser(strings.NewReader("abcd")), "m", 4)
	if b, err := io.ReadAll(ok); err != nil || string(b) != "abcd" {
		t.Errorf("at the cap: got %q, %v", b, err)
	}
}
