package solve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
)

// prepareRun resolves a RUN's mounts and computes its key.
func (s *Solver) prepareRun(ctx context.Context, step *plan.Step, cur *state, runs map[*plan.Stage]*stageRun) (*prepared, error) {
	r := step.Run
	network := r.Network
	if network == "" {
		network = s.opts.Network
	}
	if network == "" {
		network = exec.NetworkDefault
	}
	var cl cleanup
	ms, err := s.acquireMounts(ctx, r, runs, &cl)
	if err != nil {
		cl.run()
		return nil, err
	}
	in := runInput(r, cur.key, network, s.epoch(), ms)
	s.limitInputs(&in)
	in.Mkdirs = dirInputs(step.Mkdirs)
	key := cache.RunKey(in)
	p := &prepared{key: func(context.Context) (cache.Key, error) { return key, nil }, inputs: in.Inputs(), release: cl.run}
	p.exec = func(ctx context.Context, root string) error {
		for _, ls := range ms.lazy {
			src, err := ls.get(ctx)
			if err != nil {
				return err
			}
			ms.mounts[ls.index].Source = src
		}
		return s.run(ctx, step, root, network, append(append([]string(nil), r.Env...), ms.secretEnv...), ms.mounts)
	}
	return p, nil
}

// runInput is what decides a RUN's key (DESIGN.md §3): a pure function of
// the step, its parent's key, its network, SOURCE_DATE_EPOCH and what
// acquiring its mounts found (bind content digests, optional secrets not
// given). Secrets' values are never part of it.
func runInput(r *plan.Run, parent cache.Key, network string, epoch *int64, ms *runMounts) cache.RunInput {
	in := cache.RunInput{
		Parent: parent, Args: r.Args, Env: r.Env, WorkDir: r.WorkDir, User: r.User, Network: network,
		SourceDateEpoch: epoch,
	}
	for _, f := range r.Files {
		in.Files = append(in.Files, cache.FileInput{Name: f.Name, Data: f.Data})
	}
	for i, m := range r.Mounts {
		if ms.absent[i] {
			continue
		}
		in.Mounts = append(in.Mounts, cache.MountInput{
			Type: string(m.Type), Target: m.Target, Source: m.Source, ID: m.ID, ReadOnly: m.ReadOnly,
			Mode: m.Mode, UID: m.UID, GID: m.GID, Env: m.Env, Size: m.Size, Content: ms.content[i],
		})
	}
	return in
}

// limitInputs adds the build's --add-host, --shm-size and --ulimit to a
// RUN's key input; unset, they leave it as it was before they existed.
func (s *Solver) limitInputs(in *cache.RunInput) {
	for _, h := range s.opts.Hosts {
		in.Hosts = append(in.Hosts, h.String())
	}
	in.ShmSize = s.opts.ShmSize
	for _, u := range s.opts.Ulimits {
		in.Ulimits = append(in.Ulimits, u.String())
	}
}

// cleanup is a stack of release functions, run last first.
type cleanup []func()

func (c *cleanup) add(f func()) { *c = append(*c, f) }

func (c *cleanup) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// runMounts are a RUN's mounts, acquired.
type runMounts struct {
	mounts []exec.Mount
	// lazy are bind sources made only if the step runs.
	lazy []lazySource
	// content is the content digest of each bind mount, by mount index.
	content map[int]string
	// absent are the optional secrets not given, by mount index: no mount.
	absent map[int]bool
	// secretEnv are the NAME=value pairs of secrets exposed as env.
	secretEnv []string
}

