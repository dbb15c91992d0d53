package exec

import (
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// specVersion is the runtime-spec version config.json declares: the oldest
// that has every field used here, since crun 1.8 refuses versions it does
// not know (specs.Version is newer).
const specVersion = "1.0.2"

// maxNofile is the RLIMIT_NOFILE a step asks for, as Docker gives.
const maxNofile = 1048576

// defaultCaps is Docker's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// Docker's masked and read-only paths.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// configInput is everything configFor needs, host facts included, so that
// the config is a pure function of it.
type configInput struct {
	spec       Spec // validated: defaults filled in, paths absolute
	uid, gid   uint32
	groups     []uint32
	hostsFile  string // host path of the generated /etc/hosts
	resolvConf string // host path of resolv.conf, "" for none
	nofile     uint64 // RLIMIT_NOFILE to set
	inUserNS   bool   // kiln itself runs in a non-initial user namespace
	cgroupNS   bool   // the kernel has cgroup namespaces
}

// configFor builds the runtime-spec config for one step.
func configFor(in configInput) *specs.Spec {
	s := in.spec
	umask := uint32(0o022)
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
	}
	switch s.Network {
	case NetworkNone:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	case NetworkDefault:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNS.path()})
	}
	if in.cgroupNS {
		// Private, as Docker's default on cgroup v2 hosts: the step sees
		// its own cgroup as the root of /proc/self/cgroup, not the host's
		// hierarchy.
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return &specs.Spec{
		Version: specVersion,
		Process: &specs.Process{
			Terminal: false,
			User: specs.User{
				UID:            in.uid,
				GID:            in.gid,
				AdditionalGids: in.groups,
				Umask:          &umask,
			},
			Args: s.Args,
			Env:  withPath(s.Env),
			Cwd:  s.Cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps,
				Effective: defaultCaps,
				Permitted: defaultCaps,
			},
			Rlimits:         rlimits(in.nofile, s.Ulimits),
			NoNewPrivileges: false,
		},
		Root:     &specs.Root{Path: s.Root, Readonly: false},
		Hostname: s.Hostname,
		Mounts:   mountsFor(in),
		Linux: &specs.Linux{
			Namespaces: ns,
			Devices:    devices(),
			Resources: &specs.LinuxResources{
				Devices: deviceRules(),
			},
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
}

// withPath returns env with DefaultPath added if it has no PATH.
func withPath(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return env
		}
	}
	return append(append([]string(nil), env...), "PATH="+DefaultPath)
}

func mountsFor(in configInput) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc",
			Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize(in.spec.ShmSize), 10)}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
			Options: []string{"nosuid", "noexec", "nodev"}},
		sysMount(in.spec.Network == NetworkHost && in.inUserNS),
		cgroupMount,
	}
	resolv := in.resolvConf
	if in.spec.Network == NetworkDefault {
		resolv = in.spec.NetNS.resolvConf
	}
	if resolv != "" {
		ms = append(ms, roBind(resolv, "/etc/resolv.conf"))
	}
	ms = append(ms, roBind(in.hostsFile, "/etc/hosts"))
	for _, m := range in.spec.Mounts {
		switch m.Type {
		case MountBind:
			opts := []string{"rbind", "rprivate"}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			ms = append(ms, specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: opts})
		case MountTmpfs:
			opts := []string{"nosuid", "nodev", "mode=1777"}
			if m.Size > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.Size, 10))
			}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			ms = append(ms, specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: opts})
		}
	}
	return ms
}

// shmSize is the size of /dev/shm for a Spec.ShmSize.
func shmSize(n int64) int64 {
	if n == 0 {
		return DefaultShmSize
	}
	return n
}

// sysMount mounts a fresh read-only sysfs. A new sysfs instance can only be
// mounted by a user namespace that owns the network namespace; when kiln
// runs in a user namespace and the step shares the host's network
// namespace, that is not so, and a read-only recursive bind of the host's
// /sys is used instead (what rootless runc and Docker do). As real root on
// the host, sysfs mounts fine with the host network too (tested).
func sysMount(bindHost bool) specs.Mount {
	if bindHost {
		return specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys",
			Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
	}
	return specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs",
		Options: []string{"nosuid", "noexec", "nodev", "ro"}}
}

// cgroupMount is Docker's default /sys/fs/cgroup: the step's own cgroups,
// read-only (on cgroup v2 with a private cgroup namespace, the step's
// cgroup as the root; on v1, each hierarchy as the runtime binds it). A
// step reads its limits there, as programs do in a container (the JVM,
// Go's GOMAXPROCS), and can write none of them.
var cgroupMount = specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
	Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}}

func roBind(src, dst string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src,
		Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev"}}
}

// devices are the device nodes every step gets in its /dev.
func devices() []specs.LinuxDevice {
	mode := os.FileMode(0o666)
	var zero uint32
	dev := func(path string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor,
			FileMode: &mode, UID: &zero, GID: &zero}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3),
		dev("/dev/zero", 1, 5),
		dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8),
		dev("/dev/urandom", 1, 9),
		dev("/dev/tty", 5, 0),
	}
}

// deviceRules is the devices cgroup policy: deny everything but mknod and
// the default devices, /dev/ptmx and the container's ptys.
func deviceRules() []specs.LinuxDeviceCgroup {
	i := func(v int64) *int64 { return &v }
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(5), Access: "rwm"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(7), Access: "rwm"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(8), Access: "rwm"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(9), Access: "rwm"},
		{Allow: true, Type: "c", Major: i(5), Minor: i(0), Access: "rwm"},
		{Allow: true, Type: "c", Major: i(5), Minor: i(2), Access: "rwm"},
		{Allow: true, Type: "c", Major: i(136), Access: "rwm"},
	}
}

// nofileLimit returns maxNofile, or the current hard limit if that is lower
// and this process lacks CAP_SYS_RESOURCE (inside a container or a VM
// sandbox): raising a hard limit needs that capability, and the runtime
// would refuse to start the container.
func nofileLimit() uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil || l.Max >= maxNofile || hasCap(unix.CAP_SYS_RESOURCE) {
		return maxNofile
	}
	return l.Max
}

// hasCap reports whether capability c is in this process's effective set.
func hasCap(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && eff&(1<<uint(c)) != 0
		}
	}
	return false
}

// hostHasCgroupNS reports whether the kernel has cgroup namespaces.
func hostHasCgroupNS() bool {
	_, err := os.Stat("/proc/self/ns/cgroup")
	return err == nil
}

// inUserNamespace reports whether this process runs in a user namespace
// other than the initial one (whose uid_map is the identity over all ids).
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}
