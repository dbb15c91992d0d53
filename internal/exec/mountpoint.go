package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MakeDir makes dir (absolute, resolved inside root: a symlink on the
// way never leads out) and its missing parents, each with mode 0755 and
// owner uid:gid; existing directories are left as they are. It is what a
// RUN does for its working directory, and what WORKDIR does in BuildKit.
func MakeDir(root, dir string, uid, gid uint32) error { return makeCwd(root, dir, uid, gid) }

// makeCwd creates the working directory in root if it is missing: each
// missing directory on the way gets mode 0755 and owner uid:gid (the
// step's user), as BuildKit's WORKDIR does, so that a USER can write in
// the WORKDIR it asked for. Existing directories are left as they are.
func makeCwd(root, cwd string, uid, gid uint32) error {
	p, err := securejoin.SecureJoin(root, cwd)
	if err != nil {
		return fmt.Errorf("resolving working directory %s: %w", cwd, err)
	}
	// p has every symlink resolved inside root: the missing part is the
	// tail of plain names that Lstat does not find.
	var missing []string
	top := filepath.Clean(root)
	for d := p; d != top && len(d) > len(top); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking working directory %s: %w", cwd, err)
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("creating working directory %s: %w", cwd, err)
	}
	for _, d := range missing {
		if err := os.Lchown(d, int(uid), int(gid)); err != nil {
			return fmt.Errorf("creating working directory %s: %w", cwd, err)
		}
	}
	return nil
}

// mountPoints are the paths Run created in the rootfs so that mounts had
// somewhere to go, in creation order.
type mountPoints struct {
	root    string
	created []createdPath
}

type createdPath struct {
	host string // secure-joined host path
	rel  string // path inside the rootfs
	dir  bool
	// The parent directory's modification time before and just after the
	// mount point was made: remove puts the first back when the step left
	// the second alone, so a run that touched nothing leaves the parent
	// as it found it (its layer then does not depend on when it ran).
	parentBefore, parentAfter time.Time
}

// makeMountPoints creates, inside root, the mount point of every mount
// whose destination is on the rootfs (not inside an earlier mount) and is
// missing: a directory, or an empty file for a bind of a file. Symlinks in
// destinations resolve inside root, as the runtime resolves them.
func makeMountPoints(root string, mounts []specs.Mount) (*mountPoints, error) {
	mp := &mountPoints{root: root}
	var mounted []string // destinations already mounted over
	for _, m := range mounts {
		under := false
		for _, d := range mounted {
			if within(d, m.Destination) {
				under = true
				break
			}
		}
		mounted = append(mounted, m.Destination)
		if under {
			continue
		}
		dir := true
		if m.Type == "bind" {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return mp, fmt.Errorf("checking mount source %s: %w", m.Source, err)
			}
			dir = fi.IsDir()
		}
		if err := mp.make(m.Destination, dir); err != nil {
			return mp, err
		}
	}
	return mp, nil
}

// within reports whether p is parent or below it.
func within(parent, p string) bool {
	return p == parent || strings.HasPrefix(p, strings.TrimSuffix(parent, "/")+"/")
}

// make creates rel (and its missing parents) in the rootfs, recording what
// it created.
func (mp *mountPoints) make(rel string, dir bool) error {
	rel = filepath.Clean("/" + rel)
	if rel == "/" {
		return nil
	}
	p, err := securejoin.SecureJoin(mp.root, rel)
	if err != nil {
		return fmt.Errorf("resolving mount point %s: %w", rel, err)
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checking mount point %s: %w", rel, err)
	}
	// p has every existing symlink resolved; its parents are what must
	// exist (a dangling /etc/resolv.conf link is followed, as the runtime
	// follows it).
	resolved, err := filepath.Rel(mp.root, p)
	if err != nil {
		return fmt.Errorf("resolving mount point %s: %w", rel, err)
	}
	rel = "/" + resolved
	if err := mp.make(filepath.Dir(rel), true); err != nil {
		return err
	}
	before := modTime(filepath.Dir(p))
	if dir {
		err = os.Mkdir(p, 0o755)
	} else {
		var f *os.File
		f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("creating mount point %s: %w", rel, err)
	}
	mp.created = append(mp.created, createdPath{host: p, rel: rel, dir: dir, parentBefore: before, parentAfter: modTime(filepath.Dir(p))})
	return nil
}

// remove deletes, newest first, the mount points that are still what Run
// made: an empty directory or an empty regular file at the same resolved
// path. Anything the step put there is kept.
func (mp *mountPoints) remove() error {
	if mp == nil {
		return nil
	}
	var errs []error
	for i := len(mp.created) - 1; i >= 0; i-- {
		c := mp.created[i]
		// The step may have swapped a parent for a symlink: only touch the
		// path if it still resolves, inside root, to where it was made.
		p, err := securejoin.SecureJoin(mp.root, c.rel)
		if err != nil || p != c.host {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		switch {
		case c.dir && fi.IsDir():
			if ents, err := os.ReadDir(p); err != nil || len(ents) > 0 {
				continue
			}
		case !c.dir && fi.Mode().IsRegular() && fi.Size() == 0:
		default:
			continue
		}
		parent := filepath.Dir(p)
		untouched := !c.parentBefore.IsZero() && modTime(parent).Equal(c.parentAfter)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing mount point %s: %w", c.rel, err))
			continue
		}
		if untouched {
			_ = os.Chtimes(parent, time.Time{}, c.parentBefore)
		}
	}
	return errors.Join(errs...)
}

// modTime is path's modification time, or the zero time.
func modTime(path string) time.Time {
	fi, err := os.Lstat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
