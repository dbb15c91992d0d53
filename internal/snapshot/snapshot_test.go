package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/layer"
)

// baseLayer is a small rootfs as a full layer tar.
func baseLayer(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "etc/conf", "c", 0o644)
	writeFile(t, dir, "etc/old", "o", 0o644)
	writeFile(t, dir, "gone/a", "a", 0o644)
	writeFile(t, dir, "gone/sub/b", "b", 0o644)
	writeFile(t, dir, "rep/old", "r", 0o644)
	writeFile(t, dir, "chm", "x", 0o644)
	writeFile(t, dir, "hl1", "h", 0o644)
	writeFile(t, dir, "keep", "k", 0o755)
	must(t, os.Symlink("busybox", filepath.Join(dir, "sh")))
	stampTree(t, dir, t0)
	return tarOfTree(t, dir)
}

// change makes the changes every lifecycle test checks.
func change(t *testing.T, root string) {
	t.Helper()
	writeFile(t, root, "etc/conf", "changed", 0o644)
	writeFile(t, root, "etc/new", "n", 0o640)
	must(t, os.Lchown(filepath.Join(root, "etc/new"), 1000, 1001))
	must(t, os.Remove(filepath.Join(root, "etc/old")))
	must(t, os.RemoveAll(filepath.Join(root, "gone")))
	must(t, os.RemoveAll(filepath.Join(root, "rep")))
	writeFile(t, root, "rep/new", "new", 0o644)
	must(t, os.Chmod(filepath.Join(root, "chm"), 0o600))
	must(t, os.Link(filepath.Join(root, "hl1"), filepath.Join(root, "hl2")))
	must(t, os.Symlink("etc/conf", filepath.Join(root, "lnk")))
	writeFile(t, root, "newdir/f", "f", 0o644)
}

func TestLifecycle(t *testing.T) {
	imagetest.Require(t, "root")
	wantEntries := map[string][]string{
		// The upper dir holds copied-up files and an opaque directory.
		"overlayfs": {"chm", "etc/", "etc/conf", "etc/new", "etc/.wh.old", ".wh.gone", "hl1", "hl2 => hl1",
			"lnk", "newdir/", "newdir/f", "rep/", "rep/.wh..wh..opq", "rep/new"},
		// The tree walk sees hl1 unchanged and the replaced dir's old child as deleted.
		"copy": {"chm", "etc/", "etc/conf", "etc/new", "etc/.wh.old", ".wh.gone", "hl2",
			"lnk", "newdir/", "newdir/f", "rep/", "rep/new", "rep/.wh.old"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSnapshotter(t, m.forceCopy)
			base := baseLayer(t)
			baseID := diffID(base)
			must(t, s.Unpack(ctx, baseID, bytes.NewReader(base)))
			if !s.Has(baseID) {
				t.Fatalf("Has(base) = false after Unpack")
			}

			a, err := s.Prepare(ctx, []v1.Hash{baseID})
			must(t, err)
			defer a.Release()
			if got := treeState(t, a.Root())["etc/conf"].Body; got != "c" {
				t.Fatalf("prepared rootfs etc/conf = %q, want %q", got, "c")
			}
			change(t, a.Root())
			want := treeState(t, a.Root())

			var diff bytes.Buffer
			must(t, a.WriteDiff(ctx, &diff, layer.TarOptions{}))
			if d := cmp.Diff(wantEntries[m.name], entryNames(t, diff.Bytes())); d != "" {
				t.Errorf("WriteDiff entries mismatch (-want +got):\n%s", d)
			}
			chain := layer.ChainIDs([]v1.Hash{baseID, diffID(diff.Bytes())})
			must(t, a.Commit(ctx, chain[1]))
			must(t, a.Release())
			must(t, a.Release()) // twice is fine
			if !s.Has(chain[1]) {
				t.Fatalf("Has(committed) = false")
			}
			if entries, _ := os.ReadDir(filepath.Join(s.root, "a")); len(entries) != 0 {
				t.Errorf("Release left %d active dirs", len(entries))
			}

			// The committed snapshot gives the changed tree back.
			b, err := s.Prepare(ctx, chain)
			must(t, err)
			if d := cmp.Diff(want, treeState(t, b.Root())); d != "" {
				t.Errorf("Prepare on the committed chain mismatch (-want +got):\n%s", d)
			}
			must(t, b.Release())

			// So does unpacking the diff on top of the base elsewhere.
			s2 := newSnapshotter(t, m.forceCopy)
			must(t, s2.Unpack(ctx, chain[0], bytes.NewReader(base)))
			must(t, s2.Unpack(ctx, chain[1], bytes.NewReader(diff.Bytes())))
			c, err := s2.Prepare(ctx, chain)
			must(t, err)
			defer c.Release()
			wantUnpacked := want
			if m.forceCopy { // hl2 was linked to a file below the layer: it travels as a copy
				wantUnpacked = map[string]node{}
				for p, n := range want {
					n.LinkGroup = ""
					wantUnpacked[p] = n
				}
			}
			if d := cmp.Diff(wantUnpacked, treeState(t, c.Root())); d != "" {
				t.Errorf("Prepare on the unpacked diff mismatch (-want +got):\n%s", d)
			}
			// With no change since Prepare, the diff is empty.
			var empty bytes.Buffer
			must(t, c.WriteDiff(ctx, &empty, layer.TarOptions{}))
			if got := entryNames(t, empty.Bytes()); len(got) != 0 {
				t.Errorf("WriteDiff with no change: got entries %v, want none", got)
			}
		})
	}
}

