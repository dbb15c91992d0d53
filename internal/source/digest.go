package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Digest returns "sha256:<hex>" over exactly what CopyInto copies for
// matches: for each match its name and kind, then for each entry its path
// relative to the match, type, permission and special mode bits, owner
// (unless Options.IgnoreOwners), link target, device numbers and content
// sha256, and for a file hard-linked to an earlier one the earlier one's
// place. mtimes, atimes and ctimes never count. The order of matches
// counts; entries are in name order, whatever order the file system lists
// them in.
//
// With a checksum cache, a file whose size, mtime, ctime, inode and device
// are unchanged since it was last hashed is not read again.
func (t *Tree) Digest(ctx context.Context, matches []Match) (string, error) {
	return t.digest(ctx, matches, nil)
}

// File is the digest of one path a copy of matches copies.
type File struct {
	// Path is the real slash path relative to the tree's root ("." for
	// the root itself).
	Path string
	// Digest is the hex sha256 of the path's digest line without its
	// name: type, mode, owner (unless ignored), link target, device,
	// content and xattrs.
	Digest string
}

// DigestFiles is Digest that also returns the digest of every path it
// covers, in the order it read them, so that a later build can say which
// files changed. It reads nothing more than Digest does.
func (t *Tree) DigestFiles(ctx context.Context, matches []Match) (string, []File, error) {
	d, l, err := t.DigestListing(ctx, matches)
	if err != nil {
		return "", nil, err
	}
	return d, l.Files(), nil
}

// A Listing is what a digest covered, path by path: its digest lines,
// kept as they are (a digest that keeps them costs no more hashing).
type Listing struct {
	paths, lines []string
}

// DigestListing is Digest that also returns its Listing. It reads nothing
// more than Digest does.
func (t *Tree) DigestListing(ctx context.Context, matches []Match) (string, *Listing, error) {
	l := &Listing{}
	d, err := t.digest(ctx, matches, func(src, line string) {
		if src == "" {
			src = "."
		}
		l.paths = append(l.paths, src)
		l.lines = append(l.lines, line)
	})
	if err != nil {
		return "", nil, err
	}
	return d, l, nil
}

// Files returns the digest of every path of l, in order (DigestFiles).
func (l *Listing) Files() []File {
	files := make([]File, len(l.paths))
	for i, line := range l.lines {
		sum := sha256.Sum256([]byte(line))
		files[i] = File{Path: l.paths[i], Digest: hex.EncodeToString(sum[:])}
	}
	return files
}

// FirstChange returns the first path, in l's order and then in later's,
// whose digest line differs between l and later, or that only one of them
// has; "" when they agree.
func (l *Listing) FirstChange(later *Listing) string {
	was := make(map[string]string, len(l.paths))
	for i, p := range l.paths {
		was[p] = l.lines[i]
	}
	now := make(map[string]string, len(later.paths))
	for i, p := range later.paths {
		now[p] = later.lines[i]
	}
	for i, p := range l.paths {
		if line, ok := now[p]; !ok || line != l.lines[i] {
			return p
		}
	}
	for _, p := range later.paths {
		if _, ok := was[p]; !ok {
			return p
		}
	}
	return ""
}

// Prefetch hashes the files a copy of matches copies, on all cores, so
// that a Digest of them later (on this Tree) reads only their stats, and a
// KeyListing of them while it runs waits for its walk instead of making
// another. It is Digest without the result: call it in the background,
// ahead of the step that needs the digest. An error is left for that
// Digest to report.
func (t *Tree) Prefetch(ctx context.Context, matches []Match) {
	key := matchesKey(matches)
	f := &flight{done: make(chan struct{})}
	t.flightMu.Lock()
	if t.flights[key] != nil {
		t.flightMu.Unlock()
		return // the same sources are being walked now
	}
	if t.flights == nil {
		t.flights = map[string]*flight{}
	}
	t.flights[key] = f
	t.flightMu.Unlock()
	f.digest, f.listing, f.err = t.DigestListing(ctx, matches)
	t.flightMu.Lock()
	delete(t.flights, key)
	t.flightMu.Unlock()
	close(f.done)
}

