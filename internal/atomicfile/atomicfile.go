// Package atomicfile writes files so that readers see the old content or
// the new, never a part: a temporary file in the same directory, synced,
// then renamed over the target. A failed write leaves the target as it was
// and removes the temporary file.
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write replaces path with data, with permissions perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}

// WriteUnsynced is Write without the sync, for a file that is a cache of
// what can be made again (a step's record): a process killed at any point
// still leaves the old content or the new, but after a power loss the
// file may be empty or missing, which its readers must take as absent.
func WriteUnsynced(path string, data []byte, perm os.FileMode) error {
	return writeFunc(path, perm, false, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// syncFile syncs f; tests count the calls.
var syncFile = (*os.File).Sync

// WriteFunc replaces path with what write writes, with permissions perm.
// If write fails, path is untouched and its error is returned as is.
func WriteFunc(path string, perm os.FileMode, write func(io.Writer) error) error {
	return writeFunc(path, perm, true, write)
}

func writeFunc(path string, perm os.FileMode, sync bool, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if sync {
		if err := syncFile(f); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
