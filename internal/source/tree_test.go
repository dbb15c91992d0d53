package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestExcludeStateDir: a path given in Exclude does not exist for the
// tree, even when a "!" pattern would bring files back.
func TestExcludeStateDir(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"app.txt", ".kiln/tmp/s1/secret", ".kiln/cc/x.json"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := Open(root, Options{Ignore: []string{"nothing", "!.kiln/tmp/s1/secret"}, Exclude: []string{filepath.Join(root, ".kiln")}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := tr.Select([]string{"."})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := tr.CopyInto(context.Background(), ms, dst, CopyRequest{Dest: "/", UID: 0, GID: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".kiln")); err == nil {
		t.Errorf("the excluded state dir was copied")
	}
	if _, err := os.Stat(filepath.Join(dst, "app.txt")); err != nil {
		t.Errorf("app.txt missing: %v", err)
	}
	if _, err := tr.Select([]string{".kiln/tmp/s1/secret"}); err == nil {
		t.Errorf("a file in the excluded dir can be selected")
	}
}
