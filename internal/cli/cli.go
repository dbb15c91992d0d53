package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/build"
	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/source"
	"github.com/kiln-build/kiln/internal/transport"
)

// Env is what the CLI reads from outside: arguments, streams and the
// environment. Tests pass their own.
type Env struct {
	// Args are the arguments after the program name.
	Args []string
	// Stdin is standard input (kiln login --password-stdin).
	Stdin io.Reader
	// Stdout receives machine output: the digest, a tar with dest=-.
	Stdout io.Writer
	// Stderr receives progress and messages for people.
	Stderr io.Writer
	// Getenv reads the environment: the only place kiln does.
	Getenv func(string) string
}

// Version and Commit are set at link time (-ldflags -X).
var (
	Version = "dev"
	Commit  = ""
)

// Run runs kiln with env and returns the process exit code.
func Run(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	stopProfile := startProfile(env.Getenv, env.Stderr)
	defer stopProfile()
	root := newRoot(env)
	root.SetArgs(env.Args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := exitCode(err)
	fmt.Fprintf(env.Stderr, "kiln: %v\n", err)
	return code
}

// usagef is an error in what the user typed (build.ErrUsage: exit code 2).
func usagef(format string, a ...any) error { return build.UsageError(fmt.Errorf(format, a...)) }

// exitCode decides, in one place, the exit code of an error (the table is
// in doc.go).
func exitCode(err error) int {
	var de *dockerfile.Error
	var ie *source.InputError
	var te *transport.Error
	var ne net.Error
	switch {
	case errors.As(err, &te), errors.As(err, &ne), errors.Is(err, transport.ErrTooManyRedirects):
		// A registry, a cache service or the network failed, or hit one of
		// transport's bounds (resolving FROM included, which arrives
		// inside a Dockerfile error): the build failed, the input was not
		// wrong.
		return 1
	case errors.As(err, &de), errors.As(err, &ie), errors.Is(err, build.ErrUsage):
		return 2
	default:
		return 1
	}
}

type globals struct {
	debug bool
}

func newRoot(env Env) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Build container images from Dockerfiles, with a build cache CI can keep",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "print diagnostics to stderr")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return build.UsageError(err) })
	root.AddCommand(
		newBuildCmd(env, g),
		newLoginCmd(env, g),
		newPruneCmd(env, g),
		newCacheServerCmd(env, g),
		newBinfmtCmd(env),
		newVersionCmd(env),
	)
	return root
}

func (g *globals) logger(w io.Writer) *slog.Logger {
	if !g.debug {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// stateDir is $KILN_STATE, else /var/lib/kiln for root, else
// $XDG_DATA_HOME/kiln (default ~/.local/share/kiln).
func stateDir(getenv func(string) string) string {
	if d := getenv("KILN_STATE"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/kiln"
	}
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kiln")
	}
	return filepath.Join(getenv("HOME"), ".local", "share", "kiln")
}

// dockerConfigDir is $DOCKER_CONFIG, else ~/.docker.
func dockerConfigDir(getenv func(string) string) string {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	return filepath.Join(getenv("HOME"), ".docker")
}

// splitKV splits "K=V"; a missing "=" is an error naming the flag.
func splitKV(flag, s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", "", usagef("--%s %q: want KEY=VALUE", flag, s)
	}
	return k, v, nil
}

func newVersionCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version and commit",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			commit := Commit
			if commit == "" {
				commit = "unknown"
			}
			fmt.Fprintf(env.Stdout, "kiln %s (commit %s)\n", Version, commit)
			return nil
		},
	}
}
