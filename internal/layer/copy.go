package layer

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Copy copies the tree srcDir into the existing directory dstDir, merging
// as Apply does, and keeps everything Apply restores, mtimes to the
// nanosecond, and hard links within the tree; dstDir takes the mode, owner
// and mtime of srcDir. Overlay whiteouts in srcDir are copied as plain char
// devices. The copy runs as a tar stream between two goroutines, so it has
// exactly the semantics of a layer round trip.
func Copy(ctx context.Context, dstDir, srcDir string) error {
	if err := pipeTree(ctx, dstDir, srcDir, false); err != nil {
		return fmt.Errorf("copying %s to %s: %w", srcDir, dstDir, err)
	}
	return nil
}

// ApplyUpper applies the overlayfs-format layer upperDir (whiteouts as
// char devices 0:0, opaque directories by xattr) onto the merged tree
// dstDir, as Apply with ApplyFlat would apply WriteUpper's tar of it, but
// keeping mtimes to the nanosecond. It flattens a chain of snapshots.
func ApplyUpper(ctx context.Context, dstDir, upperDir string) error {
	if err := pipeTree(ctx, dstDir, upperDir, true); err != nil {
		return fmt.Errorf("applying %s to %s: %w", upperDir, dstDir, err)
	}
	return nil
}

func pipeTree(ctx context.Context, dstDir, srcDir string, overlay bool) error {
	pr, pw := io.Pipe()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		tw := newTreeWriter(pw, TarOptions{})
		tw.nanos, tw.overlay = true, overlay
		var err error
		if !overlay {
			err = tw.writeRoot(srcDir)
		}
		if err == nil {
			err = tw.writeTree(ctx, srcDir, "")
		}
		if err == nil {
			err = tw.close()
		}
		pw.CloseWithError(err)
		return err
	})
	g.Go(func() error {
		err := Apply(ctx, pr, dstDir, ApplyFlat)
		pr.CloseWithError(err)
		return err
	})
	return g.Wait()
}

// writeRoot writes the "./" entry that carries the metadata of the tree's
// root directory.
func (w *treeWriter) writeRoot(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	hdr, err := w.header(dir, ".", &st)
	if err != nil {
		return err
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header for %s: %w", dir, err)
	}
	return nil
}
