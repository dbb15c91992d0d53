package main

import (
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// hashFloor is the least a build can spend on the bytes of the regular
// files under dir on this machine: each read from the page cache and
// hashed with SHA-256 on every core, with the list of files made before
// the clock starts, so no walk, no stat, no bookkeeping and no build. It
// returns the median of runs such passes (after one that warms the page
// cache, as a build's hashing reads from it) and the bytes one pass hashed.
func hashFloor(dir string, runs int) (time.Duration, int64, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	var times []time.Duration
	var total int64
	for i := 0; i <= runs; i++ {
		start := time.Now()
		n, err := hashAll(paths)
		if err != nil {
			return 0, 0, err
		}
		if i > 0 {
			times = append(times, time.Since(start))
		}
		total = n
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	return times[len(times)/2], total, nil
}

// hashAll reads and hashes every file of paths on GOMAXPROCS goroutines,
// with the system calls kiln's hashing makes (open, read, close), and
// returns the bytes hashed.
func hashAll(paths []string) (int64, error) {
	var next, total atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, 128<<10)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(paths) {
					return
				}
				n, err := hashOne(paths[i], buf)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				total.Add(n)
			}
		})
	}
	wg.Wait()
	return total.Load(), first
}

func hashOne(p string, buf []byte) (int64, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	h := sha256.New()
	var n int64
	for {
		m, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: p, Err: err}
		}
		if m == 0 {
			h.Sum(nil)
			return n, nil
		}
		h.Write(buf[:m])
		n += int64(m)
	}
}
