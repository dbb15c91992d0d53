package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/build"
	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/backends"
	"github.com/kiln-build/kiln/internal/exec"
	"github.com/kiln-build/kiln/internal/kv"
	"github.com/kiln-build/kiln/internal/output"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/remote"
)

type buildFlags struct {
	file         string
	tags         []string
	push         bool
	outputs      []string
	target       string
	buildArgs    []string
	labels       []string
	annotations  []string
	contexts     []string
	cacheFrom    []string
	cacheTo      []string
	noCache      bool
	noCacheStage []string
	addHosts     []string
	shmSize      string
	ulimits      []string
	progress     string
	metadataFile string
	network      string
	secrets      []string
	runtime      string
	insecure     []string
	registryCA   string
	forceCopy    bool
	platforms    []string
}

func newBuildCmd(env Env, g *globals) *cobra.Command {
	f := &buildFlags{}
	c := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build an image from a Dockerfile",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("build needs exactly one CONTEXT directory (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runBuild(c.Context(), env, g, f, args[0])
		},
	}
	fl := c.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "Dockerfile path (default CONTEXT/Dockerfile)")
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "image name REF; repeatable; with --push each is pushed")
	fl.BoolVar(&f.push, "push", false, "push the image to the registry of every tag")
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, "type=registry | type=oci,dest=F.tar | type=docker,dest=F.tar | type=local,dest=DIR (repeatable)")
	fl.StringVar(&f.target, "target", "", "build only up to this stage")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "build argument K=V (repeatable)")
	fl.StringArrayVar(&f.labels, "label", nil, "image label K=V (repeatable)")
	fl.StringArrayVar(&f.annotations, "annotation", nil, "image manifest annotation K=V or manifest:K=V (repeatable)")
	fl.StringArrayVar(&f.contexts, "build-context", nil, "named context NAME=DIR or NAME=docker-image://REF for FROM/COPY --from=NAME (repeatable)")
	fl.StringArrayVar(&f.cacheFrom, "cache-from", nil, "import build cache: type=local,src=DIR | type=registry,ref=REF | … (repeatable)")
	fl.StringArrayVar(&f.cacheTo, "cache-to", nil, "export build cache: type=local,dest=DIR | type=registry,ref=REF | type=inline | … (repeatable)")
	fl.BoolVar(&f.noCache, "no-cache", false, "ignore every cache (results are still recorded and exported)")
	fl.StringArrayVar(&f.noCacheStage, "no-cache-filter", nil, "ignore every cache for the steps of these stages, by AS name (repeatable or comma list)")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "extra /etc/hosts entry HOST:IP of RUN steps (repeatable)")
	fl.StringVar(&f.shmSize, "shm-size", "", "size of /dev/shm of RUN steps, e.g. 64m, 1g (default 64m)")
	fl.StringArrayVar(&f.ulimits, "ulimit", nil, "resource limit NAME=SOFT[:HARD] of RUN steps, e.g. nofile=1024:2048; -1 is unlimited (repeatable)")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto | tty | plain | json")
	fl.StringVar(&f.metadataFile, "metadata-file", "", "write build metadata (digests, name, cache summary) as JSON to this file")
	fl.StringVar(&f.network, "network", "default", "network for RUN steps: default (the build's own namespace, outbound only, through slirp4netns) | host | none")
	fl.StringArrayVar(&f.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR (repeatable)")
	fl.StringVar(&f.runtime, "runtime", "runc", "OCI runtime for RUN steps (runc, crun)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "HOST:PORT of a registry reached over plain HTTP (loopback needs no flag)")
	fl.StringVar(&f.registryCA, "registry-ca", "", "PEM file of an extra CA for registries with private certificates")
	fl.BoolVar(&f.forceCopy, "copy-snapshots", false, "use the copying snapshotter even where overlayfs works")
	fl.StringArrayVar(&f.platforms, "platform", nil, "target platforms, comma-separated: linux/amd64,linux/arm64 (default the host's; foreign RUN steps need QEMU, see kiln binfmt)")
	return c
}

func runBuild(ctx context.Context, env Env, g *globals, f *buildFlags, contextDir string) error {
	opts, err := buildOptions(env, g, f, contextDir)
	if err != nil {
		return err
	}
	sink, closeSink, err := newSink(f.progress, env)
	if err != nil {
		return err
	}
	opts.Progress = sink
	res, err := build.Run(ctx, opts)
	closeSink()
	if err != nil {
		// A failed build's summary goes to the log group too; the error
		// line, printed after it, stays the last.
		if res != nil && logGroup(env, f.progress) {
			_ = progress.WriteLogGroup(env.Stderr, res.Summary)
		}
		return err
	}
	if logGroup(env, f.progress) {
		_ = progress.WriteLogGroup(env.Stderr, res.Summary) // stderr is best effort, as progress is
	}
	for _, o := range opts.Outputs {
		if o.Dest == output.Stdout {
			return nil // stdout holds the tar; the digest is in the summary
		}
	}
	fmt.Fprintln(env.Stdout, res.Digest.String())
	return nil
}

// buildOptions maps the flags and the environment to build.Options: every
// value checked, every cache spec parsed, the registry client made.
func buildOptions(env Env, g *globals, f *buildFlags, contextDir string) (build.Options, error) {
	opts := build.Options{
		ContextDir:   contextDir,
		Dockerfile:   f.file,
		Tags:         f.tags,
		Push:         f.push,
		Target:       f.target,
		NoCache:      f.noCache,
		MetadataFile: f.metadataFile,
		Stdout:       env.Stdout,
		Runtime:      f.runtime,
		StateDir:     stateDir(env.Getenv),
		ForceCopy:    f.forceCopy,
		Logger:       g.logger(env.Stderr),
	}
	var err error
	fail := func(err error) (build.Options, error) { return build.Options{}, err }
	if v := env.Getenv("KILN_STATE_MAX"); v != "" {
		if opts.StateMax, err = parseSize(v); err != nil {
			return fail(usagef("KILN_STATE_MAX=%q: %v", v, err))
		}
	}
	if opts.Platforms, err = parsePlatforms(f.platforms); err != nil {
		return fail(err)
	}
	opts.BinfmtDir = env.Getenv("KILN_BINFMT_DIR")
	ann, err := parseAnnotations(f.annotations, dedupePlatforms(opts.Platforms))
	if err != nil {
		return fail(err)
	}
	opts.Annotations, opts.PlatformAnnotations = ann.manifest, ann.platform
	opts.IndexAnnotations, opts.DescriptorAnnotations = ann.index, ann.descriptor
	switch f.network {
	case "default", "host", "none":
		opts.Network = f.network
	default:
		return fail(usagef("--network %q: want default, host or none", f.network))
	}
	if err := runLimits(&opts, f); err != nil {
		return fail(err)
	}
	if opts.BuildArgs, err = kvMap("build-arg", f.buildArgs, env.Getenv); err != nil {
		return fail(err)
	}
	if opts.Labels, err = kvMap("label", f.labels, nil); err != nil {
		return fail(err)
	}

	if opts.Contexts, err = buildContexts(f.contexts); err != nil {
		return fail(err)
	}
	for _, o := range f.outputs {
		spec, err := output.ParseSpec(o)
		if err != nil {
			return fail(usagef("--output %q: %v", o, err))
		}
		opts.Outputs = append(opts.Outputs, spec)
	}
	// The registry client is made once every spec is parsed, since a cache
	// spec may add an insecure registry; backends ask for it only later.
	table := backends.Table(cache.Deps{Getenv: env.Getenv, Logger: opts.Logger,
		Remote: func() (*remote.Client, error) { return opts.Remote, nil }})
	if opts.CacheFrom, err = table.ParseImports(f.cacheFrom); err != nil {
		return fail(build.UsageError(err))
	}
	if opts.CacheTo, err = table.ParseExports(f.cacheTo); err != nil {
		return fail(build.UsageError(err))
	}
	insecure := append([]string(nil), f.insecure...)
	for _, i := range opts.CacheFrom {
		insecure = append(insecure, insecureHosts(i.Config)...)
	}
	for _, e := range opts.CacheTo {
		insecure = append(insecure, insecureHosts(e.Config)...)
	}
	opts.StepSummary = stepSummary(env.Getenv)
	if opts.Secrets, err = readSecrets(f.secrets, env.Getenv); err != nil {
		return fail(err)
	}
	if opts.SourceDateEpoch, err = sourceDateEpoch(env.Getenv, opts.BuildArgs); err != nil {
		return fail(err)
	}
	bounds, err := readHTTPBounds(env.Getenv)
	if err != nil {
		return fail(err)
	}
	opts.Remote, err = remote.New(remote.Options{
		Insecure:              insecure,
		CAFile:                f.registryCA,
		DockerConfigDir:       dockerConfigDir(env.Getenv),
		Logger:                opts.Logger,
		UserAgent:             "kiln/" + Version,
		ResponseHeaderTimeout: bounds.header,
		IdleTimeout:           bounds.idle,
	})
	if err != nil {
		return fail(usagef("%v", err))
	}
	return opts, nil
}

// runLimits parses --no-cache-filter, --add-host, --shm-size and --ulimit
// into opts.
func runLimits(opts *build.Options, f *buildFlags) error {
	for _, v := range f.noCacheStage {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				opts.NoCacheStages = append(opts.NoCacheStages, n)
			}
		}
	}
	for _, v := range f.addHosts {
		h, err := exec.ParseHost(v)
		if err != nil {
			return usagef("--add-host %q: %v", v, err)
		}
		opts.Hosts = append(opts.Hosts, h)
	}
	if f.shmSize != "" {
		n, err := parseSize(f.shmSize)
		if err != nil || n <= 0 {
			return usagef("--shm-size %q: want a size above 0 such as 64m or 1g", f.shmSize)
		}
		opts.ShmSize = n
	}
	for _, v := range f.ulimits {
		u, err := exec.ParseUlimit(v)
		if err != nil {
			return usagef("--ulimit %q: %v", v, err)
		}
		opts.Ulimits = append(opts.Ulimits, u)
	}
	return nil
}