func TestScratchAndView(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSnapshotter(t, m.forceCopy)

			a, err := s.Prepare(ctx, nil)
			must(t, err)
			writeFile(t, a.Root(), "hello", "world", 0o644)
			var diff bytes.Buffer
			must(t, a.WriteDiff(ctx, &diff, layer.TarOptions{}))
			if d := cmp.Diff([]string{"hello"}, entryNames(t, diff.Bytes())); d != "" {
				t.Errorf("WriteDiff on scratch mismatch (-want +got):\n%s", d)
			}
			id := diffID(diff.Bytes())
			must(t, a.Commit(ctx, id))
			must(t, a.Release())

			root, release, err := s.View(ctx, []v1.Hash{id})
			must(t, err)
			if got := treeState(t, root)["hello"].Body; got != "world" {
				t.Errorf("view hello = %q, want %q", got, "world")
			}
			if !m.forceCopy {
				err := os.WriteFile(filepath.Join(root, "x"), nil, 0o644)
				if !errors.Is(err, unix.EROFS) {
					t.Errorf("writing into an overlay view: err = %v, want EROFS", err)
				}
			}
			must(t, release())

			root, release, err = s.View(ctx, nil)
			must(t, err)
			if got := treeState(t, root); len(got) != 0 {
				t.Errorf("view of scratch has %d entries, want none", len(got))
			}
			must(t, release())

			if _, err := s.Prepare(ctx, []v1.Hash{diffID([]byte("missing"))}); !errors.Is(err, ErrNotFound) {
				t.Errorf("Prepare on a missing layer: err = %v, want ErrNotFound", err)
			}
			if entries, _ := os.ReadDir(filepath.Join(s.root, "a")); len(entries) != 0 {
				t.Errorf("%d active dirs left after releases and a failed Prepare", len(entries))
			}
		})
	}
}

