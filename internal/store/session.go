package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A session is one open Store: the scratch directory tmp/<session> that
// TempDir, SecretDir and BundleDir create directories in, and the lock
// locks/session-<session>, held exclusively from before the directory
// exists until Close. A build killed with -9 drops the lock with its
// process, so "directory present, lock free" means "left by a dead build",
// with no PID file to go stale or be reused: SweepDead finds exactly those,
// and never the directory of a build that is still running.

// sessionPrefix starts every session directory name in tmp/.
const sessionPrefix = "k-"

// Prefixes of the scratch directories a session holds, which SweepDead
// treats in order: secrets first, then runtime bundles (whose config.json
// holds env= secrets), then everything else.
const (
	secretPrefix = "s-"
	bundlePrefix = "b-"
)

// SweepHooks are what SweepDead and Prune call for a dead build's leftovers
// that the store cannot remove itself. Nil hooks are skipped.
type SweepHooks struct {
	// Reap is called with every directory of a dead session's scratch
	// space (bundles included), after its secrets and runtime configs are
	// gone and before anything else is removed: it stops what the dead
	// build left running there (a container whose bundle it is). It must
	// succeed for a directory that held nothing running.
	Reap func(ctx context.Context, dir string) error
	// Release is called with a dead session's ID after Reap: it removes
	// what that session kept outside tmp/ (the snapshotter's mounts).
	Release func(ctx context.Context, session string) error
}

// newSession takes the lock of a fresh session and creates its directory.
func (s *Store) newSession() error {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("generating session ID: %w", err)
	}
	id := sessionPrefix + hex.EncodeToString(b[:])
	unlock, ok, err := s.TryLock(sessionLock(id))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("session %s is already locked", id)
	}
	if err := os.Mkdir(filepath.Join(s.root, tmpDir, id), 0o700); err != nil {
		unlock()
		return fmt.Errorf("creating session directory: %w", err)
	}
	s.session, s.unlockSession = id, unlock
	return nil
}

func sessionLock(id string) string { return "session-" + id }

// Session returns the ID of this Store's session: a short name, unique
// among the Stores open on the root, that the snapshotter uses to keep its
// working directories per build.
func (s *Store) Session() string { return s.session }

// closeSession removes the session's directory and drops its lock.
func (s *Store) closeSession() error {
	if s.unlockSession == nil {
		return nil
	}
	err := os.RemoveAll(filepath.Join(s.root, tmpDir, s.session))
	_ = os.Remove(filepath.Join(s.root, locksDir, sessionLock(s.session)))
	s.unlockSession()
	s.unlockSession = nil
	if err != nil {
		return fmt.Errorf("removing session directory: %w", err)
	}
	return nil
}

// SecretDir creates a fresh directory for secret files. SweepDead removes
// a dead build's secret directories before anything else.
func (s *Store) SecretDir() (string, error) { return s.TempDir(secretPrefix) }

// BundleDir creates a fresh directory for a runtime bundle; a dead build's
// bundles are handed to SweepHooks.Reap.
func (s *Store) BundleDir() (string, error) { return s.TempDir(bundlePrefix) }

// SweepDead removes what builds killed before they could clean up left in
// the state dir: for each session whose directory is there but whose lock
// is free, it removes the secrets and runtime configs first, then calls
// hooks.Reap on each of its directories and hooks.Release with its ID, then
// removes the directory. Sessions of running builds are never touched: a
// dead session is locked while it is swept, so two builds starting at once
// do not sweep the same one. It returns how many sessions it swept.
func (s *Store) SweepDead(ctx context.Context, hooks SweepHooks) (int, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, tmpDir))
	if err != nil {
		return 0, fmt.Errorf("listing sessions: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		id := e.Name()
		if !e.IsDir() || !strings.HasPrefix(id, sessionPrefix) || id == s.session {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		unlock, ok, err := s.TryLock(sessionLock(id))
		if err != nil {
			return n, err
		}
		if !ok {
			continue // a running build
		}
		err = sweepSession(ctx, filepath.Join(s.root, tmpDir, id), id, hooks)
		if err == nil {
			_ = os.Remove(filepath.Join(s.root, locksDir, sessionLock(id)))
			n++
		} else {
			errs = append(errs, fmt.Errorf("sweeping session %s: %w", id, err))
		}
		unlock()
	}
	return n, errors.Join(errs...)
}

// sweepSession removes one dead session's directory dir, in the order
// SweepDead documents.
func sweepSession(ctx context.Context, dir, id string, hooks SweepHooks) error {
	if err := removeSecrets(dir); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if hooks.Reap != nil {
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			if err := hooks.Reap(ctx, filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if hooks.Release != nil && id != "" {
		if err := hooks.Release(ctx, id); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// removeSecrets removes, in a session directory, every secret directory and
// every bundle's config.json (a RUN's environment, env= secrets included).
func removeSecrets(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), secretPrefix):
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("removing secrets: %w", err)
			}
		case strings.HasPrefix(e.Name(), bundlePrefix):
			if err := os.Remove(filepath.Join(p, "config.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing runtime config: %w", err)
			}
		}
	}
	return nil
}
