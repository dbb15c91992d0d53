package progress

import (
	"fmt"
	"strconv"
	"time"
)

// HumanBytes formats a byte count with decimal (SI) units and one decimal
// place, the way --max-size and docker write sizes: 999 B, 1.0 kB, 1.2 MB,
// 3.4 GB. A negative n keeps its sign.
func HumanBytes(n int64) string {
	if n < 0 {
		if n == -n { // math.MinInt64 has no positive counterpart
			return "-" + HumanBytes(-(n + 1))
		}
		return "-" + HumanBytes(-n)
	}
	if n < 1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	const units = "kMGTPE"
	v := float64(n) / 1000
	i := 0
	// Round first, so that 999.96 kB becomes 1.0 MB, not 1000.0 kB.
	for ; i < len(units)-1 && v*10+0.5 >= 10000; i++ {
		v /= 1000
	}
	return fmt.Sprintf("%.1f %cB", v, units[i])
}

// HumanDuration formats a duration the way step times are shown: tenths of
// a second under a minute (0.0s, 1.4s, 59.9s), whole seconds from a minute
// on (2m3s, 1h0m5s). A negative d shows as 0.0s.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if r := d.Round(100 * time.Millisecond); r < time.Minute {
		return fmt.Sprintf("%.1fs", r.Seconds())
	}
	d = d.Round(time.Second)
	h, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	if h > 0 {
		return fmt.Sprintf("%dh%dm%ds", h, m, s)
	}
	return fmt.Sprintf("%dm%ds", m, s)
}
