package snapshot

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
		if err := s.UnpackChecked(context.Background(), chain, bad, bytes.NewReader(data)); err == nil {
			t.Errorf("copy=%v: a wrong diff ID was accepted", copyMode)
		}
		if s.Has(chain) {
			t.Errorf("copy=%v: the refused layer was kept", copyMode)
		}
		if err := s.UnpackChecked(context.Background(), chain, good, bytes.NewReader(data)); err != nil {
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
