package exec

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// crun compiles a step's seccomp profile with libseccomp each time it
// starts a container: for Docker's default profile and its three x86
// architectures that is two thirds of crun's start (36 ms of crun run's
// 48 on a quiet 2-core machine). crun also takes the filter compiled, as
// the annotation seccompBPFAnnotation (base64 of the BPF program it loads
// with seccomp(2)), and then compiles nothing: 12 ms. runc has no such
// input and compiles every time.
//
// Filters gets the program from crun itself: once per profile, a scratch
// container is created (never started) with the profile, and the program
// crun wrote to its state dir (seccomp.bpf) is read before the container
// is deleted (about what one step's own compile takes; Prepare starts it
// before the first RUN). The steps with the same profile and the same
// crun carry it in the annotation, beside the profile itself: a crun that
// ignored the annotation would still apply the profile.
const seccompBPFAnnotation = "run.oci.seccomp_bpf_data"

// crunStateRoot is crun's default state root as root.
const crunStateRoot = "/run/crun"

// filterProbe is the scratch container's process, created, never run.
const filterProbe = "kiln-seccomp-probe"

// filterTimeout bounds the scratch container's create and delete.
const filterTimeout = 30 * time.Second

// Filters is a build's seccomp programs as crun compiled them, for the
// build's crun steps to reuse (see Spec.Filters). The zero value is not
// usable: TempDir is required. A Filters is safe for concurrent steps;
// Close it once no step runs.
type Filters struct {
	// TempDir makes a new empty directory for a scratch container's
	// bundle; its container record (as Run writes one) lets a sweep reap
	// the container if kiln is killed.
	TempDir func() (string, error)

	mu    sync.Mutex
	byKey map[filterKey]*filter
	wg    sync.WaitGroup
}

type filterKey struct {
	runtime string
	profile [sha256.Size]byte
}

type filter struct {
	done chan struct{}
	bpf  []byte // nil when crun gave none
}

// Prepare starts compiling the program of the profile every step gets by
// default, for the runtime named runtime (as in Spec.Runtime), so that a
// build's first crun step finds it ready: call it when the build has RUN
// steps. Other runtimes need nothing.
func (f *Filters) Prepare(runtime string) {
	rt, err := lookRuntime(runtime)
	if err != nil || !f.usable(rt) {
		return
	}
	spec := Spec{Root: "/", Args: []string{filterProbe}, BundleDir: "/", Network: NetworkNone}
	if validate(&spec) != nil {
		return
	}
	cfg := configFor(configInput{spec: spec, nofile: maxNofile, cgroupNS: hostHasCgroupNS()})
	if applySeccomp(cfg) != nil {
		return
	}
	f.entry(rt, cfg.Linux.Seccomp)
}

// program returns the compiled program of profile for the crun at rt, or
// nil when there is none (another runtime, or crun gave none): the first
// step with a profile starts compiling it, and every step waits for it
// (as long as its own compile would take).
func (f *Filters) program(ctx context.Context, rt string, profile *specs.LinuxSeccomp) []byte {
	if !f.usable(rt) || profile == nil {
		return nil
	}
	e := f.entry(rt, profile)
	if e == nil {
		return nil
	}
	select {
	case <-e.done:
		return e.bpf
	case <-ctx.Done():
		return nil
	}
}

// usable reports whether f can serve crun at rt: crun keeps its state
// under crunStateRoot when run as root.
func (f *Filters) usable(rt string) bool {
	return f != nil && filepath.Base(rt) == "crun" && os.Geteuid() == 0
}

// entry returns profile's entry for rt, starting its compile if it is new.
func (f *Filters) entry(rt string, profile *specs.LinuxSeccomp) *filter {
	b, err := json.Marshal(profile)
	if err != nil {
		return nil
	}
	key := filterKey{runtime: rt, profile: sha256.Sum256(b)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.byKey[key]; ok {
		return e
	}
	if f.byKey == nil {
		f.byKey = map[filterKey]*filter{}
	}
	e := &filter{done: make(chan struct{})}
	f.byKey[key] = e
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(e.done)
		e.bpf, _ = f.compile(rt, profile) // no program: every step compiles its own
	}()
	return e
}

// Close waits for the programs being compiled.
func (f *Filters) Close() {
	if f != nil {
		f.wg.Wait()
	}
}

// compile creates a scratch container with profile and returns the
// program crun wrote for it.
func (f *Filters) compile(rt string, profile *specs.LinuxSeccomp) ([]byte, error) {
	dir, err := f.TempDir()
	if err != nil {
		return nil, err
	}
	// keep: the container could not be deleted, and its record in dir is
	// what lets the state dir's sweep (Reap) find and delete it.
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	// crun checks that the process's binary is there; it never runs.
	if err := os.WriteFile(filepath.Join(root, filterProbe), nil, 0o755); err != nil {
		return nil, err
	}
	cfg := &specs.Spec{
		Version: specVersion,
		Process: &specs.Process{Args: []string{"/" + filterProbe}, Cwd: "/"},
		Root:    &specs.Root{Path: root},
		// crun wants a mounts block, and JSON drops an empty one.
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}},
			Seccomp:    profile,
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	r := ociRuntime{path: rt, hideUnified: crunNeedsHiddenUnified(rt)}
	if err := writeRecord(dir, containerRecord{Runtime: rt, ID: id}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), filterTimeout)
	defer cancel()
	// The container's init inherits create's stdio and waits on the exec
	// fifo until deleted: no pipes, or Wait would wait for it.
	cmd := osexec.CommandContext(ctx, rt, "--log", filepath.Join(dir, "runtime.log"), "--log-format", "json",
		"create", "--bundle", dir, id)
	if err := r.start(cmd); err != nil {
		return nil, fmt.Errorf("creating seccomp scratch container: %w", err)
	}
	werr := cmd.Wait()
	var bpf []byte
	if werr == nil {
		bpf, err = os.ReadFile(filepath.Join(crunStateRoot, id, "seccomp.bpf"))
	}
	if derr := r.delete(id); derr != nil {
		keep = true
		return nil, derr
	}
	_ = os.Remove(filepath.Join(dir, recordFile))
	switch {
	case werr != nil:
		return nil, fmt.Errorf("creating seccomp scratch container: %w: %s", werr, runtimeErrors(filepath.Join(dir, "runtime.log")))
	case err != nil:
		return nil, err
	case len(bpf) == 0 || len(bpf)%8 != 0: // struct sock_filter is 8 bytes
		return nil, errors.New("exec: crun wrote no seccomp program")
	}
	return bpf, nil
}

// withProgram sets cfg's annotation to the compiled program.
func withProgram(cfg *specs.Spec, bpf []byte) {
	if cfg.Annotations == nil {
		cfg.Annotations = map[string]string{}
	}
	cfg.Annotations[seccompBPFAnnotation] = base64.StdEncoding.EncodeToString(bpf)
}
