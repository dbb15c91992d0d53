package exec

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultShmSize is the size of a step's /dev/shm when Spec.ShmSize is 0,
// as Docker gives (64 MiB).
const DefaultShmSize = 64 << 20

// Host is one extra /etc/hosts entry of a step (docker build --add-host).
type Host struct {
	// Name is the host name; it holds no space, tab or newline.
	Name string
	// IP is the address it resolves to.
	IP net.IP
}

// String is "NAME:IP", the form ParseHost reads.
func (h Host) String() string { return h.Name + ":" + h.IP.String() }

// ParseHost reads HOST:IP or HOST=IP (an IPv6 address may follow a colon
// unbracketed, "h:::1", or bracketed, "h:[::1]"). "host-gateway" is
// refused: a RUN step has a network namespace of its own, with no gateway
// that leads to the host.
func ParseHost(s string) (Host, error) {
	sep := strings.IndexAny(s, "=:")
	if sep <= 0 {
		return Host{}, fmt.Errorf("want HOST:IP")
	}
	name, addr := s[:sep], s[sep+1:]
	if strings.ContainsAny(name, " \t\r\n#") {
		return Host{}, fmt.Errorf("host name %q holds a space or #", name)
	}
	if addr == "host-gateway" {
		return Host{}, fmt.Errorf("host-gateway is not supported: RUN steps have their own network namespace, with no gateway to the host")
	}
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	ip := net.ParseIP(addr)
	if ip == nil {
		return Host{}, fmt.Errorf("%q is not an IP address", addr)
	}
	return Host{Name: name, IP: ip}, nil
}

// Unlimited is an Ulimit value without a limit (RLIM_INFINITY); Docker
// writes it as -1.
const Unlimited = ^uint64(0)

// Ulimit is one resource limit of a step (docker build --ulimit), an OCI
// process rlimit.
type Ulimit struct {
	// Name is the limit's name as Docker writes it: nofile, nproc, core, …
	Name string
	// Soft and Hard are the limits; Unlimited is none.
	Soft, Hard uint64
}

// String is "NAME=SOFT:HARD", the form ParseUlimit reads, -1 for
// unlimited.
func (u Ulimit) String() string {
	v := func(n uint64) string {
		if n == Unlimited {
			return "-1"
		}
		return strconv.FormatUint(n, 10)
	}
	return u.Name + "=" + v(u.Soft) + ":" + v(u.Hard)
}

// ulimitResources are the resource numbers of the limits, for checking
// them against kiln's own.
var ulimitResources = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// checkRaise refuses, with one line, a ulimit whose hard limit is above
// kiln's own when kiln lacks CAP_SYS_RESOURCE (in a container or a
// sandbox): the runtime would fail to start the step with a message about
// rlimit numbers instead.
func checkRaise(ulimits []Ulimit, canRaise bool, current func(resource int) (uint64, error)) error {
	if canRaise {
		return nil
	}
	for _, u := range ulimits {
		max, err := current(ulimitResources[u.Name])
		if err != nil || u.Hard <= max {
			continue
		}
		return fmt.Errorf("--ulimit %s: the hard limit %s is above kiln's own (%s), and kiln lacks CAP_SYS_RESOURCE to raise it", u, limitString(u.Hard), limitString(max))
	}
	return nil
}

// hardLimit is this process's hard limit of resource.
func hardLimit(resource int) (uint64, error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(resource, &l); err != nil {
		return 0, err
	}
	return l.Max, nil
}

func limitString(n uint64) string {
	if n == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(n, 10)
}

// ulimitNames are the limits Docker accepts, by name, with their rlimit.
var ulimitNames = map[string]string{
	"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
	"fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
	"msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
	"nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
	"rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}

// ParseUlimit reads NAME=SOFT[:HARD] as Docker does: a single value is
// both limits, -1 is unlimited, and the soft limit may not exceed the hard
// one.
func ParseUlimit(s string) (Ulimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" || val == "" {
		return Ulimit{}, fmt.Errorf("want NAME=SOFT[:HARD]")
	}
	if _, ok := ulimitNames[name]; !ok {
		names := make([]string, 0, len(ulimitNames))
		for n := range ulimitNames {
			names = append(names, n)
		}
		slices.Sort(names)
		return Ulimit{}, fmt.Errorf("unknown limit %q (want one of %s)", name, strings.Join(names, ", "))
	}
	num := func(v string) (uint64, error) {
		if v == "-1" {
			return Unlimited, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number (or -1 for unlimited)", v)
		}
		return n, nil
	}
	softS, hardS, two := strings.Cut(val, ":")
	soft, err := num(softS)
	if err != nil {
		return Ulimit{}, err
	}
	hard := soft
	if two {
		if hard, err = num(hardS); err != nil {
			return Ulimit{}, err
		}
	}
	if soft > hard {
		return Ulimit{}, fmt.Errorf("soft limit %s is above the hard limit %s", softS, hardS)
	}
	return Ulimit{Name: name, Soft: soft, Hard: hard}, nil
}

// rlimits are a step's rlimits: RLIMIT_NOFILE at nofile, then each of
// ulimits, a later one replacing an earlier one of the same name.
func rlimits(nofile uint64, ulimits []Ulimit) []specs.POSIXRlimit {
	out := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}}
	for _, u := range ulimits {
		typ := ulimitNames[u.Name]
		l := specs.POSIXRlimit{Type: typ, Soft: u.Soft, Hard: u.Hard}
		if i := slices.IndexFunc(out, func(r specs.POSIXRlimit) bool { return r.Type == typ }); i >= 0 {
			out[i] = l
		} else {
			out = append(out, l)
		}
	}
	return out
}

// validateLimits checks the hosts, ulimits and shm size of spec.
func validateLimits(spec *Spec) error {
	if spec.ShmSize < 0 {
		return fmt.Errorf("exec: shm size %d is negative", spec.ShmSize)
	}
	for _, h := range spec.Hosts {
		if h.Name == "" || h.IP == nil || strings.ContainsAny(h.Name, " \t\r\n#") {
			return fmt.Errorf("exec: bad hosts entry %q", h.String())
		}
	}
	for _, u := range spec.Ulimits {
		if _, ok := ulimitNames[u.Name]; !ok {
			return fmt.Errorf("exec: unknown ulimit %q", u.Name)
		}
		if u.Soft > u.Hard {
			return fmt.Errorf("exec: ulimit %s: soft limit above the hard limit", u.Name)
		}
	}
	return nil
}

// capSysResource is the capability that raises hard limits.
const capSysResource = unix.CAP_SYS_RESOURCE
