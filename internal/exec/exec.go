package exec

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Mount types accepted in Mount.Type.
const (
	// MountBind bind-mounts Mount.Source (a host file or directory).
	MountBind = "bind"
	// MountTmpfs mounts an empty tmpfs; Mount.Source is ignored.
	MountTmpfs = "tmpfs"
)

// DefaultPath is the PATH a step gets when Spec.Env has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultHostname is the hostname a step gets when Spec.Hostname is empty.
const DefaultHostname = "kiln"

// killGrace is how long Run waits for the runtime to exit after it was told
// to kill a cancelled container, before it kills the runtime process itself.
var killGrace = 3 * time.Second

// killRetry is how often a cancelled Run asks the runtime again to kill a
// container it was still creating.
const killRetry = 20 * time.Millisecond

// Mount is an extra mount for a step: a secret (a read-only bind of a file),
// a cache directory (a read-write bind) or a tmpfs.
type Mount struct {
	// Type is MountBind or MountTmpfs.
	Type string
	// Source is the host path for a bind mount; it must exist.
	Source string
	// Target is the absolute path inside the rootfs. A missing target is
	// created (a file for a file source, a directory otherwise) and
	// removed again after the step if it is still empty.
	Target string
	// ReadOnly mounts the target read-only.
	ReadOnly bool
	// Size limits a tmpfs mount, in bytes; 0 means the kernel's default.
	Size int64
}

// Spec describes one process to run in a container. The zero values of the
// optional fields are documented and usable.
type Spec struct {
	// Runtime is the OCI runtime binary name (looked up on PATH) or path;
	// "" means "runc". runc and crun are supported.
	Runtime string
	// Root is the root filesystem directory, prepared and writable.
	Root string
	// Args is the argv of the process; it must not be empty.
	Args []string
	// Env is the environment as KEY=VALUE. DefaultPath is added when it
	// holds no PATH.
	Env []string
	// Cwd is the absolute working directory; "" means "/". If missing, it
	// is created in Root (mode 0755, every created directory owned by
	// User, as BuildKit's WORKDIR does) and then stays there.
	Cwd string
	// User is the Dockerfile USER: "name", "uid", "name:group" or
	// "uid:gid"; "" means root. See ResolveUser.
	User string
	// Network is NetworkDefault ("" too), NetworkHost or NetworkNone.
	Network string
	// NetNS is the build's network namespace, which NetworkDefault steps
	// join; nil makes Run create one for this step alone and close it
	// afterwards (some milliseconds more per step). Other modes ignore it.
	NetNS *NetNS
	// Hostname is the container's hostname; "" means DefaultHostname.
	Hostname string
	// Mounts are extra mounts, applied after the standard ones, in order.
	Mounts []Mount
	// Hosts are extra /etc/hosts entries, after the standard ones.
	Hosts []Host
	// ShmSize is the size of /dev/shm in bytes; 0 means DefaultShmSize.
	ShmSize int64
	// Ulimits are resource limits; one for nofile replaces the default
	// (1048576, or the hard limit kiln itself has when it cannot raise
	// it). Raising a hard limit above kiln's own needs CAP_SYS_RESOURCE.
	Ulimits []Ulimit
	// Stdout and Stderr receive the process's output as it is written
	// (they are pipes, not a terminal). nil discards. Errors the runtime
	// itself prints also go to Stderr.
	Stdout, Stderr io.Writer
	// Filters, for a crun step, is the build's seccomp programs compiled
	// by crun, reused instead of compiling the profile again (see
	// Filters); nil compiles it in every step, as runc always does.
	Filters *Filters
	// BundleDir is a fresh, caller-owned directory (keep its path short)
	// where Run writes config.json, the generated hosts file and the
	// runtime's log. Run does not remove it.
	BundleDir string
}

// ExitError reports that the process ran and exited with a non-zero code.
type ExitError struct {
	// Code is the process's exit status, 1 to 255.
	Code int
}

