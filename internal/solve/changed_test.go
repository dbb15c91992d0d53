package solve

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/plan"
)

// TestCopyRefusesSourcesChangedSinceKey: a COPY whose sources change
// between the digest that made its key and the per-file digests a miss
// takes for its record (which hash the changed file again) fails, rather
// than copying content the key does not describe.
func TestCopyRefusesSourcesChangedSinceKey(t *testing.T) {
	dir := writeContext(t, map[string]string{"src/a.txt": "a", "src/b.txt": "b"})
	e := newEnv(t)
	b := e.newBuild(dir, "FROM scratch\nCOPY src/ /src/\n", Options{})
	var step *plan.Step
	for _, st := range b.graph.Stages {
		for _, s := range st.Steps {
			if s.Kind == plan.KindCopy {
				step = s
			}
		}
	}
	ctx := context.Background()
	p, err := b.s.prepareCopy(ctx, step, &state{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.release()
	if _, err := p.key(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "src", "b.txt"), "changed after the key")
	if _, err := p.fileSums(ctx); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	err = p.exec(ctx, root)
	if err == nil || !strings.Contains(err.Error(), "changed while the build ran") {
		t.Fatalf("copy after its sources changed: %v, want an error saying they changed", err)
	}
	if _, serr := os.Stat(filepath.Join(root, "src", "b.txt")); serr == nil {
		t.Error("the changed file was copied")
	}
}