// A chain too deep for one overlay mount is flattened once, and a step on
// top of it reuses the flattened tree.
func TestDeepChain(t *testing.T) {
	const n = 150
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSnapshotter(t, m.forceCopy)
			var diffIDs []v1.Hash
			want := map[string]string{}
			for i := range n {
				files := [][2]string{{fmt.Sprintf("d/f%d", i), fmt.Sprint(i)}}
				want[fmt.Sprintf("d/f%d", i)] = fmt.Sprint(i)
				if i%2 == 1 { // odd layers delete the previous layer's file
					files = append(files, [2]string{fmt.Sprintf("d/.wh.f%d", i-1), ""})
					delete(want, fmt.Sprintf("d/f%d", i-1))
				}
				tb := tarOf(t, files...)
				diffIDs = append(diffIDs, diffID(tb))
				chain := layer.ChainIDs(diffIDs)
				must(t, s.Unpack(ctx, chain[i], bytes.NewReader(tb)))
			}
			chain := layer.ChainIDs(diffIDs)

			a, err := s.Prepare(ctx, chain)
			must(t, err)
			defer a.Release()
			got := map[string]string{}
			for p, nd := range treeState(t, a.Root()) {
				if nd.Type == "file" {
					got[p] = nd.Body
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("rootfs of %d layers mismatch (-want +got):\n%s", n, d)
			}
			top := filepath.Join(s.dir(chain[n-1]), "m")
			if _, err := os.Stat(top); err != nil {
				t.Errorf("merged tree of the deep chain not kept: %v", err)
			}

			writeFile(t, a.Root(), "d/step", "s", 0o644)
			var diff bytes.Buffer
			must(t, a.WriteDiff(ctx, &diff, layer.TarOptions{}))
			next := layer.ChainIDs(append(diffIDs, diffID(diff.Bytes())))
			must(t, a.Commit(ctx, next[n]))
			must(t, a.Release())

			b, err := s.Prepare(ctx, next)
			must(t, err)
			defer b.Release()
			if got := treeState(t, b.Root())["d/step"].Body; got != "s" {
				t.Errorf("d/step = %q, want %q", got, "s")
			}
			if got := treeState(t, b.Root())["d/f149"].Body; got != "149" {
				t.Errorf("d/f149 = %q, want %q", got, "149")
			}
			if !m.forceCopy {
				// One more layer on a flattened chain fits in a mount: no new flattening.
				if _, err := os.Stat(filepath.Join(s.dir(next[n]), "m")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("chain of %d layers flattened again (stat: %v)", n+1, err)
				}
			}
		})
	}
}

// A short chain in overlay mode is mounted layer by layer, not flattened.
func TestShortChainNotFlattened(t *testing.T) {
	ctx := context.Background()
	s := newSnapshotter(t, false)
	var diffIDs []v1.Hash
	for i := range 5 {
		tb := tarOf(t, [2]string{fmt.Sprintf("f%d", i), "x"})
		diffIDs = append(diffIDs, diffID(tb))
		must(t, s.Unpack(ctx, layer.ChainIDs(diffIDs)[i], bytes.NewReader(tb)))
	}
	chain := layer.ChainIDs(diffIDs)
	root, release, err := s.View(ctx, chain)
	must(t, err)
	defer release()
	if got := len(treeState(t, root)); got != 5 {
		t.Errorf("view has %d entries, want 5", got)
	}
	for _, id := range chain {
		if _, err := os.Stat(filepath.Join(s.dir(id), "m")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("layer %s flattened (stat: %v)", id, err)
		}
	}
}

func TestUnpackConcurrentAndIdempotent(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSnapshotter(t, m.forceCopy)
			tb := tarOf(t, [2]string{"a/", ""}, [2]string{"a/b", "bee"})
			id := diffID(tb)
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = s.Unpack(ctx, id, bytes.NewReader(tb))
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("Unpack #%d: %v", i, err)
				}
			}
			// Idempotent: the reader is not even read.
			must(t, s.Unpack(ctx, id, errReader{}))
			if entries, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(entries) != 0 {
				t.Errorf("%d staging dirs left", len(entries))
			}
			root, release, err := s.View(ctx, []v1.Hash{id})
			must(t, err)
			defer release()
			if got := treeState(t, root)["a/b"].Body; got != "bee" {
				t.Errorf("a/b = %q, want %q", got, "bee")
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read") }

func TestUnpackRefusesUnsafeTar(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSnapshotter(t, m.forceCopy)
			tb := tarOf(t, [2]string{"../../escape", "x"})
			id := diffID(tb)
			err := s.Unpack(ctx, id, bytes.NewReader(tb))
			if !m.forceCopy && !errors.Is(err, layer.ErrUnsafePath) {
				t.Errorf("Unpack: err = %v, want ErrUnsafePath", err)
			}
			if m.forceCopy { // copy mode checks the tar when it is applied
				must(t, err)
				if _, err := s.Prepare(ctx, []v1.Hash{id}); !errors.Is(err, layer.ErrUnsafePath) {
					t.Errorf("Prepare: err = %v, want ErrUnsafePath", err)
				}
			} else if s.Has(id) {
				t.Errorf("Has = true after a refused Unpack")
			}
		})
	}
}

