package solve

import "github.com/kiln-build/kiln/internal/source"

// NamedContext is a directory build context (--build-context NAME=DIR),
// read like the main context: by content digest, .dockerignore applied.
type NamedContext struct {
	// Tree is the opened directory; the caller closes it after the solve.
	Tree *source.Tree
	// Dir is the directory, for RUN --mount=type=bind,from=NAME.
	Dir string
}
