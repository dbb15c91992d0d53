package solve

import (
	"context"
	"os"
	"sync"

	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/plan"
)

// lazyNetNS is the build's network namespace, made when the first RUN in
// the default network runs (a build whose RUNs are all cached or use
// host or none never starts slirp4netns) and then shared by every RUN,
// so it costs once per build, not once per step.
type lazyNetNS struct {
	opts exec.NetNSOptions
	// tempDir makes the namespace's directory when opts.Dir is empty:
	// one in the state dir, which a prune sweeps if kiln is killed.
	tempDir func(prefix string) (string, error)
	mu      sync.Mutex
	n       *exec.NetNS
	dir     string // made by tempDir, removed by close
}

// get returns the namespace, making it on first use. A failure is not
// kept: the next step tries again.
func (l *lazyNetNS) get(ctx context.Context) (*exec.NetNS, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n != nil {
		return l.n, nil
	}
	opts := l.opts
	if opts.Dir == "" && l.tempDir != nil {
		dir, err := l.tempDir("n")
		if err != nil {
			return nil, err
		}
		opts.Dir = dir
	}
	n, err := exec.NewNetNS(ctx, opts)
	if err != nil {
		if opts.Dir != l.opts.Dir {
			os.RemoveAll(opts.Dir)
		}
		return nil, err
	}
	l.n = n
	if opts.Dir != l.opts.Dir {
		l.dir = opts.Dir
	}
	return n, nil
}

// close releases the namespace, if one was made.
func (l *lazyNetNS) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		return nil
	}
	err := l.n.Close()
	l.n = nil
	if l.dir != "" {
		if rerr := os.RemoveAll(l.dir); rerr != nil && err == nil {
			err = rerr
		}
		l.dir = ""
	}
	return err
}

// Close releases what the Solver holds for RUN steps (the build's network
// namespace and its slirp4netns), and waits for the seccomp programs crun
// is compiling for them. Call it once no Solve runs; a Solve after Close
// makes a new namespace.
func (s *Solver) Close() error {
	s.filters.Close()
	return s.netns.close()
}

// prepareRuns starts, once, what the build's RUN steps need and can be
// made before the first of them runs (the seccomp program crun compiles,
// exec.Filters.Prepare; nothing for runc), when step, which is about to
// run, is followed in its stage (itself included) by a RUN: a step that
// runs makes every later step of its stage miss too, so that RUN will run.
// A build whose steps all hit prepares nothing. Close waits for it.
func (s *Solver) prepareRuns(step *plan.Step) {
	if step.Stage == nil {
		return
	}
	seen := false
	for _, st := range step.Stage.Steps {
		seen = seen || st == step
		if seen && st.Kind == plan.KindRun {
			s.prepared.Do(func() { s.filters.Prepare(s.opts.Runtime) })
			return
		}
	}
}
