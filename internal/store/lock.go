package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Lock takes the exclusive lock called name (a cache key, say) and blocks
// until it has it or ctx is done, in which case it returns ctx's error. The
// lock excludes other holders of the same name in this process and in every
// other process using the same state directory: two builds of the same step
// wait for one another. The returned unlock must be called exactly once; it
// is safe to call after the Store is closed.
//
// Waiting polls a non-blocking flock (from 1ms up to 100ms between tries),
// because a blocking flock cannot be interrupted by ctx.
func (s *Store) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if name == "" {
		return nil, errors.New("locking: empty lock name")
	}
	p := filepath.Join(s.root, locksDir, lockName(name))
	f, err := openLockFile(p)
	if err != nil {
		return nil, err
	}
	if err := flockContext(ctx, f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}

// TryLock takes the lock called name if no one holds it, without waiting;
// ok is false when another holder has it. Locks are those of Lock.
func (s *Store) TryLock(name string) (unlock func(), ok bool, err error) {
	if name == "" {
		return nil, false, errors.New("locking: empty lock name")
	}
	f, err := openLockFile(filepath.Join(s.root, locksDir, lockName(name)))
	if err != nil {
		return nil, false, err
	}
	if ok, err = tryFlock(f, unix.LOCK_EX); err != nil || !ok {
		f.Close()
		if err != nil {
			err = fmt.Errorf("locking %s: %w", name, err)
		}
		return nil, false, err
	}
	return func() { f.Close() }, true, nil
}

// lockName turns an arbitrary name into a safe file name: names made of
// [A-Za-z0-9._:-] (as cache keys are) are kept, anything else is hashed.
func lockName(name string) string {
	ok := len(name) <= 128 && name[0] != '.'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == ':'
	}
	if ok {
		return name
	}
	return "h-" + hashString(name)
}

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func openLockFile(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	return f, nil
}

// flock takes a blocking lock of kind how (LOCK_SH or LOCK_EX) on f.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// tryFlock takes a lock without waiting; it reports false when another
// holder has a conflicting lock.
func tryFlock(f *os.File, how int) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		default:
			return false, err
		}
	}
}

// flockContext polls tryFlock until it succeeds or ctx is done.
func flockContext(ctx context.Context, f *os.File, how int) error {
	wait := time.Millisecond
	for {
		ok, err := tryFlock(f, how)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if wait *= 2; wait > 100*time.Millisecond {
			wait = 100 * time.Millisecond
		}
	}
}
