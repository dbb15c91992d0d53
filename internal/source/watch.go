package source

import (
	"bytes"
	"encoding/binary"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A watcher tells whether anything a digest of its Tree read may have
// changed since the reading, through inotify, so that a COPY whose sources
// the build's prefetch already walked and hashed can take that result
// without walking them again (Tree.walkSums). It is conservative: any event
// it cannot rule out, a full event queue, a watch it could not add, or a
// file system whose changes inotify may not see (a network or FUSE file
// system) makes it report a change, and the walk is done again, as it
// would be without it. Once it has reported a change it keeps reporting
// one.
//
// A watch is added before what it covers is read: a directory's before it
// is listed and its children are stat'ed (an "all" watch: every event
// under it counts, but for names the walk would not list), and for the
// root of a match, its parent's and every ancestor's up to the tree's root
// (a "names" watch: only events about the next name on the way down
// count). A file with more than one link is also watched itself: a write
// through a name outside the watched directories reports only to the
// file's own watches.
type watcher struct {
	t  *Tree
	mu sync.Mutex
	fd int // -1 once closed
	// changed is sticky: something a digest read may have changed.
	changed bool
	wds     map[int32]*watched
}

// watched is what one watch descriptor covers.
type watched struct {
	rel   string          // slash path relative to the tree root
	all   bool            // every child event counts
	names map[string]bool // else only these children's
}

// watchMask is every event that may change what a walk reads: content,
// metadata, names and the watched inode's own removal. Reads and opens
// are not in it.
const watchMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE |
	unix.IN_CREATE | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// localFS are the file systems whose changes all pass through this
// kernel, so that inotify sees them: ext2/3/4, XFS, Btrfs, tmpfs,
// overlayfs, ZFS and F2FS.
var localFS = map[int64]bool{
	0xEF53: true, 0x58465342: true, 0x9123683E: true, 0x01021994: true,
	0x794c7630: true, 0x2fc12fc1: true, 0xF2F52010: true,
}

// newWatcher returns a watcher for t, or nil when t's file system is not
// one whose changes inotify sees or inotify is not available (too many
// instances, say): then every digest walks.
func newWatcher(t *Tree) *watcher {
	var sfs unix.Statfs_t
	if unix.Statfs(t.root, &sfs) != nil || !localFS[int64(sfs.Type)] {
		return nil
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	return &watcher{t: t, fd: fd, wds: map[int32]*watched{}}
}

// dir watches the directory rel and every child event under it.
func (w *watcher) dir(rel string) { w.add(rel, func(x *watched) { x.all = true }) }

// name watches the children of the directory rel called name.
func (w *watcher) name(rel, name string) {
	w.add(rel, func(x *watched) {
		if x.names == nil {
			x.names = map[string]bool{}
		}
		x.names[name] = true
	})
}

// linked watches a regular file with more than one link itself (w may be
// nil: no watching).
func (w *watcher) linked(e entry) {
	if w != nil && e.st.Nlink > 1 {
		w.add(e.src, func(*watched) {}) // its own events have no name: all count
	}
}

// match watches, before walking m reads anything, the names leading from
// the tree's root to m and, for a directory, m itself.
func (w *watcher) match(m Match) {
	dir, rest := "", m.Path
	for rest != "" {
		var next string
		next, rest, _ = strings.Cut(rest, "/")
		w.name(dir, next)
		dir = path.Join(dir, next)
	}
	if m.Dir {
		w.dir(dir)
	}
}

func (w *watcher) add(rel string, set func(*watched)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 || w.changed {
		return
	}
	wd, err := unix.InotifyAddWatch(w.fd, w.t.abs(rel), watchMask)
	if err != nil {
		// No watch (ENOSPC: the user's watches are used up; the path is
		// gone): what it would cover cannot be vouched for.
		w.changed = true
		return
	}
	x := w.wds[int32(wd)]
	if x == nil {
		// The same inode reached by another path (a hard-linked file)
		// shares its descriptor: the first path names it.
		x = &watched{rel: rel}
		w.wds[int32(wd)] = x
	}
	set(x)
}

// unchanged reports whether no event has arrived that could change what a
// digest read since the first watch was added.
func (w *watcher) unchanged() bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return false
	}
	w.drain()
	return !w.changed
}

// drain reads the pending events; w.mu is held.
func (w *watcher) drain() {
	buf := make([]byte, 64<<10)
	for !w.changed {
		n, err := unix.Read(w.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n <= 0 {
			w.changed = true
			return
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent && !w.changed; {
			wd := int32(binary.NativeEndian.Uint32(b[0:]))
			mask := binary.NativeEndian.Uint32(b[4:])
			size := int(binary.NativeEndian.Uint32(b[12:]))
			if len(b) < unix.SizeofInotifyEvent+size {
				w.changed = true
				return
			}
			name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+size], "\x00"))
			b = b[unix.SizeofInotifyEvent+size:]
			if w.counts(wd, mask, name) {
				w.changed = true
			}
		}
	}
}

// counts reports whether an event may change what a digest read.
func (w *watcher) counts(wd int32, mask uint32, name string) bool {
	x := w.wds[wd]
	if mask&unix.IN_Q_OVERFLOW != 0 || x == nil {
		return true
	}
	if name == "" {
		// The watched inode itself: changed, moved, removed, unmounted.
		return true
	}
	if x.names[name] {
		return true
	}
	if !x.all {
		return false
	}
	// A child a walk of the directory does not list changes nothing it
	// read (walkDir's rule).
	rel := path.Join(x.rel, name)
	isDir := mask&unix.IN_ISDIR != 0
	if w.t.excluded(rel) && (w.t.isHidden(rel) || !(isDir && w.t.mayIncludeUnder())) {
		return false
	}
	return true
}

// close releases the inotify instance; w then reports a change.
func (w *watcher) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
