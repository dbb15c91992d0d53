package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotFound is returned when a blob or record is not in the store. A
// corrupt record is reported as not found too.
var ErrNotFound = errors.New("store: not found")

// ErrInUse is returned by Prune when a build holds the state directory open.
var ErrInUse = errors.New("store: state dir is in use by a running build")

// Directory names under the root. They are short on purpose (see doc.go).
const (
	lockFile    = "lock"
	blobsDir    = "blobs/sha256"
	recordsDir  = "records"
	locksDir    = "locks"
	tmpDir      = "tmp"
	snapshotDir = "sn"
	contextDir  = "cc"
	mountsDir   = "cm"
	indexDir    = "ix"
)

// Store is an open state directory. Its methods may be called from many
// goroutines at once, and several processes may open the same root at once.
type Store struct {
	root string
	lock *os.File // holds the shared flock on root/lock
	// session is this Store's scratch space in tmp/ (see session.go).
	session       string
	unlockSession func()

	mu sync.Mutex
	// committed holds the blobs this Store's BlobWriters committed, by hex
	// digest, with the identity of the file each wrote (OpenBlobFile).
	committed map[string]fileID
}

// Open opens the state directory at root, creating it and its layout when
// missing, and takes a shared lock on it that is held until Close, so that
// Prune never runs under a build. If a Prune is running, Open waits for it
// to finish.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolving state dir %s: %w", root, err)
	}
	// The state dir holds every layer built or pulled (private base images
	// included) and the cache mounts: only its owner may look inside.
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("creating state dir: %w", err)
		}
		// MkdirAll's mode is filtered by the umask.
		if err := os.Chmod(abs, 0o700); err != nil {
			return nil, fmt.Errorf("protecting state dir: %w", err)
		}
	}
	for _, d := range []string{blobsDir, recordsDir, locksDir, tmpDir, snapshotDir, contextDir, indexDir} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating state dir layout: %w", err)
		}
	}
	f, err := openLockFile(filepath.Join(abs, lockFile))
	if err != nil {
		return nil, err
	}
	if err := flock(f, unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking state dir %s: %w", abs, err)
	}
	st := &Store{root: abs, lock: f}
	if err := st.newSession(); err != nil {
		f.Close()
		return nil, err
	}
	return st, nil
}

// Close releases the shared lock. The Store must not be used afterwards.
// Locks taken with Lock are not released by Close.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	serr := s.closeSession()
	err := s.lock.Close() // closing the descriptor drops the flock
	s.lock = nil
	if err != nil {
		return fmt.Errorf("closing state dir lock: %w", err)
	}
	return serr
}

// Root returns the absolute path of the state directory.
func (s *Store) Root() string { return s.root }

// SnapshotRoot returns the directory the snapshotter keeps its snapshots in.
// The path is kept short because overlay mount options are length-limited.
func (s *Store) SnapshotRoot() string { return SnapshotRootOf(s.root) }

// SnapshotRootOf is SnapshotRoot for a state dir that is not open (prune).
func SnapshotRootOf(root string) string { return filepath.Join(root, snapshotDir) }

// CacheMountDir returns the persistent directory of the RUN
// --mount=type=cache with the given name (a safe file name). `kiln prune
// --all` removes it with everything else.
func (s *Store) CacheMountDir(name string) string {
	return filepath.Join(s.root, mountsDir, hashString(name)[:32])
}

// ContextCacheFile returns the path of the persistent checksum cache for the
// build context directory dir (one file per absolute context path), for
// source.Options.CacheFile. The file may not exist yet.
func (s *Store) ContextCacheFile(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return filepath.Join(s.root, contextDir, hashString(abs)[:32]+".sums")
}

// TempDir creates a fresh directory in this Store's session directory
// (root/tmp/<session>) whose name starts with prefix, for upper dirs and
// staging. The caller removes it when done; Close, and after a kill
// SweepDead or Prune, remove whatever is left over.
func (s *Store) TempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp(filepath.Join(s.root, tmpDir, s.session), prefix)
	if err != nil {
		return "", fmt.Errorf("creating temporary directory: %w", err)
	}
	return d, nil
}
