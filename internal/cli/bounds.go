package cli

import (
	"time"
)

// httpBounds are the registry client's bounds on time that the
// environment may set (README "Environment"): a registry that never
// answers, or a download that stalls or trickles, fails within them.
type httpBounds struct {
	// header is KILN_HTTP_HEADER_TIMEOUT: the wait for response headers
	// once a request is sent (0: transport's default, one minute).
	header time.Duration
	// idle is KILN_HTTP_IDLE_TIMEOUT: how long a download may go without
	// 1 KiB arriving (0: transport's default, 30 seconds).
	idle time.Duration
}

// readHTTPBounds reads the bounds from the environment. A value is a Go
// duration greater than zero ("5s", "2m"); anything else is a usage error
// naming the variable.
func readHTTPBounds(getenv func(string) string) (httpBounds, error) {
	var b httpBounds
	for _, v := range []struct {
		name string
		dst  *time.Duration
	}{
		{"KILN_HTTP_HEADER_TIMEOUT", &b.header},
		{"KILN_HTTP_IDLE_TIMEOUT", &b.idle},
	} {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return httpBounds{}, usagef("%s=%q: want a duration greater than zero, such as 30s or 2m", v.name, s)
		}
		*v.dst = d
	}
	return b, nil
}
