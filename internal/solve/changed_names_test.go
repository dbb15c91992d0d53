package solve

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestSourcesChangedNamesFile: a COPY that fails because its sources
// changed after its key says which source changed. Without the path, a
// user whose context holds a file that keeps changing (a log, .git's
// index under an IDE) is told only to run the build again, which fails
// the same way, and cannot tell what to add to .dockerignore.
func TestSourcesChangedNamesFile(t *testing.T) {
	ctx := context.Background()
	dir := writeContext(t, map[string]string{"src/a.txt": "a", "src/b.txt": "b"})
	_, p := preparedCopy(t, dir, "FROM scratch\nCOPY src/ /src/\n")
	if _, err := p.key(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "src", "b.txt"), "changed after the key")
	err := p.exec(ctx, t.TempDir())
	if err == nil {
		t.Fatal("copy after its sources changed: no error")
	}
	if !strings.Contains(err.Error(), "src/b.txt") {
		t.Errorf("copy after src/b.txt changed: %q, want the error to name src/b.txt", err)
	}
}