// Error returns "exit code N".
func (e *ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// Available reports whether the OCI runtime (a name looked up on PATH, or a
// path; "" means "runc") can be executed, so that a build can fail with a
// clear message before it starts.
func Available(runtime string) error {
	_, err := lookRuntime(runtime)
	return err
}

func lookRuntime(runtime string) (string, error) {
	if runtime == "" {
		runtime = "runc"
	}
	p, err := osexec.LookPath(runtime)
	if err != nil {
		return "", fmt.Errorf("looking up OCI runtime %q: %w", runtime, err)
	}
	return p, nil
}

// Run executes spec in a new container and waits for it to exit. A process
// that exits non-zero gives *ExitError; a runtime that cannot start the
// container gives another error carrying the runtime's message. Cancelling
// ctx kills the container and Run returns an error wrapping ctx's error.
//
// Each call uses a unique container ID, and "runtime delete --force ID" runs
// on every path out, so no container outlives Run. If the process running
// Run is killed, the container does outlive it (an OCI runtime cannot tie a
// container's life to its caller's): Reap on the BundleDir stops it and
// removes the cgroup directories the runtime made for it, even when the
// runtime died before the container existed.
// Concurrent calls are safe with distinct BundleDirs.
func Run(ctx context.Context, spec Spec) (err error) {
	rt, err := lookRuntime(spec.Runtime)
	if err != nil {
		return err
	}
	if err := validate(&spec); err != nil {
		return err
	}
	if spec.Network == NetworkDefault && spec.NetNS == nil {
		n, err := NewNetNS(ctx, NetNSOptions{Dir: spec.BundleDir})
		if err != nil {
			return err
		}
		defer n.Close() // after the container is deleted (defers run last first)
		spec.NetNS = n
	}
	if err := checkRaise(spec.Ulimits, hasCap(capSysResource), hardLimit); err != nil {
		return err
	}
	uid, gid, groups, err := ResolveUser(spec.Root, spec.User)
	if err != nil {
		return err
	}
	if err := makeCwd(spec.Root, spec.Cwd, uid, gid); err != nil {
		return err
	}
	hosts := filepath.Join(spec.BundleDir, "hosts")
	if err := os.WriteFile(hosts, hostsFile(spec.Hostname, spec.Hosts), 0o644); err != nil {
		return fmt.Errorf("writing hosts file: %w", err)
	}

	cfg := configFor(configInput{
		spec:       spec,
		uid:        uid,
		gid:        gid,
		groups:     groups,
		hostsFile:  hosts,
		resolvConf: hostResolvConf(),
		nofile:     nofileLimit(),
		inUserNS:   inUserNamespace(),
		cgroupNS:   hostHasCgroupNS(),
	})
	if err := applySeccomp(cfg); err != nil {
		return err
	}
	if bpf := spec.Filters.program(ctx, rt, cfg.Linux.Seccomp); bpf != nil {
		withProgram(cfg, bpf)
	}
	mps, err := makeMountPoints(spec.Root, cfg.Mounts)
	// gone is false while a container may still run in Root: its processes
	// could then race symlink swaps against the removal of mount points.
	gone := true
	defer func() {
		if !gone {
			return
		}
		if rerr := mps.remove(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding runtime config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(spec.BundleDir, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("writing runtime config: %w", err)
	}

	r := ociRuntime{path: rt, hideUnified: crunNeedsHiddenUnified(rt)}
	id, err := newID()
	if err != nil {
		return err
	}
	// Written before the container can exist: if kiln is killed, Reap finds
	// the container from here.
	if err := writeRecord(spec.BundleDir, containerRecord{Runtime: rt, ID: id, Cgroups: cgroupDirs(id)}); err != nil {
		return err
	}
	gone = false
	defer func() {
		// "runtime run" destroys the container when its init exits: when
		// the runtime's state of it is gone, so is the container, and the
		// delete (an exec of the runtime, a few tens of ms) is not needed.
		if r.stateGone(id) {
			gone = true
			return
		}
		derr := r.delete(id)
		gone = derr == nil
		if derr != nil && err == nil {
			err = derr
		}
	}()
	return r.run(ctx, id, spec)
}

// validate checks spec and fills in the documented defaults.
func validate(spec *Spec) error {
	switch {
	case spec.Root == "":
		return errors.New("exec: Spec.Root is empty")
	case len(spec.Args) == 0:
		return errors.New("exec: Spec.Args is empty")
	case spec.BundleDir == "":
		return errors.New("exec: Spec.BundleDir is empty")
	}
	root, err := filepath.Abs(spec.Root)
	if err != nil {
		return fmt.Errorf("resolving rootfs path: %w", err)
	}
	spec.Root = root
	bundle, err := filepath.Abs(spec.BundleDir)
	if err != nil {
		return fmt.Errorf("resolving bundle path: %w", err)
	}
	spec.BundleDir = bundle
	if spec.Cwd == "" {
		spec.Cwd = "/"
	}
	if !filepath.IsAbs(spec.Cwd) {
		return fmt.Errorf("exec: working directory %q is not absolute", spec.Cwd)
	}
	if err := validateNetwork(spec); err != nil {
		return err
	}
	if err := validateLimits(spec); err != nil {
		return err
	}
	if spec.Hostname == "" {
		spec.Hostname = DefaultHostname
	}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Target) {
			return fmt.Errorf("exec: mount target %q is not absolute", m.Target)
		}
		switch m.Type {
		case MountBind:
			// The runtime resolves a relative source against the bundle
			// directory, which would bind config.json (and its env) instead.
			if !filepath.IsAbs(m.Source) {
				return fmt.Errorf("exec: bind mount source %q for %s is not absolute", m.Source, m.Target)
			}
			if _, err := os.Stat(m.Source); err != nil {
				return fmt.Errorf("checking bind mount source for %s: %w", m.Target, err)
			}
		case MountTmpfs:
		default:
			return fmt.Errorf("exec: unknown mount type %q for %s", m.Type, m.Target)
		}
	}
	return nil
}

func newID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating container ID: %w", err)
	}
	return "kiln-" + hex.EncodeToString(b[:]), nil
}