// parsePlatforms parses --platform values: comma-separated lists,
// repeatable, each platform normalized (plan.ParsePlatform).
func parsePlatforms(vals []string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, v := range vals {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := plan.ParsePlatform(s)
			if err != nil {
				return nil, usagef("--platform: %v", err)
			}
			if p.OS != "linux" {
				return nil, usagef("--platform %s: kiln builds linux images only", s)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// dedupePlatforms drops the platforms named twice, as the build does.
func dedupePlatforms(ps []v1.Platform) []v1.Platform {
	var out []v1.Platform
	for _, p := range ps {
		if !slices.ContainsFunc(out, func(o v1.Platform) bool { return plan.SamePlatform(o, p) }) {
			out = append(out, p)
		}
	}
	return out
}

// newSink picks the progress renderer; auto is tty when stderr is a
// terminal, plain otherwise.
func newSink(mode string, env Env) (progress.Sink, func(), error) {
	isTTY := false
	if f, ok := env.Stderr.(*os.File); ok {
		isTTY = progress.IsTerminal(f)
	}
	switch mode {
	case "auto":
		if isTTY {
			t := progress.NewTTY(env.Stderr)
			return t, func() { t.Close() }, nil
		}
		return progress.NewPlain(env.Stderr), func() {}, nil
	case "tty":
		t := progress.NewTTY(env.Stderr)
		return t, func() { t.Close() }, nil
	case "plain":
		return progress.NewPlain(env.Stderr), func() {}, nil
	case "json":
		return progress.NewJSON(env.Stderr), func() {}, nil
	default:
		return nil, nil, usagef("--progress %q: want auto, tty, plain or json", mode)
	}
}

// kvMap parses repeated K=V flags. With getenv, a bare "K" takes its value
// from the environment, as docker build --build-arg does.
func kvMap(flag string, vals []string, getenv func(string) string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(vals))
	for _, s := range vals {
		if getenv != nil && !strings.Contains(s, "=") && s != "" {
			if v := getenv(s); v != "" {
				m[s] = v
			}
			continue
		}
		k, v, err := splitKV(flag, s)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// readSecrets reads --secret values: id=ID,src=PATH (or type=file) and
// id=ID,env=VAR (or type=env).
func readSecrets(specs []string, getenv func(string) string) (map[string][]byte, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string][]byte{}
	for _, spec := range specs {
		attrs, err := kv.Parse(spec)
		if err != nil {
			return nil, usagef("--secret %q: %v", redactSecretSpec(spec), err)
		}
		for k := range attrs {
			switch k {
			case "id", "src", "source", "env", "type":
			default:
				return nil, usagef("--secret: unknown key %q (want id, src, env, type)", k)
			}
		}
		id := attrs["id"]
		src := attrs["src"]
		if src == "" {
			src = attrs["source"]
		}
		envName := attrs["env"]
		if attrs["type"] == "env" && envName == "" {
			envName = src
			src = ""
		}
		if id == "" {
			id = envName
			if id == "" {
				id = src
			}
		}
		if id == "" {
			return nil, usagef("--secret: missing id")
		}
		switch {
		case src != "":
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, usagef("--secret id=%s: reading %s: %v", id, src, err)
			}
			out[id] = b
		case envName != "":
			v := getenv(envName)
			if v == "" {
				return nil, usagef("--secret id=%s: environment variable %s is not set", id, envName)
			}
			out[id] = []byte(v)
		default:
			return nil, usagef("--secret id=%s: give src=PATH or env=VAR", id)
		}
	}
	return out, nil
}

func redactSecretSpec(s string) string {
	if i := strings.Index(s, ","); i >= 0 {
		return s[:i] + ",…"
	}
	return s
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH from the build args or the
// environment.
func sourceDateEpoch(getenv func(string) string, args map[string]string) (*time.Time, error) {
	v := args["SOURCE_DATE_EPOCH"]
	if v == "" {
		v = getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, usagef("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// insecureHosts are the registries a cache spec asks to reach without TLS
// verification (cache.InsecureHoster), none for most specs.
func insecureHosts(config any) []string {
	if h, ok := config.(cache.InsecureHoster); ok {
		return h.InsecureHosts()
	}
	return nil
}

// stepSummary is the GitHub job summary file the build appends to:
// GITHUB_STEP_SUMMARY, unless DOCKER_BUILD_SUMMARY says false (as
// docker/build-push-action reads it).
func stepSummary(getenv func(string) string) string {
	if on, err := strconv.ParseBool(getenv("DOCKER_BUILD_SUMMARY")); err == nil && !on {
		return ""
	}
	return getenv("GITHUB_STEP_SUMMARY")
}

// logGroup reports whether the summary also goes to the log as a
// collapsible group: under GitHub Actions, unless the log is a JSON
// stream that a group line would break.
func logGroup(env Env, mode string) bool {
	return env.Getenv("GITHUB_ACTIONS") == "true" && mode != "json"
}