// acquireMounts resolves every mount of r and takes what it needs (bind
// sources hashed, cache directories made and locked, secret files
// written, heredoc scripts staged), adding each release to cl.
func (s *Solver) acquireMounts(ctx context.Context, r *plan.Run, runs map[*plan.Stage]*stageRun, cl *cleanup) (*runMounts, error) {
	ms := &runMounts{content: map[int]string{}, absent: map[int]bool{}}
	locked := map[string]bool{}
	for i, m := range r.Mounts {
		switch m.Type {
		case plan.MountBind:
			src, digest, rel, err := s.bindSource(ctx, m, runs)
			if err != nil {
				return nil, err
			}
			cl.add(rel)
			ms.content[i] = digest
			ms.lazy = append(ms.lazy, lazySource{index: len(ms.mounts), get: src})
			ms.mounts = append(ms.mounts, exec.Mount{Type: "bind", Target: m.Target, ReadOnly: m.ReadOnly})
		case plan.MountCache:
			dir, err := s.acquireCache(m, locked, cl)
			if err != nil {
				return nil, err
			}
			ms.mounts = append(ms.mounts, exec.Mount{Type: "bind", Source: dir, Target: m.Target, ReadOnly: m.ReadOnly})
		case plan.MountTmpfs:
			ms.mounts = append(ms.mounts, exec.Mount{Type: "tmpfs", Target: m.Target, Size: m.Size})
		case plan.MountSecret:
			given, err := s.acquireSecret(m, ms, cl)
			if err != nil {
				return nil, err
			}
			ms.absent[i] = !given
		default:
			return nil, fmt.Errorf("unsupported mount type %q", m.Type)
		}
	}
	if err := s.lockMounts(ctx, locked, cl); err != nil {
		return nil, err
	}
	if len(r.Files) > 0 {
		dir, rel, err := s.pipeFiles(r.Files)
		if err != nil {
			return nil, err
		}
		cl.add(rel)
		ms.mounts = append(ms.mounts, exec.Mount{Type: "bind", Source: dir, Target: "/dev/pipes", ReadOnly: true})
	}
	return ms, nil
}

// acquireCache makes a cache mount's directory. A locked mount's name is
// added to locked (taken later, in order); a private one is taken now, or
// replaced by a directory of the step's own.
func (s *Solver) acquireCache(m plan.Mount, locked map[string]bool, cl *cleanup) (string, error) {
	dir, name, err := s.cacheMount(m)
	if err != nil {
		return "", err
	}
	switch m.Sharing {
	case "locked":
		locked[name] = true
	case "private":
		var rel func()
		if dir, rel, err = s.privateMount(dir, name); err != nil {
			return "", err
		}
		cl.add(rel)
	}
	return dir, nil
}

// acquireSecret exposes a secret as an env variable, a file, or both, and
// reports whether it was given: a missing optional secret is no mount at
// all.
func (s *Solver) acquireSecret(m plan.Mount, ms *runMounts, cl *cleanup) (bool, error) {
	val, ok := s.opts.Secrets[m.ID]
	if !ok {
		if m.Required {
			return false, fmt.Errorf("secret %q is required but was not given (use --secret id=%s,src=PATH)", m.ID, m.ID)
		}
		return false, nil
	}
	if m.Env != "" {
		ms.secretEnv = append(ms.secretEnv, m.Env+"="+string(val))
		if m.Target == "" {
			return true, nil
		}
	}
	path, rel, err := s.secretFile(m, val)
	if err != nil {
		return false, err
	}
	cl.add(rel)
	ms.mounts = append(ms.mounts, exec.Mount{Type: "bind", Source: path, Target: m.Target, ReadOnly: true})
	return true, nil
}

// lockMounts takes the locks of locked cache mounts in one sorted order,
// so two steps that lock the same mounts can never wait for each other in
// a circle.
func (s *Solver) lockMounts(ctx context.Context, locked map[string]bool, cl *cleanup) error {
	names := make([]string, 0, len(locked))
	for n := range locked {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		unlock, err := s.opts.Store.Lock(ctx, "mount-"+n)
		if err != nil {
			return err
		}
		cl.add(unlock)
	}
	return nil
}

// lazySource is the source of mounts[index], made when the step runs.
type lazySource struct {
	index int
	get   func(ctx context.Context) (string, error)
}

