package progress

import (
	"math"
	"testing"
	"time"
)

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{999, "999 B"},
		{1000, "1.0 kB"},
		{1024, "1.0 kB"},
		{1_250, "1.2 kB"}, // %.1f rounds half to even on the binary value
		{1_260, "1.3 kB"},
		{999_949, "999.9 kB"},
		{999_950, "1.0 MB"},
		{1_200_000, "1.2 MB"},
		{3_400_000, "3.4 MB"},
		{12_345_678_901, "12.3 GB"},
		{999_999_999_999_999_999, "1.0 EB"},
		{math.MaxInt64, "9.2 EB"},
		{-1_500, "-1.5 kB"},
		{math.MinInt64, "-9.2 EB"},
	}
	for _, tt := range tests {
		if got := HumanBytes(tt.n); got != tt.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.0s"},
		{-time.Second, "0.0s"},
		{49 * time.Millisecond, "0.0s"},
		{50 * time.Millisecond, "0.1s"},
		{213 * time.Millisecond, "0.2s"},
		{1400 * time.Millisecond, "1.4s"},
		{12300 * time.Millisecond, "12.3s"},
		{59_940 * time.Millisecond, "59.9s"},
		{59_960 * time.Millisecond, "1m0s"},
		{time.Minute, "1m0s"},
		{123 * time.Second, "2m3s"},
		{123_600 * time.Millisecond, "2m4s"},
		{time.Hour + 5*time.Second, "1h0m5s"},
		{26 * time.Hour, "26h0m0s"},
	}
	for _, tt := range tests {
		if got := HumanDuration(tt.d); got != tt.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
