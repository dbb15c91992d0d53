package output

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/stream"
)

// writeFileAtomic creates dest through a temporary file in its directory,
// renamed into place only when write succeeded, so dest is never a partial
// tar. The file gets mode 0644: CreateTemp's 0600 would surprise a user
// who shares the tar, and a build output is not secret.
func writeFileAtomic(ctx context.Context, dest string, write func(io.Writer) error) (err error) {
	if dest == Stdout {
		return errors.New(`output: dest "-" is stdout: write it with WriteOCITar or WriteDockerTar`)
	}
	if dest == "" {
		return errors.New("output: empty dest")
	}
	err = atomicfile.WriteFunc(dest, 0o644, func(w io.Writer) error {
		return write(stream.Writer(ctx, w))
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return nil
}
