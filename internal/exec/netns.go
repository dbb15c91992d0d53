package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Network modes accepted in Spec.Network.
const (
	// NetworkDefault runs the step in the build's own network namespace
	// (Spec.NetNS): outbound TCP and UDP through slirp4netns, no route to
	// the host's loopback, and none of the host's interfaces.
	NetworkDefault = "default"
	// NetworkHost shares the host's network namespace.
	NetworkHost = "host"
	// NetworkNone gives the step a new network namespace with only a
	// loopback interface.
	NetworkNone = "none"
)

// Slirp4netns is the default name of the user-mode network stack that
// gives a NetNS its outbound access (Debian package slirp4netns).
const Slirp4netns = "slirp4netns"

// The addresses slirp4netns gives the namespace (its defaults): the step
// has slirpGuest on tap0, slirpGateway is the route out, and slirpDNS
// forwards to the host's resolver.
const (
	slirpGuest   = "10.0.2.100"
	slirpGateway = "10.0.2.2"
	slirpDNS     = "10.0.2.3"
	slirpTap     = "tap0"
	// slirpMTU is the largest MTU slirp4netns takes; large frames make
	// bulk downloads several times faster than 1500.
	slirpMTU = 65520
)

// netnsStartTimeout bounds how long NewNetNS waits for slirp4netns to
// report the interface configured.
const netnsStartTimeout = 30 * time.Second

// ErrNetNSClosed is returned by Run for a step given a closed NetNS.
var ErrNetNSClosed = errors.New("exec: network namespace is closed")

// NetNSOptions configure NewNetNS. The zero value is usable.
type NetNSOptions struct {
	// Slirp4netns is the slirp4netns binary, a name looked up on PATH or
	// a path; "" means Slirp4netns.
	Slirp4netns string
	// Dir is a caller-owned directory where the namespace's resolv.conf
	// is written; "" means a new temporary directory, removed by Close.
	Dir string
}

// NetNS is a network namespace of its own for the RUN steps of one build,
// as Docker and BuildKit give each build by default. It has a loopback
// interface and tap0, through which slirp4netns (a process in the host's
// namespace) carries the step's TCP and UDP connections out as if kiln had
// opened them, and nothing else: the host's interfaces, its loopback
// (slirp4netns runs with --disable-host-loopback) and the traffic of other
// processes are out of reach. Steps resolve names through slirp4netns's
// forwarder at 10.0.2.3, which asks the host's resolvers.
//
// The namespace is held by an open file in kiln's own process, and
// slirp4netns exits when a pipe that only kiln holds closes, so a killed
// kiln leaves neither behind. A NetNS is safe for concurrent steps; Close
// it once no step runs in it any more.
type NetNS struct {
	ns         *os.File // the namespace, held open
	exitW      *os.File // closing it tells slirp4netns to exit
	cmd        *osexec.Cmd
	done       chan error // slirp4netns's exit
	dir        string
	removeDir  bool
	resolvConf string
}

// NewNetNS creates a network namespace and starts slirp4netns for it. It
// needs CAP_SYS_ADMIN (kiln runs as root to run containers anyway) and
// the slirp4netns binary.
func NewNetNS(ctx context.Context, opts NetNSOptions) (_ *NetNS, err error) {
	bin := opts.Slirp4netns
	if bin == "" {
		bin = Slirp4netns
	}
	path, err := osexec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("looking up %s for the build's network (install slirp4netns, or use --network host or none): %w", bin, err)
	}
	n := &NetNS{dir: opts.Dir, done: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.dir == "" {
		if n.dir, err = os.MkdirTemp("", "kiln-netns-"); err != nil {
			return nil, fmt.Errorf("creating network namespace dir: %w", err)
		}
		n.removeDir = true
	}
	if n.ns, err = newNetNamespace(); err != nil {
		return nil, err
	}
	n.resolvConf = filepath.Join(n.dir, "resolv.conf")
	if err := os.WriteFile(n.resolvConf, sandboxResolvConf(hostResolvConf()), 0o644); err != nil {
		return nil, fmt.Errorf("writing the build network's resolv.conf: %w", err)
	}
	if err := n.startSlirp(ctx, path); err != nil {
		return nil, err
	}
	return n, nil
}

