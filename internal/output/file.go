package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	dir := filepath.Dir(dest)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", dest, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(&ctxWriter{ctx: ctx, w: f}); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if err := os.Rename(f.Name(), dest); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return nil
}

// ctxWriter stops a long write when ctx is cancelled.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