// run executes argv in root and streams its output as progress events.
func (s *Solver) run(ctx context.Context, step *plan.Step, root, network string, env []string, mounts []exec.Mount) error {
	r := step.Run
	bundle, err := s.opts.Store.BundleDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(bundle)
	var netns *exec.NetNS
	if network == exec.NetworkDefault {
		if netns, err = s.netns.get(ctx); err != nil {
			return &StepError{Step: step, Err: err}
		}
	}
	out := newLineWriter(s, step)
	err = exec.Run(ctx, exec.Spec{
		Runtime:   s.opts.Runtime,
		Root:      root,
		Args:      r.Args,
		Env:       env,
		Cwd:       r.WorkDir,
		User:      r.User,
		Network:   network,
		NetNS:     netns,
		Mounts:    mounts,
		Hosts:     s.opts.Hosts,
		ShmSize:   s.opts.ShmSize,
		Ulimits:   s.opts.Ulimits,
		Stdout:    out.stream("stdout"),
		Stderr:    out.stream("stderr"),
		Filters:   &s.filters,
		BundleDir: bundle,
	})
	out.flush()
	if err != nil {
		se := &StepError{Step: step, Err: err, Tail: out.tail()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			se.ExitCode = ee.Code
			se.Err = fmt.Errorf("exit code %d", ee.Code)
		}
		return se
	}
	return nil
}

// bindSource returns the content digest of what a RUN --mount=type=bind
// binds (the key needs it now) and a function that gives the directory to
// bind, called only if the step runs. From the context, and for a writable
// bind, that is a private copy of exactly what the digest covers
// (.dockerignore applied; writes are discarded with the copy); from a stage
// or image it is the read-only view itself.
func (s *Solver) bindSource(ctx context.Context, m plan.Mount, runs map[*plan.Stage]*stageRun) (func(context.Context) (string, error), string, func(), error) {
	srcPath := m.Source
	if srcPath == "" {
		srcPath = "."
	}
	tree, root, release, err := s.sourceTree(ctx, m.FromStage, m.FromImage, m.FromContext, runs)
	if err != nil {
		return nil, "", nil, err
	}
	matches, err := tree.SelectAs("RUN --mount=type=bind source", []string{srcPath})
	if err != nil {
		release()
		return nil, "", nil, err
	}
	digest, listing, err := tree.DigestListing(ctx, matches)
	if err != nil {
		release()
		return nil, "", nil, err
	}
	fromContext := m.FromStage == nil && m.FromImage == nil
	if !fromContext && m.ReadOnly {
		p := filepath.Join(root, filepath.FromSlash(matches[0].Path))
		return func(context.Context) (string, error) { return p, nil }, digest, release, nil
	}
	var dir string
	cleanup := func() {
		if dir != "" {
			os.RemoveAll(dir)
		}
		release()
	}
	get := func(ctx context.Context) (string, error) {
		var err error
		if dir, err = s.opts.Store.TempDir("m"); err != nil {
			return "", err
		}
		// The context's owners are not part of its digest: its copy is
		// root's, as COPY makes it. A stage keeps its own owners.
		uid, gid := 0, 0
		if !fromContext {
			uid, gid = -1, -1
		}
		if err := tree.CopyInto(ctx, matches, dir, source.CopyRequest{Dest: "/", UID: uid, GID: gid}); err != nil {
			return "", fmt.Errorf("staging bind mount %s: %w", srcPath, err)
		}
		if fromContext {
			if err := sameSources(ctx, tree, matches, digest, listing); err != nil {
				return "", fmt.Errorf("staging bind mount %s: %w", srcPath, err)
			}
		}
		if len(matches) == 1 && !matches[0].Dir {
			return filepath.Join(dir, matches[0].Name), nil
		}
		return dir, nil
	}
	return get, digest, cleanup, nil
}

// cacheMount returns the persistent directory behind a cache mount and
// its lock name. Cache mounts live in the state dir and survive builds;
// their contents are never part of a key.
func (s *Solver) cacheMount(m plan.Mount) (string, string, error) {
	id := m.ID
	if id == "" {
		id = m.Target
	}
	sum := sha256.Sum256([]byte(id))
	name := hex.EncodeToString(sum[:16])
	dir := s.opts.Store.CacheMountDir(id)
	if err := makeMountDir(dir, m); err != nil {
		return "", "", fmt.Errorf("creating cache mount %s: %w", id, err)
	}
	return dir, name, nil
}