func TestCommitExistingDiscards(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSnapshotter(t, m.forceCopy)
			id := diffID([]byte("same step"))
			for _, body := range []string{"first", "second"} {
				a, err := s.Prepare(ctx, nil)
				must(t, err)
				writeFile(t, a.Root(), "f", body, 0o644)
				var before, after bytes.Buffer
				must(t, a.WriteDiff(ctx, &before, layer.TarOptions{}))
				must(t, a.Commit(ctx, id))
				// Kept (the first) or discarded (the second), the
				// changes still give the same tar until Release.
				must(t, a.WriteDiff(ctx, &after, layer.TarOptions{}))
				if !bytes.Equal(before.Bytes(), after.Bytes()) {
					t.Errorf("%s: WriteDiff after Commit differs from before (%d bytes, then %d)", body, before.Len(), after.Len())
				}
				must(t, a.Release())
				if err := a.WriteDiff(ctx, &bytes.Buffer{}, layer.TarOptions{}); err == nil {
					t.Errorf("WriteDiff after Release: got nil error")
				}
			}
			root, release, err := s.View(ctx, []v1.Hash{id})
			must(t, err)
			defer release()
			if got := treeState(t, root)["f"].Body; got != "first" {
				t.Errorf("f = %q, want the first commit's %q", got, "first")
			}
		})
	}
}

func TestUsageAndRemove(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSnapshotter(t, m.forceCopy)
			small, big := tarOf(t, [2]string{"s", "s"}), tarOf(t, [2]string{"b", string(make([]byte, 1<<20))})
			smallID, bigID := diffID(small), diffID(big)
			must(t, s.Unpack(ctx, smallID, bytes.NewReader(small)))
			must(t, s.Unpack(ctx, bigID, bytes.NewReader(big)))
			// Use small last: it sorts after big.
			must(t, os.Chtimes(filepath.Join(s.dir(bigID), "chain"), t0, t0))
			a, err := s.Prepare(ctx, []v1.Hash{smallID})
			must(t, err)
			must(t, a.Release())

			infos, err := s.Usage(ctx)
			must(t, err)
			if len(infos) != 2 || infos[0].ChainID != bigID || infos[1].ChainID != smallID {
				t.Fatalf("Usage = %+v, want big then small", infos)
			}
			if infos[0].Size < 1<<20 || infos[1].Size <= 0 || infos[1].Size >= 1<<20 {
				t.Errorf("sizes big %d, small %d; want ≥ 1MiB and in (0, 1MiB)", infos[0].Size, infos[1].Size)
			}
			if infos[0].LastUsed.After(infos[1].LastUsed) {
				t.Errorf("big last used %v after small %v", infos[0].LastUsed, infos[1].LastUsed)
			}

			must(t, s.Remove(ctx, bigID))
			if s.Has(bigID) {
				t.Errorf("Has after Remove = true")
			}
			if err := s.Remove(ctx, bigID); !errors.Is(err, ErrNotFound) {
				t.Errorf("second Remove: err = %v, want ErrNotFound", err)
			}
			infos, err = s.Usage(ctx)
			must(t, err)
			if len(infos) != 1 || infos[0].ChainID != smallID {
				t.Errorf("Usage after Remove = %+v, want only small", infos)
			}
		})
	}
}

func TestNewFallsBackForUnmountablePath(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Root: filepath.Join(t.TempDir(), "a:b")})
	must(t, err)
	if s.Mode() != ModeCopy || s.Fallback() == nil {
		t.Errorf("root with ':': Mode() = %s, Fallback() = %v; want copy and a reason", s.Mode(), s.Fallback())
	}
	if _, err := New(Options{}); err == nil {
		t.Errorf("New without Root: got nil error")
	}
}