// startSlirp starts slirp4netns on n.ns and waits until it reports tap0
// configured. slirp4netns gets the namespace as fd 3, the write end of the
// ready pipe as fd 4 and the read end of the exit pipe as fd 5.
func (n *NetNS) startSlirp(ctx context.Context, path string) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("creating pipe: %w", err)
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fmt.Errorf("creating pipe: %w", err)
	}
	n.exitW = exitW
	stderr := &headWriter{max: 4096}
	n.cmd = osexec.Command(path,
		"--configure", "--mtu="+strconv.Itoa(slirpMTU),
		"--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
		"--netns-type=path", "--ready-fd=4", "--exit-fd=5",
		"/proc/self/fd/3", slirpTap)
	n.cmd.ExtraFiles = []*os.File{n.ns, readyW, exitR}
	n.cmd.Stderr = stderr
	// Its own process group, so that a terminal's ^C reaches kiln, which
	// then closes the namespace in order, and not slirp4netns first.
	//
	// And a mount namespace of its own whose mounts are all private (Go
	// makes / MS_REC|MS_PRIVATE after unsharing it). --enable-sandbox
	// makes only / private (not recursively), pivots into a tmpfs and
	// lazily unmounts the old root: run as root from kiln's namespace,
	// that unmount propagated to every mount below a shared one there
	// (all of them on a systemd host: /dev/shm, /sys/fs/cgroup, ...; a
	// dockerd's container rootfs below its shared data root), so each
	// build with a RUN step on the default network unmounted them on the
	// host. From a private copy nothing propagates back.
	n.cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Unshareflags: unix.CLONE_NEWNS}
	err = n.cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		return fmt.Errorf("starting slirp4netns: %w", err)
	}
	go func() { n.done <- n.cmd.Wait() }()

	ready := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(readyR, b[:])
		ready <- err
	}()
	timer := time.NewTimer(netnsStartTimeout)
	defer timer.Stop()
	select {
	case err := <-ready:
		if err == nil {
			return nil
		}
		// The ready pipe closed without a byte: slirp4netns exited.
		werr := <-n.done
		n.done <- werr
		return fmt.Errorf("starting slirp4netns: %v: %s", werr, strings.TrimSpace(stderr.String()))
	case <-ctx.Done():
		return fmt.Errorf("starting slirp4netns: %w", ctx.Err())
	case <-timer.C:
		return fmt.Errorf("starting slirp4netns: no network after %v: %s", netnsStartTimeout, strings.TrimSpace(stderr.String()))
	}
}

// Close stops slirp4netns and releases the namespace. Steps still running
// in it lose their network.
func (n *NetNS) Close() error {
	var err error
	if n.exitW != nil {
		n.exitW.Close()
		n.exitW = nil
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.done
		}
	}
	if n.ns != nil {
		err = n.ns.Close()
		n.ns = nil
	}
	if n.removeDir {
		if rerr := os.RemoveAll(n.dir); rerr != nil && err == nil {
			err = rerr
		}
		n.removeDir = false
	}
	return err
}

// path is the namespace as a path the runtime can open while kiln runs.
func (n *NetNS) path() string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), n.ns.Fd())
}

// newNetNamespace creates a network namespace with its loopback interface
// up and returns it as an open file.
//
// unshare(CLONE_NEWNET) moves only the calling thread, so the namespace is
// made on a locked OS thread, which opens it and then goes back to the
// namespace it came from before it is unlocked. If it cannot go back, the
// goroutine returns still locked and the Go runtime discards the thread
// (or, for the main thread, parks it for good), so no other goroutine ever
// runs in the new namespace. Threads the runtime starts later are cloned
// from a clean template thread, never from a locked one.
func newNetNamespace() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, back, err := enterNewNetNamespace()
		if back {
			runtime.UnlockOSThread()
		}
		c <- result{f, err}
	}()
	r := <-c
	return r.f, r.err
}

// enterNewNetNamespace does newNetNamespace's work on the locked thread;
// back reports whether the thread is in its old namespace again.
func enterNewNetNamespace() (f *os.File, back bool, err error) {
	old, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, fmt.Errorf("opening network namespace: %w", err)
	}
	defer old.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("creating network namespace: %w", err)
	}
	f, err = os.Open("/proc/thread-self/ns/net")
	if err == nil {
		err = loopbackUp()
	}
	back = unix.Setns(int(old.Fd()), unix.CLONE_NEWNET) == nil
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, back, fmt.Errorf("opening network namespace: %w", err)
	}
	return f, back, nil
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}

// sandboxResolvConf is the resolv.conf of steps in a NetNS: slirp4netns's
// forwarder as the one nameserver (the host's may be on its loopback,
// which the namespace cannot reach), and the host's search and options
// lines.
func sandboxResolvConf(hostPath string) []byte {
	var b strings.Builder
	b.WriteString("nameserver " + slirpDNS + "\n")
	if hostPath == "" {
		return []byte(b.String())
	}
	host, err := os.ReadFile(hostPath)
	if err != nil {
		return []byte(b.String())
	}
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	return []byte(b.String())
}

// validateNetwork checks spec's network mode and fills in the default,
// NetworkDefault.
func validateNetwork(spec *Spec) error {
	switch spec.Network {
	case "":
		spec.Network = NetworkDefault
	case NetworkDefault, NetworkHost, NetworkNone:
	default:
		return fmt.Errorf("exec: unknown network mode %q (want %q, %q or %q)", spec.Network, NetworkDefault, NetworkHost, NetworkNone)
	}
	if spec.Network == NetworkDefault && spec.NetNS != nil && spec.NetNS.ns == nil {
		return ErrNetNSClosed
	}
	return nil
}

// headWriter keeps the first max bytes written to it, for an error
// message; it is safe to read while being written.
type headWriter struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p[:min(len(p), w.max-len(w.b))]...)
	return len(p), nil
}

func (w *headWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