// makeMountDir creates a cache mount's directory, when missing, with the
// mount's mode (0755 by default) and owner, as BuildKit does; an existing
// one keeps what the steps that used it left.
func makeMountDir(dir string, m plan.Mount) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	mode := os.FileMode(0o755)
	if m.Mode >= 0 {
		mode = os.FileMode(m.Mode) & os.ModePerm
	}
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	if m.UID > 0 || m.GID > 0 {
		return os.Chown(dir, int(max(m.UID, 0)), int(max(m.GID, 0)))
	}
	return nil
}

// privateMount serves sharing=private: the step has the cache directory to
// itself, or, while another step holds it, a fresh empty directory of its
// own that is dropped afterwards (BuildKit's "a new mount if there are
// several writers").
func (s *Solver) privateMount(dir, name string) (string, func(), error) {
	unlock, ok, err := s.opts.Store.TryLock("mount-" + name)
	if err != nil {
		return "", nil, err
	}
	if ok {
		return dir, unlock, nil
	}
	own, err := s.opts.Store.TempDir("m")
	if err != nil {
		return "", nil, err
	}
	return own, func() { os.RemoveAll(own) }, nil
}

// pipeFiles writes the heredoc scripts of a RUN (those starting with #!)
// to a directory bound at /dev/pipes for the run. Their text is in the key
// (RunInput.Files).
func (s *Solver) pipeFiles(files []plan.InlineFile) (string, func(), error) {
	dir, err := s.opts.Store.TempDir("p")
	if err != nil {
		return "", nil, err
	}
	for _, f := range files {
		name := filepath.Base(filepath.Clean("/" + f.Name))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(f.Data), 0o755); err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("writing heredoc %s: %w", f.Name, err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// secretFile writes a secret to a private file for a read-only bind.
func (s *Solver) secretFile(m plan.Mount, val []byte) (string, func(), error) {
	dir, err := s.opts.Store.SecretDir()
	if err != nil {
		return "", nil, err
	}
	mode := os.FileMode(0o400)
	if m.Mode >= 0 {
		mode = os.FileMode(m.Mode)
	}
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, val, mode); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("writing secret %s: %w", m.ID, err)
	}
	if m.UID > 0 || m.GID > 0 {
		_ = os.Chown(path, int(max(m.UID, 0)), int(max(m.GID, 0)))
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// sourceTree opens the tree a COPY or bind mount reads: a stage's result,
// an image, a named directory context, or the build context. root is its directory on disk.
func (s *Solver) sourceTree(ctx context.Context, fromStage *plan.Stage, fromImage *plan.Image, fromContext string, runs map[*plan.Stage]*stageRun) (*source.Tree, string, func(), error) {
	var st *state
	var err error
	switch {
	case fromContext != "":
		nc, ok := s.opts.Contexts[fromContext]
		if !ok || nc.Tree == nil {
			return nil, "", nil, fmt.Errorf("build context %q was not given", fromContext)
		}
		return nc.Tree, nc.Dir, func() {}, nil
	case fromStage != nil:
		st, err = waitStage(ctx, runs, fromStage)
	case fromImage != nil:
		st, err = s.imageState(ctx, fromImage)
	default:
		return s.opts.Context, s.opts.ContextDir, func() {}, nil
	}
	if err != nil {
		return nil, "", nil, err
	}
	if err := s.unpack(ctx, st); err != nil {
		return nil, "", nil, err
	}
	root, rel, err := s.opts.Snapshotter.View(ctx, st.chain())
	if err != nil {
		return nil, "", nil, fmt.Errorf("mounting source: %w", err)
	}
	tree, err := source.Open(root, source.Options{})
	if err != nil {
		rel()
		return nil, "", nil, err
	}
	return tree, root, func() { tree.Close(); rel() }, nil
}