// A flight is one Prefetch: done is closed once its results are set.
type flight struct {
	done    chan struct{}
	digest  string
	listing *Listing
	err     error
}

// matchesKey is what of matches a walk of them depends on.
func matchesKey(matches []Match) string {
	var b strings.Builder
	for _, m := range matches {
		fmt.Fprintf(&b, "%q %q %t\n", m.Path, m.Name, m.Dir)
	}
	return b.String()
}

// KeyListing is DigestListing for a cache key: while a Prefetch of the
// same matches runs, it waits for that Prefetch and returns its digest
// rather than walking the sources a second time beside it (on a fresh
// checkout the two walks would stat every file twice, at once). The
// digest then describes the sources as that walk found them, which began
// at most the Prefetch's run before this call; a copy made under the key
// must check its sources again after copying (DigestListing), as it must
// anyway for a change made after the key. When the Prefetch fails (it is
// cancelled with its build) the sources are walked as by DigestListing.
func (t *Tree) KeyListing(ctx context.Context, matches []Match) (string, *Listing, error) {
	return t.joinListing(ctx, t.flightOf(matches), matches)
}

// flightOf is the Prefetch of matches running now, nil for none.
func (t *Tree) flightOf(matches []Match) *flight {
	t.flightMu.Lock()
	defer t.flightMu.Unlock()
	return t.flights[matchesKey(matches)]
}

