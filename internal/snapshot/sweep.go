package snapshot

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sweep removes what a killed build left behind: mounts and working
// directories of Prepare and View (Root/a) and staging dirs (Root/tmp).
// It must only run while no build uses the snapshotter, which is when
// `kiln prune` holds the state dir exclusively.
func (s *Snapshotter) Sweep(ctx context.Context) error {
	for _, d := range []string{"a", "tmp"} {
		dir := filepath.Join(s.root, d)
		mounts, err := mountPointsUnder(dir)
		if err != nil {
			return err
		}
		for _, m := range mounts {
			if err := unmount(m); err != nil {
				return err
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("sweeping %s: %w", dir, err)
			}
		}
	}
	return nil
}

// SweepSession removes the working directory of a build that was killed
// (Options.Session of its Snapshotter) and unmounts its mounts. The caller
// must know that build is dead and its containers are gone (package store's
// session lock): a mount still in use is detached, not waited for.
func (s *Snapshotter) SweepSession(ctx context.Context, session string) error {
	if session == "" || strings.ContainsAny(session, `/\`) || strings.HasPrefix(session, ".") {
		return fmt.Errorf("sweeping snapshots: bad session name %q", session)
	}
	dir := filepath.Join(s.root, "a", session)
	mounts, err := mountPointsUnder(dir)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := unmount(m); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("sweeping %s: %w", dir, err)
	}
	return nil
}

// mountPointsUnder lists the mount points below dir, deepest first.
func mountPointsUnder(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// /proc lists mount points with every symlink resolved.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		// /proc/self/mounts escapes spaces and the like as octal.
		p := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(fields[1])
		if strings.HasPrefix(p, abs+"/") {
			out = append(out, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, sc.Err()
}
