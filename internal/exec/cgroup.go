package exec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A runtime killed while it creates a container (kiln killed with -9, the
// runtime with it through its death signal) can leave the container's
// cgroup directories behind without any state of the container: "delete
// --force" then finds nothing to delete, and the empty directories stay
// for good. Seen with runc and crun on a cgroup v1 (hybrid) host: one
// directory per hierarchy, or only the first one the runtime makes.
//
// Run gives the runtime no cgroupsPath, so each runtime picks the
// directory itself, named after the container ID, in every hierarchy:
//   - runc, v1: under the caller's own cgroup of that hierarchy;
//   - crun, v1: at the hierarchy's root;
//   - v2: at the root, or under the caller's cgroup or its parent (runc
//     takes the parent); these are from the runtimes' sources, and not
//     seen on a v2 host.
//
// cgroupDirs lists all of those candidates, and removeCgroups removes the
// ones that exist, with rmdir only: a cgroup directory with processes in it
// cannot be removed, and nothing is ever removed recursively.

// cgroupDirs returns the directories at or under cgroupRoot where a
// runtime started by this process may make the cgroups of container id,
// from the cgroup hierarchies mounted there (/proc/self/mountinfo) and this
// process's place in each (/proc/self/cgroup). Unreadable inputs give fewer candidates, not
// an error: the list is for clean-up.
func cgroupDirs(id string) []string {
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer mi.Close()
	pc, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	defer pc.Close()
	return cgroupDirsFrom(id, mi, pc)
}

// cgroupHierarchy is one cgroup file system mounted at or under cgroupRoot.
type cgroupHierarchy struct {
	mountPoint string
	root       string   // the mount's root within the hierarchy
	v2         bool     // cgroup2
	names      []string // v1: the controllers and name= options
}

// cgroupDirsFrom is cgroupDirs reading mountinfo and /proc/self/cgroup
// from the readers given.
func cgroupDirsFrom(id string, mountinfo, procCgroup io.Reader) []string {
	hs := cgroupHierarchies(mountinfo)
	var dirs []string
	add := func(d string) {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, h := range hs {
		add(filepath.Join(h.mountPoint, id))
	}
	sc := bufio.NewScanner(procCgroup)
	for sc.Scan() {
		// "hierarchy-ID:controller-list:cgroup-path"
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			continue
		}
		for _, h := range hs {
			if !h.matches(parts[0], parts[1]) {
				continue
			}
			rel, ok := below(parts[2], h.root)
			if !ok {
				continue
			}
			own := filepath.Join(h.mountPoint, rel)
			add(filepath.Join(own, id))
			if own != h.mountPoint {
				add(filepath.Join(filepath.Dir(own), id))
			}
		}
	}
	// Only ever directories under cgroupRoot named exactly id.
	return slices.DeleteFunc(dirs, func(d string) bool { return !isCgroupDirOf(d, id) })
}

// below returns p relative to root, both absolute slash paths, and
// whether p is root or below it.
func below(p, root string) (string, bool) {
	switch {
	case root == "/":
		return p, true
	case p == root:
		return "/", true
	case strings.HasPrefix(p, root+"/"):
		return p[len(root):], true
	}
	return "", false
}

// matches reports whether the /proc/self/cgroup line with hierarchy ID hid
// and controller list ctrls is h's.
func (h cgroupHierarchy) matches(hid, ctrls string) bool {
	if h.v2 {
		return hid == "0" && ctrls == ""
	}
	if ctrls == "" {
		return false
	}
	for _, c := range strings.Split(ctrls, ",") {
		if !slices.Contains(h.names, c) {
			return false
		}
	}
	return true
}

// cgroupHierarchies returns the cgroup and cgroup2 mounts at or under cgroupRoot
// that mountinfo (the format of /proc/self/mountinfo) lists.
func cgroupHierarchies(mountinfo io.Reader) []cgroupHierarchy {
	var hs []cgroupHierarchy
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		// "36 35 98:0 /root /mnt opts [optional...] - fstype source superopts"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp != cgroupRoot && !strings.HasPrefix(mp, cgroupRoot+"/") {
			continue
		}
		h := cgroupHierarchy{mountPoint: mp, root: unescapeMountinfo(f[3])}
		switch g[0] {
		case "cgroup2":
			h.v2 = true
		case "cgroup":
			h.names = strings.Split(g[2], ",")
		default:
			continue
		}
		hs = append(hs, h)
	}
	return hs
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isCgroupDirOf reports whether d is a clean absolute path under cgroupRoot
// whose last element is id.
func isCgroupDirOf(d, id string) bool {
	return filepath.IsAbs(d) && filepath.Clean(d) == d && strings.HasPrefix(d, cgroupRoot+"/") &&
		filepath.Base(d) == id
}

// killCgroupProcs sends SIGKILL to every process in the cgroup directory
// d (its cgroup.procs), which isCgroupDirOf has checked is a container's.
func killCgroupProcs(d string) {
	b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cgroupBusyWait is how long removeCgroups retries a cgroup directory that
// still has processes: after a kill they take a moment to leave it.
const cgroupBusyWait = 2 * time.Second

// removeCgroups removes those of dirs that exist, deepest first, which must
// all be cgroup directories of container id (isCgroupDirOf; others are an
// error). A directory that still has processes in it (EBUSY) is retried
// for cgroupBusyWait and then reported; one that does not exist is no
// error.
func removeCgroups(id string, dirs []string) error {
	dirs = slices.Compact(slices.Sorted(slices.Values(dirs)))
	// Deepest first: one candidate can sit in another (runc's under the
	// caller's cgroup, crun's at the root, when the caller is at the root).
	slices.SortStableFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var errs []error
	for _, d := range dirs {
		if !isCgroupDirOf(d, id) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: not a cgroup directory of %s", d, id))
			continue
		}
		if err := rmdirCgroup(d); err != nil {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// rmdirCgroup removes the cgroup directory d, retrying while it is busy.
// The processes still in it are the killed build's: a runtime's init that
// its runtime, killed mid-create, left waiting for a start that never
// comes, with no container state a delete would find. They are killed.
func rmdirCgroup(d string) error {
	deadline := time.Now().Add(cgroupBusyWait)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := syscall.Rmdir(d)
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
			return nil
		case errors.Is(err, syscall.EBUSY) && time.Now().Before(deadline):
			killCgroupProcs(d)
			time.Sleep(wait)
		case errors.Is(err, syscall.EBUSY):
			return fmt.Errorf("processes are still in it: %w", err)
		default:
			return err
		}
	}
}
