package main

import (
	"net"
	"sort"
	"sync"
	"time"
)

// A span is one round trip through the proxy: a request, or an HTTPS
// attempt at the plain-HTTP proxy (a TLS hello it answers with 400).
type span struct{ start, end time.Time }

// depth is the length of the longest chain of spans in which each began
// after the one before it ended: with a latency L added to every round
// trip, a build waits at least depth × L on the registry.
func depth(spans []span) int {
	s := append([]span(nil), spans...)
	sort.Slice(s, func(i, j int) bool { return s[i].start.Before(s[j].start) })
	best := make([]int, len(s))
	n := 0
	for i := range s {
		best[i] = 1
		for j := 0; j < i; j++ {
			if !s[j].end.After(s[i].start) && best[j]+1 > best[i] {
				best[i] = best[j] + 1
			}
		}
		n = max(n, best[i])
	}
	return n
}

// helloListener hands the proxy's HTTP server its connections and counts,
// as round trips, those that begin with a TLS handshake record (kiln's
// HTTPS attempt at a loopback registry, before it falls back to HTTP).
// With a latency, such a connection's first read waits that long, as a
// far-away registry's TLS answer would.
type helloListener struct {
	net.Listener
	latency time.Duration
	hello   func(span)
}

func (l *helloListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &helloConn{Conn: c, l: l, start: time.Now()}, nil
}

type helloConn struct {
	net.Conn
	l     *helloListener
	start time.Time
	read  bool
	tls   bool
	once  sync.Once
}

func (c *helloConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.read && n > 0 {
		c.read, c.tls = true, b[0] == 0x16
		if c.tls {
			time.Sleep(c.l.latency)
		}
	}
	return n, err
}

func (c *helloConn) Close() error {
	c.once.Do(func() {
		if c.tls {
			c.l.hello(span{c.start, time.Now()})
		}
	})
	return c.Conn.Close()
}
