package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/layer"
)

// TestUnpackCheckedRefusesWrongDiffID: a layer whose bytes do not hash to
// the diff ID it is published under is refused and not kept.
func TestUnpackCheckedRefusesWrongDiffID(t *testing.T) {
	for _, copyMode := range []bool{false, true} {
		s := newSnapshotter(t, copyMode)
		data := tarOf(t, [2]string{"f", "x"})
		good := diffID(data)
		bad := v1.Hash{Algorithm: "sha256", Hex: "00" + good.Hex[2:]}
		chain := v1.Hash{Algorithm: "sha256", Hex: "11" + good.Hex[2:]}
		if err := s.UnpackChecked(context.Background(), chain, bad, nil, bytes.NewReader(data)); err == nil {
			t.Errorf("copy=%v: a wrong diff ID was accepted", copyMode)
		}
		if s.Has(chain) {
			t.Errorf("copy=%v: the refused layer was kept", copyMode)
		}
		if err := s.UnpackChecked(context.Background(), chain, good, nil, bytes.NewReader(data)); err != nil {
			t.Errorf("copy=%v: the right diff ID was refused: %v", copyMode, err)
		}
	}
}

// TestCopyModeSeesRestoredMtime: in copy mode, a step that rewrites a file
// (made by an earlier step, so its mtime has nanoseconds) with the same
// size and puts its old mtime back (tar x, cp -p) still changes the layer.
func TestCopyModeSeesRestoredMtime(t *testing.T) {
	s := newSnapshotter(t, true)
	ctx := context.Background()
	base := tarOf(t, [2]string{"g", "base"})
	c1 := diffID(base)
	if err := s.Unpack(ctx, c1, bytes.NewReader(base)); err != nil {
		t.Fatal(err)
	}
	// Step 1 writes f.
	a, err := s.Prepare(ctx, []v1.Hash{c1})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(a.Root(), "f")
	if err := os.WriteFile(p, []byte("aaa"), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1700000000, 123456789)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteDiff(ctx, io.Discard, layer.TarOptions{}); err != nil {
		t.Fatal(err)
	}
	c2 := v1.Hash{Algorithm: "sha256", Hex: "22" + c1.Hex[2:]}
	if err := a.Commit(ctx, c2); err != nil {
		t.Fatal(err)
	}
	a.Release()
	// Step 2 rewrites f, same size, and restores its mtime.
	b, err := s.Prepare(ctx, []v1.Hash{c1, c2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	p = filepath.Join(b.Root(), "f")
	if err := os.WriteFile(p, []byte("bbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := b.WriteDiff(ctx, &buf, layer.TarOptions{}); err != nil {
		t.Fatal(err)
	}
	if names := entryNames(t, buf.Bytes()); len(names) == 0 {
		t.Errorf("the diff is empty: a content change with the mtime put back was missed")
	}
}

// TestModesGiveSameDiff: rewriting a file deep in the tree gives the same
// layer entries in both snapshotters (the copying differ writes the
// ancestors an overlay upper dir holds).
func TestModesGiveSameDiff(t *testing.T) {
	var got [2][]string
	for i, copyMode := range []bool{false, true} {
		s := newSnapshotter(t, copyMode)
		ctx := context.Background()
		base := tarOf(t, [2]string{"home/u/f", "old"}, [2]string{"home/u/g", "keep"})
		c := diffID(base)
		if err := s.Unpack(ctx, c, bytes.NewReader(base)); err != nil {
			t.Fatal(err)
		}
		a, err := s.Prepare(ctx, []v1.Hash{c})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.Root(), "home/u/f"), []byte("new content"), 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := a.WriteDiff(ctx, &buf, layer.TarOptions{}); err != nil {
			t.Fatal(err)
		}
		a.Release()
		got[i] = entryNames(t, buf.Bytes())
	}
	if strings.Join(got[0], " ") != strings.Join(got[1], " ") {
		t.Errorf("overlay diff %v, copy diff %v", got[0], got[1])
	}
}

// TestUnpackKeepsParentDirs: a layer that lists only home/u/f does not
// turn a private home/u (or a sticky tmp) into a 0755 root directory.
func TestUnpackKeepsParentDirs(t *testing.T) {
	for _, copyMode := range []bool{false, true} {
		s := newSnapshotter(t, copyMode)
		ctx := context.Background()
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range []*tar.Header{
			{Name: "home/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "home/u/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 1000, Gid: 1000},
			{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		} {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
		}
		tw.Close()
		base := buf.Bytes()
		c1 := diffID(base)
		if err := s.UnpackChecked(ctx, c1, c1, nil, bytes.NewReader(base)); err != nil {
			t.Fatal(err)
		}
		top := tarOf(t, [2]string{"home/u/f", "x"}, [2]string{"tmp/x", "y"})
		// tarOf writes parent entries; drop them to make the layer bare.
		bare := stripDirs(t, top)
		c2 := v1.Hash{Algorithm: "sha256", Hex: "3c" + c1.Hex[2:]}
		if err := s.UnpackChecked(ctx, c2, diffID(bare), []v1.Hash{c1}, bytes.NewReader(bare)); err != nil {
			t.Fatal(err)
		}
		root, release, err := s.View(ctx, []v1.Hash{c1, c2})
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]os.FileMode{"home/u": 0o700, "tmp": 0o777 | os.ModeSticky} {
			fi, err := os.Stat(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != want {
				t.Errorf("copy=%v: %s mode %v, want %v", copyMode, name, got, want)
			}
		}
		release()
	}
}

// stripDirs returns the tar without its directory entries.
func stripDirs(t *testing.T, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return out.Bytes()
}

// TestHasNeedsTheFullChainID: two chain IDs that share the directory
// prefix are not confused.
func TestHasNeedsTheFullChainID(t *testing.T) {
	s := newSnapshotter(t, false)
	data := tarOf(t, [2]string{"f", "x"})
	a := diffID(data)
	b := v1.Hash{Algorithm: "sha256", Hex: a.Hex[:16] + strings.Repeat("0", 48)}
	if err := s.Unpack(context.Background(), a, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if s.Has(b) {
		t.Errorf("Has(%s) is true after unpacking %s only", b, a)
	}
	if err := s.Unpack(context.Background(), b, bytes.NewReader(data)); err == nil {
		t.Errorf("unpacking a chain whose directory holds another chain succeeded")
	}
}

// TestModeSwitchKeepsBoth: a state dir used in overlay mode and then in
// copy mode (or back) never serves one mode's snapshot to the other, and
// deletes neither.
func TestModeSwitchKeepsBoth(t *testing.T) {
	imagetest.Require(t, "overlayfs")
	root := t.TempDir()
	ctx := context.Background()
	data := tarOf(t, [2]string{"f", "x"})
	id := diffID(data)
	over, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if over.Mode() != ModeOverlay {
		t.Fatalf("Mode() = %s on a host with overlayfs (fallback: %v)", over.Mode(), over.Fallback())
	}
	if err := over.Unpack(ctx, id, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	cp, err := New(Options{Root: root, ForceCopy: true})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Has(id) {
		t.Fatalf("copy mode sees the overlay snapshot")
	}
	if err := cp.Unpack(ctx, id, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Snapshotter{cp, over} {
		v, release, err := s.View(ctx, []v1.Hash{id})
		if err != nil {
			t.Fatalf("%s mode cannot use its own snapshot: %v", s.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(v, "f")); string(b) != "x" {
			t.Errorf("%s: f = %q", s.Mode(), b)
		}
		release()
	}
	infos, err := over.Usage(ctx)
	if err != nil || len(infos) != 2 {
		t.Errorf("Usage lists %d snapshots (%v), want both modes' copies", len(infos), err)
	}
	if err := over.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if over.Has(id) || cp.Has(id) {
		t.Errorf("Remove left a copy")
	}
}
