package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"
)

// Options configure a Tree. The zero value reads every file and keeps no
// checksum cache.
type Options struct {
	// Ignore holds .dockerignore patterns (see ReadIgnore); the files they
	// exclude do not exist for Select, Digest or CopyInto.
	Ignore []string
	// CacheFile is where file content checksums persist between builds;
	// "" keeps none. Give each context directory its own file
	// (store.ContextCacheFile).
	CacheFile string
	// IgnoreOwners leaves file owners out of Digest, so that a context
	// checked out by different users on different machines digests the
	// same. Set it when every copy from the tree sets the owner (COPY's
	// default 0:0 or --chown); CopyInto then refuses UID or GID -1.
	IgnoreOwners bool
	// Exclude lists absolute paths that never exist for the tree, whatever
	// the ignore patterns say: kiln's own state dir when it lies inside the
	// context (it holds secrets of running steps and changes every build).
	Exclude []string
}

// Tree is a directory read as a COPY source. Its methods may be called
// concurrently. The directory must not change while a Digest or CopyInto
// runs, or the digest may not describe what was copied.
type Tree struct {
	root   string
	hidden []string                       // Exclude paths relative to root
	ignore *patternmatcher.PatternMatcher // nil: nothing ignored
	// ignoreMu serializes ignore's use: a pattern compiles itself at its
	// first match, and patternmatcher is not safe for concurrent use.
	ignoreMu sync.Mutex
	opts     Options
	cache    *sumCache

	// racyWindow: a file changed less than this long before it is hashed
	// is not stored in the checksum cache, nor reused within the build,
	// since a later change within the same timestamp tick would go
	// unnoticed (Tree.racy). fineRacyWindow is the window for timestamps
	// with sub-second parts. Tests set them.
	racyWindow, fineRacyWindow time.Duration
	// reads counts files whose content was hashed (Hashed).
	reads atomic.Int64

	// memo is every file this Tree hashed, by real slash path (fileSum).
	memoMu sync.Mutex
	memo   map[string]*sumCall

	// flights are the Prefetches running now, by matchesKey (KeyListing).
	flightMu sync.Mutex
	flights  map[string]*flight
}

// Open returns a Tree for the directory root. It loads the checksum cache
// when opts.CacheFile names one; a missing or corrupt cache file is an empty
// cache.
func Open(root string, opts Options) (*Tree, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", root, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening source %s: not a directory", root)
	}
	t := &Tree{root: abs, opts: opts, racyWindow: 2 * time.Second, fineRacyWindow: fineRacyWindow(abs)}
	if len(opts.Ignore) > 0 {
		pm, err := patternmatcher.New(opts.Ignore)
		if err != nil {
			return nil, fmt.Errorf("parsing .dockerignore patterns: %w", err)
		}
		t.ignore = pm
	}
	if opts.CacheFile != "" {
		t.cache = loadSumCache(opts.CacheFile, abs)
	}
	for _, x := range opts.Exclude {
		if p, err := filepath.Abs(x); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			if rel, err := filepath.Rel(abs, p); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
				t.hidden = append(t.hidden, filepath.ToSlash(rel))
			}
		}
	}
	return t, nil
}

// fineRacyWindow is the racy window for sub-second timestamps of files
// under root (Tree.racy): 50 ms where this kernel stamps them with its
// coarse clock, and the long 2 s where another machine's clock does (a
// network or FUSE file system: NFS, SMB, 9p, Ceph, sshfs, virtiofs), so
// that the two clocks may disagree by as much as they did before the fine
// window existed.
func fineRacyWindow(root string) time.Duration {
	var sfs unix.Statfs_t
	if unix.Statfs(root, &sfs) != nil {
		return 2 * time.Second
	}
	return fineRacyWindowOn(int64(sfs.Type))
}

// fineRacyWindowOn is fineRacyWindow for the file system whose statfs
// magic number is fsType.
func fineRacyWindowOn(fsType int64) time.Duration {
	if remoteFS[fsType] {
		return 2 * time.Second
	}
	return 50 * time.Millisecond
}

// remoteFS are the statfs magic numbers of file systems whose timestamps
// another machine's clock may set: NFS, SMB (three), 9p, Ceph, FUSE
// (sshfs, virtiofs, ...), AFS (two), Lustre and GPFS.
var remoteFS = map[int64]bool{
	unix.NFS_SUPER_MAGIC: true, unix.SMB_SUPER_MAGIC: true, unix.CIFS_SUPER_MAGIC: true,
	unix.SMB2_SUPER_MAGIC: true, unix.V9FS_MAGIC: true, unix.CEPH_SUPER_MAGIC: true,
	unix.FUSE_SUPER_MAGIC: true, unix.AFS_SUPER_MAGIC: true, unix.AFS_FS_MAGIC: true,
	0x0BD00BD0: true, // Lustre
	0x47504653: true, // GPFS
}

