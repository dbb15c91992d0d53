package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// recordFile is the file in a bundle directory that names the container
// Run made there, so that Reap can find it after the caller was killed.
const recordFile = "container.json"

// containerRecord is recordFile's content.
type containerRecord struct {
	// Runtime is the runtime binary's path.
	Runtime string `json:"runtime"`
	// ID is the container ID.
	ID string `json:"id"`
	// Cgroups are the directories where the runtime may make the
	// container's cgroups (cgroupDirs), as seen by the process that ran
	// it: the one that reaps may sit in other cgroups.
	Cgroups []string `json:"cgroups,omitempty"`
}

func writeRecord(bundle string, r containerRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding container record: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, recordFile), b, 0o600); err != nil {
		return fmt.Errorf("writing container record: %w", err)
	}
	return nil
}

// Reap stops and deletes the container a killed caller of Run left running
// from bundleDir (its Spec.BundleDir), whatever state it is in, so that
// its rootfs can be removed. A directory that is no bundle, or whose
// container is already gone, is no error. Reap must not be called on the
// bundle of a Run still in progress: it would kill that step.
//
// Reap also removes the container's empty cgroup directories, which a
// runtime killed while it created the container leaves behind with no
// state that "delete" would find (see cgroup.go). One that still has
// processes in it after a short wait is an error, and the record stays,
// so that a later Reap tries again.
//
// Nothing about the container is trusted but its ID: the runtime recorded
// must be an absolute path, the ID one Run makes, and the cgroup
// directories ones named after it under /sys/fs/cgroup (only ever removed
// with rmdir).
func Reap(bundleDir string) error {
	b, err := os.ReadFile(filepath.Join(bundleDir, recordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading container record: %w", err)
	}
	var r containerRecord
	if err := json.Unmarshal(b, &r); err != nil || !validID(r.ID) || !filepath.IsAbs(r.Runtime) ||
		slices.ContainsFunc(r.Cgroups, func(d string) bool { return !isCgroupDirOf(d, r.ID) }) {
		return fmt.Errorf("reading container record in %s: not a record Run wrote", bundleDir)
	}
	if _, err := os.Stat(r.Runtime); err != nil {
		return fmt.Errorf("reaping container %s: %w", r.ID, err)
	}
	rt := ociRuntime{path: r.Runtime, hideUnified: crunNeedsHiddenUnified(r.Runtime)}
	// kill first: delete --force of a running container kills it too, but
	// runc then waits for the whole process tree to exit.
	_ = rt.command("kill", r.ID, "KILL")
	if err := rt.delete(r.ID); err != nil {
		// A container whose init died of the kill may be gone by now
		// (crun removes its state): then there is nothing left to delete.
		if rt.command("state", r.ID) == nil {
			return err
		}
	}
	// A record from before cgroups were recorded has none: the candidates
	// as this process sees them cover a reaper in the same cgroups.
	dirs := append(r.Cgroups, cgroupDirs(r.ID)...)
	if err := removeCgroups(r.ID, dirs); err != nil {
		return fmt.Errorf("reaping container %s: %w", r.ID, err)
	}
	return os.Remove(filepath.Join(bundleDir, recordFile))
}

// validID reports whether id has the form newID gives.
func validID(id string) bool {
	const prefix = "kiln-"
	if len(id) != len(prefix)+20 || id[:len(prefix)] != prefix {
		return false
	}
	for _, c := range id[len(prefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