// joinListing is KeyListing once flightOf found f.
func (t *Tree) joinListing(ctx context.Context, f *flight, matches []Match) (string, *Listing, error) {
	if f != nil {
		select {
		case <-f.done:
			if f.err == nil {
				return f.digest, f.listing, nil
			}
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
	}
	return t.DigestListing(ctx, matches)
}

// digest is Digest, calling each (when set) with every entry's real path
// and its digest line less the entry's name.
func (t *Tree) digest(ctx context.Context, matches []Match, each func(src, line string)) (string, error) {
	walked, sums, err := t.walkSums(ctx, matches)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	links := map[inode]string{} // first place of each multiply-linked file
	for i, m := range matches {
		ents := walked[i]
		fmt.Fprintf(h, "match %q dir=%t n=%d\n", m.Name, m.Dir, len(ents))
		for j, e := range ents {
			content := ""
			switch mode := e.fi.Mode(); {
			case mode.IsRegular():
				content = sums[i][j]
				if e.st.Nlink > 1 {
					ino := inode{e.st.Dev, e.st.Ino}
					if first, ok := links[ino]; ok {
						content += " link=" + first
					} else {
						links[ino] = fmt.Sprintf("%d:%q", i, e.rel)
					}
				}
			case mode&(fs.ModeDevice|fs.ModeCharDevice) != 0:
				content = fmt.Sprintf("dev %d", e.st.Rdev)
			}
			owner := fmt.Sprintf("%d:%d", e.st.Uid, e.st.Gid)
			if t.opts.IgnoreOwners {
				owner = "-"
			}
			line := fmt.Sprintf("%c %o %s %q %s%s\n", typeChar(e.fi.Mode()),
				uint32(e.fi.Mode()&modeBits), owner, e.link, content, xattrLine(e.xattrs))
			fmt.Fprintf(h, "%q %s", e.rel, line)
			if each != nil {
				each(e.src, line)
			}
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// walkSums walks matches and returns their entries and the content sum
// of every regular file among them ("" for other entries). The files are
// hashed on all cores while the walk goes on: the walker hands each file to
// GOMAXPROCS hashers as it lists it, so hashing starts with the first file
// rather than after the last, and the digest is then made from the sums in
// order, so it does not depend on how many hashers there were. A walk
// error comes first; otherwise the error is that of the first file, in
// order, that could not be hashed.
func (t *Tree) walkSums(ctx context.Context, matches []Match) ([][]entry, [][]string, error) {
	type result struct {
		content
		err error
	}
	type job struct {
		e   entry
		out *result
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, 512)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range jobs {
				if err := ctx.Err(); err != nil {
					j.out.err = err
					continue
				}
				c, err := t.fileSum(ctx, j.e)
				if err != nil {
					err = fmt.Errorf("digesting %s: %w", j.e.src, err)
				}
				j.out.content, j.out.err = c, err
			}
		})
	}
	var results []*result // one per regular file, in walk order
	found := func(e entry) {
		r := &result{}
		results = append(results, r)
		jobs <- job{e, r}
	}
	walked := make([][]entry, len(matches))
	var werr error
	for i, m := range matches {
		ents, err := t.walk(ctx, m, found)
		if err != nil {
			werr = fmt.Errorf("digesting COPY source: %w", err)
			cancel()
			break
		}
		walked[i] = ents
	}
	close(jobs)
	wg.Wait()
	if werr != nil {
		return nil, nil, werr
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	sums := make([][]string, len(walked))
	k := 0
	for i, ents := range walked {
		sums[i] = make([]string, len(ents))
		for j, e := range ents {
			if !e.fi.Mode().IsRegular() {
				continue
			}
			r := results[k]
			k++
			if r.err != nil {
				return nil, nil, r.err
			}
			sums[i][j] = r.sum
			ents[j].xattrs = r.xattrs // the walk left them to the hashing
		}
	}
	return walked, sums, nil
}

// modeBits are the mode bits a copy keeps.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func typeChar(m fs.FileMode) byte {
	switch {
	case m.IsDir():
		return 'd'
	case m&fs.ModeSymlink != 0:
		return 'l'
	case m&fs.ModeCharDevice != 0:
		return 'c'
	case m&fs.ModeDevice != 0:
		return 'b'
	case m&fs.ModeNamedPipe != 0:
		return 'p'
	case m&fs.ModeSocket != 0:
		return 's'
	}
	return 'f'
}

// content is what a regular file's digest line takes from the file
// itself: the hex sha256 of its bytes and its xattrs.
type content struct {
	sum    string
	xattrs map[string]string
}

// fileSum returns the hex sha256 of a regular file's content and its
// xattrs, from the checksum cache when the file's stat is unchanged (a
// change of xattrs changes the ctime).
//
// Within one Tree each file is hashed once: a file whose stat is what it
// was when this Tree last hashed it gets that sum, and a caller that asks
// while another hashes it waits for that answer (Prefetch hashes while the
// build runs other steps; the COPY that needs the digest then reads
// nothing). As in the checksum cache, the sum of a file changed within
// the racy window before it was hashed is not reused once that hashing
// ended.
func (t *Tree) fileSum(ctx context.Context, e entry) (content, error) {
	st := statKeyOf(e.st)
	t.memoMu.Lock()
	if c, ok := t.memo[e.src]; ok && c.st == st {
		t.memoMu.Unlock()
		select {
		case <-c.done:
			// A file changed just before it was hashed may have changed
			// again within the same timestamp tick: as in the checksum
			// cache, such a sum is not reused later.
			if c.racy {
				return t.hashFile(ctx, e, st)
			}
		default:
			<-c.done // being hashed now: the answer is as fresh as ours
		}
		if c.err == nil {
			return c.content, nil
		}
		return t.hashFile(ctx, e, st)
	}
	c := &sumCall{st: st, done: make(chan struct{}),
		racy: t.racy(st)}
	if t.memo == nil {
		t.memo = map[string]*sumCall{}
	}
	t.memo[e.src] = c
	t.memoMu.Unlock()
	c.content, c.err = t.hashFile(ctx, e, st)
	if c.err != nil {
		t.memoMu.Lock()
		if t.memo[e.src] == c {
			delete(t.memo, e.src)
		}
		t.memoMu.Unlock()
	}
	close(c.done)
	return c.content, c.err
}

// racy reports whether a file whose stat is st changed so shortly before
// now that a change after now could fall within the same timestamp tick
// and leave st as it is. A file system whose timestamps have sub-second
// parts (ext4, XFS, Btrfs, tmpfs: the kernel's coarse clock, a tick of 1
// to 10 ms) gets the fine window; one whose timestamps are whole seconds
// (FAT, ext3, HFS+; or by a one-in-a-billion chance) the long one.
func (t *Tree) racy(st statKey) bool {
	window := t.racyWindow
	if st.Mtime%int64(time.Second) != 0 || st.Ctime%int64(time.Second) != 0 {
		window = min(window, t.fineRacyWindow)
	}
	return time.Since(time.Unix(0, max(st.Mtime, st.Ctime))) < window
}

// statKeyOf is what of st says whether a file changed.
func statKeyOf(st *syscall.Stat_t) statKey {
	return statKey{
		Size:  st.Size,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
		Ino:   st.Ino,
		Dev:   uint64(st.Dev),
	}
}

// cancelReads is how many reads of a file hashContent makes between two
// looks at its context (16 MB): a build stopped while a huge file is hashed
// stops within milliseconds, not at the file's end.
const cancelReads = 128

// hashBufs are the read buffers of hashFile, one per file being hashed.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// sumCall is one hashing of a file by a Tree: done is closed when content
// or err is set.
type sumCall struct {
	st   statKey
	done chan struct{}
	content
	err error
	// racy: the file changed within the racy window before it was hashed.
	racy bool
}

// hashFile is fileSum without the Tree's memory of sums: the checksum
// cache, else the file's bytes.
func (t *Tree) hashFile(ctx context.Context, e entry, st statKey) (content, error) {
	if t.cache != nil {
		if c, ok := t.cache.get(e.src, st); ok {
			return c, nil
		}
	}
	h := sha256.New()
	x, err := hashContent(ctx, h, t.abs(e.src), e.st.Size)
	if err != nil {
		return content{}, err
	}
	t.reads.Add(1)
	c := content{sum: hex.EncodeToString(h.Sum(nil)), xattrs: x}
	// A file changed within the racy window could change again within the
	// same timestamp tick without its stat changing: hash it next time too.
	if t.cache != nil && !t.racy(st) {
		t.cache.put(e.src, st, c)
	}
	return c, nil
}

// hashContent writes the bytes of the file at p to h and returns the
// file's xattrs, read from the same open file. It reads with plain
// system calls (an os.File costs a poller registration attempt and a
// cleanup per file, which shows on contexts of many small files) and, where
// the caller may, without updating the file's access time: the first read
// of a freshly checked-out file would otherwise dirty its inode, one
// metadata write per file hashed.
//
// size is the file's size from its stat: once that many bytes are read in
// a short read, the read that would return end of file is not made (one
// system call per file). A file that changed since its stat is hashed
// under a stat it no longer has, as when it changes after being read; a
// COPY of it then fails, as its digest after the copy differs (the
// solver's sameSources).
func hashContent(ctx context.Context, h io.Writer, p string, size int64) (map[string]string, error) {
	fd, err := openNoatime(p)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	x, err := fdXattrs(fd)
	if err != nil {
		return nil, fmt.Errorf("reading xattrs of %s: %w", p, err)
	}
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	var total int64
	for i := 0; ; i++ {
		if i%cancelReads == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		n, err := unix.Read(fd, *buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return x, nil
		}
		h.Write((*buf)[:n])
		if total += int64(n); total == size && n < len(*buf) {
			return x, nil
		}
	}
}

// openNoatime opens p read-only with O_NOATIME, or without it where the
// caller may not use it (EPERM: neither the file's owner nor CAP_FOWNER).
func openNoatime(p string) (int, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	for {
		fd, err := unix.Open(p, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			fd, err = unix.Open(p, flags, 0)
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// xattrLine is the xattrs of an entry as they enter its digest line; ""
// for none, so entries without xattrs digest as they always did.
func xattrLine(x map[string]string) string {
	if len(x) == 0 {
		return ""
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " x:%q=%q", k, x[k])
	}
	return b.String()
}
