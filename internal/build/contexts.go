package build

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/solve"
	"github.com/kiln-build/kiln/internal/source"
	"github.com/kiln-build/kiln/internal/store"
)

// BuildContext is one --build-context NAME=…: exactly one of Dir (a local
// directory) or Image (a registry reference, from docker-image://REF).
type BuildContext struct {
	// Dir is the directory whose files FROM NAME, COPY --from=NAME and
	// RUN --mount from=NAME read (its own .dockerignore applied).
	Dir string
	// Image is the registry image FROM NAME and COPY --from=NAME use.
	Image string
}

// plannedContexts is what the Dockerfile planner needs of opts.Contexts.
func plannedContexts(opts Options) map[string]dockerfile.NamedContext {
	if len(opts.Contexts) == 0 {
		return nil
	}
	out := make(map[string]dockerfile.NamedContext, len(opts.Contexts))
	for name, bc := range opts.Contexts {
		out[name] = dockerfile.NamedContext{Image: bc.Image}
	}
	return out
}

// openContexts opens every directory context with the state dir's
// checksum cache; close releases them.
func openContexts(opts Options, st *store.Store) (map[string]solve.NamedContext, func(), error) {
	out := map[string]solve.NamedContext{}
	closeAll := func() {
		for _, nc := range out {
			nc.Tree.Close()
		}
	}
	for name, bc := range opts.Contexts {
		if bc.Dir == "" {
			continue
		}
		dir, err := filepath.Abs(bc.Dir)
		if err != nil {
			closeAll()
			return nil, nil, usagef("build context %s=%s: %v", name, bc.Dir, err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			closeAll()
			return nil, nil, usagef("build context %s=%s is not a directory", name, bc.Dir)
		}
		ignore, err := source.ReadIgnore(filepath.Join(dir, ".dockerignore"))
		if err != nil {
			closeAll()
			return nil, nil, usagef("build context %s: reading .dockerignore: %v", name, err)
		}
		tree, err := source.Open(dir, source.Options{
			Ignore: ignore, CacheFile: st.ContextCacheFile(dir), IgnoreOwners: true,
			Exclude: []string{st.Root()},
		})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("opening build context %s: %w", name, err)
		}
		out[name] = solve.NamedContext{Tree: tree, Dir: dir}
	}
	return out, closeAll, nil
}