// Hashed returns how many files this Tree has read to hash their content
// so far: files whose sums came from the checksum cache or from an earlier
// digest on this Tree are not counted.
func (t *Tree) Hashed() int64 { return t.reads.Load() }

// Root returns the absolute path of the tree's directory.
func (t *Tree) Root() string { return t.root }

// Save writes the checksum cache, if there is one and it changed. The write
// is atomic and merges with what other builds saved meanwhile, so concurrent
// builds sharing the file never corrupt it.
func (t *Tree) Save() error {
	if t.cache == nil {
		return nil
	}
	if err := t.cache.save(); err != nil {
		return fmt.Errorf("saving checksum cache %s: %w", t.opts.CacheFile, err)
	}
	return nil
}

// Close saves the checksum cache. The Tree may still be used afterwards,
// but further cache updates are only saved by another Save or Close.
func (t *Tree) Close() error { return t.Save() }

// ReadIgnore reads .dockerignore patterns from the file at path. An absent
// file yields no patterns and no error.
func ReadIgnore(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	pats, err := ignorefile.ReadAll(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if _, err := patternmatcher.New(pats); err != nil {
		return nil, badIgnoreLine(path, b, err)
	}
	return pats, nil
}

// badIgnoreLine finds the first line of a .dockerignore whose pattern does
// not parse, and names it: the matcher's own error has no line.
func badIgnoreLine(path string, b []byte, err error) error {
	for i, line := range strings.Split(string(b), "\n") {
		pats, rerr := ignorefile.ReadAll(strings.NewReader(line))
		if rerr != nil || len(pats) == 0 {
			continue
		}
		if _, perr := patternmatcher.New(pats); perr != nil {
			return fmt.Errorf("%s:%d: bad pattern %q: %w", path, i+1, strings.TrimSpace(line), perr)
		}
	}
	return fmt.Errorf("%s: %w", path, err)
}

// excluded reports whether .dockerignore excludes rel (a slash path relative
// to the root).
func (t *Tree) excluded(rel string) bool {
	if t.isHidden(rel) {
		return true
	}
	if t.ignore == nil || rel == "" {
		return false
	}
	// Matches would be wrong here: Docker excludes a file when a parent
	// directory matches too.
	t.ignoreMu.Lock()
	ex, err := t.ignore.MatchesOrParentMatches(rel)
	t.ignoreMu.Unlock()
	return err == nil && ex
}

// isHidden reports whether rel is, or is under, an Exclude path.
func (t *Tree) isHidden(rel string) bool {
	for _, h := range t.hidden {
		if rel == h || strings.HasPrefix(rel, h+"/") {
			return true
		}
	}
	return false
}

// mayIncludeUnder reports whether a walk must look inside an excluded
// directory: only when some "!" pattern could bring a file back.
func (t *Tree) mayIncludeUnder() bool { return t.ignore != nil && t.ignore.Exclusions() }

// abs returns the host path of rel.
func (t *Tree) abs(rel string) string {
	if rel == "" {
		return t.root
	}
	return filepath.Join(t.root, filepath.FromSlash(rel))
}

// InputError is a source the user named that cannot be used: outside the
// root, missing, or a link that leads out. It is the user's to fix (the
// CLI exits 2), not a failure of the build.
type InputError struct {
	// Err is the cause; its message names the source as the user wrote it.
	Err error
}

// Error returns the cause's message unchanged.
func (e *InputError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *InputError) Unwrap() error { return e.Err }

// errEscape marks a symlink whose target lies outside the root.
var errEscape = errors.New("source: symlink points outside the root")

// resolve follows rel inside the root, symlinks included (the last
// component too), and returns the real slash path relative to the root.
// Absolute link targets are taken relative to the root, as in a rootfs; a
// relative target that climbs above the root is refused with errEscape.
// A missing component gives an fs.ErrNotExist error.
func (t *Tree) resolve(rel string) (string, error) {
	todo := splitPath(rel)
	var cur []string
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", errEscape
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := path.Join(append(cur, c)...)
		fi, err := os.Lstat(t.abs(next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("resolving %s: too many levels of symbolic links", rel)
		}
		target, err := os.Readlink(t.abs(next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = nil
		}
		todo = append(splitPath(target), todo...)
	}
	return path.Join(cur...), nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