// hostsFile is a step's /etc/hosts: localhost and the hostname, then the
// extra entries, one line each ("IP\tNAME"), as Docker writes them.
func hostsFile(hostname string, extra []Host) []byte {
	b := []byte("127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range extra {
		b = append(b, h.IP.String()+"\t"+h.Name+"\n"...)
	}
	return b
}

// hostResolvConf returns the host's /etc/resolv.conf, or "" if there is none.
func hostResolvConf() string {
	const p = "/etc/resolv.conf"
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// ociRuntime is one OCI runtime binary.
type ociRuntime struct {
	path string
	// hideUnified: start the runtime in a mount namespace without the
	// cgroup v2 hierarchy of a hybrid host (see hybrid.go).
	hideUnified bool
}

// run runs "runtime run" for the bundle and maps its outcome to Run's errors.
func (r ociRuntime) run(ctx context.Context, id string, spec Spec) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("running %s: %w", id, err)
	}
	logPath := filepath.Join(spec.BundleDir, "runtime.log")
	cmd := osexec.CommandContext(ctx, r.path, "--log", logPath, "--log-format", "json",
		"run", "--bundle", spec.BundleDir, id)
	cmd.Stdout = spec.Stdout
	cmd.Stderr = spec.Stderr
	exited := make(chan struct{})
	cmd.Cancel = func() error {
		// The runtime forwards no SIGKILL, and the container's init ignores
		// SIGTERM: ask the runtime to kill the container instead. While
		// the runtime is still creating it there is nothing to kill yet:
		// ask again until there is, or the runtime exits. If neither
		// happens, WaitDelay kills the runtime and the deferred delete
		// removes whatever it left behind.
		go func() {
			for r.command("kill", id, "KILL") != nil {
				select {
				case <-exited:
					return
				case <-time.After(killRetry):
				}
			}
		}()
		return nil
	}
	cmd.WaitDelay = killGrace
	started, werr := r.startAndWait(cmd)
	close(exited)
	if !started {
		return fmt.Errorf("starting %s: %w", filepath.Base(r.path), werr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("running %s: %w", id, err)
	}
	if werr == nil {
		return nil
	}
	var ee *osexec.ExitError
	if !errors.As(werr, &ee) || ee.ExitCode() < 0 {
		return fmt.Errorf("running %s: %w", filepath.Base(r.path), werr)
	}
	if msg := runtimeErrors(logPath); msg != "" {
		return fmt.Errorf("running container with %s: %s", filepath.Base(r.path), msg)
	}
	return &ExitError{Code: ee.ExitCode()}
}

// stateGone reports whether the runtime certainly holds no state of the
// container id: its state dir under the runtime's default root (runc's
// /run/runc, crun's /run/crun, as root) does not exist. Anything else
// (another runtime, not root, a stat error) is false, and Run deletes.
func (r ociRuntime) stateGone(id string) bool {
	root := map[string]string{"runc": "/run/runc", "crun": "/run/crun"}[filepath.Base(r.path)]
	if root == "" || os.Geteuid() != 0 {
		return false
	}
	if _, err := os.Stat(root); err != nil {
		return false // a root elsewhere (a packaging choice): ask the runtime
	}
	_, err := os.Lstat(filepath.Join(root, id))
	return errors.Is(err, fs.ErrNotExist)
}

// delete removes the container, whatever state it is in. Both runc and crun
// succeed when the container does not exist.
func (r ociRuntime) delete(id string) error {
	if err := r.command("delete", "--force", id); err != nil {
		return fmt.Errorf("deleting container %s: %w", id, err)
	}
	return nil
}

// command runs a short runtime command, bounded in time, whatever the
// caller's context says: it is used for clean-up.
func (r ociRuntime) command(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := osexec.CommandContext(ctx, r.path, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := r.start(cmd); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// startAndWait starts the runtime so that it dies with this process
// (PR_SET_PDEATHSIG): if kiln is killed, the runtime stops where it is
// instead of going on to start a container no one will wait for. The
// container itself, once started, is not the runtime's to kill: Reap is
// how it goes. started is false if the runtime could not be started (err
// says why); otherwise err is Wait's.
//
// The death signal is sent when the thread that forked the runtime exits,
// not the process, so the fork happens on a locked thread that stays
// locked until the runtime has exited.
func (r ociRuntime) startAndWait(cmd *osexec.Cmd) (started bool, err error) {
	type result struct {
		started bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if r.hideUnified {
			// The thread's mount namespace is changed for good: never
			// unlocked, it is discarded when this goroutine ends.
			if err := hideUnifiedHere(); err != nil {
				done <- result{false, err}
				return
			}
		} else {
			defer runtime.UnlockOSThread()
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			done <- result{false, err}
			return
		}
		done <- result{true, cmd.Wait()}
	}()
	res := <-done
	return res.started, res.err
}

func (r ociRuntime) start(cmd *osexec.Cmd) error {
	if r.hideUnified {
		return startWithoutUnified(cmd)
	}
	return cmd.Start()
}

// runtimeErrors returns the error messages the runtime logged (runc and crun
// both write JSON lines with "level" and "msg"), joined by "; ".
func runtimeErrors(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var e struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Level {
		case "error", "fatal", "panic":
			msgs = append(msgs, e.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}
