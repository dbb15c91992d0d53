package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
	"github.com/kiln-build/kiln/internal/store"
)

// TestPrefetchStartsAtPlan: the context's hashing starts as soon as the
// build is planned, with no step having run, and covers every COPY from
// the context, but not a COPY from a stage.
func TestPrefetchStartsAtPlan(t *testing.T) {
	dir := t.TempDir()
	for i := range 40 {
		sub := "a"
		if i%2 == 1 {
			sub = "b"
		}
		p := filepath.Join(dir, sub, fmt.Sprintf("f%02d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "unused"), []byte("not copied"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := source.Open(dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := &plan.Stage{Name: "other"}
	g := &plan.Graph{Stages: []*plan.Stage{other, {Steps: []*plan.Step{
		{Kind: plan.KindCopy, Copy: &plan.Copy{Sources: []string{"a"}, Dest: "/a"}},
		{Kind: plan.KindRun},
		{Kind: plan.KindCopy, Copy: &plan.Copy{Sources: []string{"b"}, Dest: "/b"}},
		{Kind: plan.KindCopy, Copy: &plan.Copy{FromStage: other, Sources: []string{"unused"}, Dest: "/u"}},
	}}}}
	stop := prefetchContext(context.Background(), g, tree)
	defer stop()
	// Not a timing test: the deadline only turns a hashing that never
	// starts into a failure instead of a hang.
	deadline := time.Now().Add(30 * time.Second)
	for tree.Hashed() < 40 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	if n := tree.Hashed(); n != 40 {
		t.Fatalf("prefetch hashed %d files, want the 40 the COPYs from the context copy", n)
	}
}

// TestContextHashedOnce: in the build's context, a COPY after the
// prefetch has ended reads no file again, even files written a moment before the
// build (a fresh checkout): on a file system with sub-second timestamps
// the racy window is the fine one, not the 2 s of whole-second ones.
func TestContextHashedOnce(t *testing.T) {
	dir := t.TempDir()
	for i := range 30 {
		p := filepath.Join(dir, "src", fmt.Sprintf("f%02d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Not a timing test: past the fine racy window (50 ms), far within
	// the 2 s one.
	time.Sleep(100 * time.Millisecond)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tree, err := openContext(dir, filepath.Join(dir, "Dockerfile"), st)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	m, err := tree.Select([]string{"src"})
	if err != nil {
		t.Fatal(err)
	}
	tree.Prefetch(context.Background(), m) // to its end, as before a later COPY
	if _, err := tree.Digest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if n := tree.Hashed(); n != 30 {
		t.Fatalf("prefetch and COPY read %d files, want each of the 30 once", n)
	}
}
