package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestIgnoreConcurrent: a Tree's methods may be called concurrently (two
// stages copy from the context at once), .dockerignore patterns included:
// patternmatcher compiles a pattern at its first match and is not safe
// for concurrent use, so under -race this fails unless the Tree
// serializes it.
func TestIgnoreConcurrent(t *testing.T) {
	root := t.TempDir()
	for i := range 20 {
		for _, dir := range []string{"src", "build/tmp", "logs"} {
			p := filepath.Join(root, dir, fmt.Sprintf("f%d.log", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tr, err := Open(root, Options{Ignore: []string{"**/*.log", "!src/*.log", "build/**/tmp", "logs/f1?.log"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var wg sync.WaitGroup
	sums := make([]string, 4)
	for i := range sums {
		wg.Go(func() {
			m, err := tr.Select([]string{"."})
			if err != nil {
				t.Error(err)
				return
			}
			if sums[i], err = tr.Digest(context.Background(), m); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range sums {
		if sums[i] != sums[0] {
			t.Errorf("digest %d is %s, digest 0 %s", i, sums[i], sums[0])
		}
	}
}
