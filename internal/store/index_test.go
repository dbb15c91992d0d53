package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kiln-build/kiln/internal/cache"
)

func relatedKeys(s *Store, parent cache.Key, step string) []string {
	var out []string
	for _, r := range s.Related(parent, step) {
		out = append(out, string(r.Key))
	}
	return out
}

// TestRelated: records are found by parent and by step identity, newest
// first, bounded; aliases are not filed; records that are gone are
// skipped, and Prune drops them from the index.
func TestRelated(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	parent := cache.Key("sha256:" + keyOf("parent"))
	key := func(n int) cache.Key { return cache.Key("sha256:" + keyOf(fmt.Sprint(n))) }
	for n := range indexKeep + 2 {
		r := &cache.Record{Key: key(n), Parent: parent, Step: "Dockerfile:s:1", Layers: []cache.Layer{}}
		if err := s.PutRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	alias := cache.Record{Key: key(1), Parent: parent, Layers: []cache.Layer{}}.AliasAs(key(100))
	if err := s.PutRecord(&alias); err != nil {
		t.Fatal(err)
	}
	other := &cache.Record{Key: key(200), Step: "Dockerfile:s:2", Layers: []cache.Layer{}}
	if err := s.PutRecord(other); err != nil {
		t.Fatal(err)
	}
	got := relatedKeys(s, parent, "")
	if len(got) != indexKeep || got[0] != string(key(indexKeep+1)) {
		t.Errorf("by parent: got %d keys starting %s, want %d starting with the newest %s", len(got), got[0], indexKeep, key(indexKeep+1))
	}
	if slices.Contains(got, string(key(100))) {
		t.Error("an alias was filed in the index")
	}
	if got := relatedKeys(s, "", "Dockerfile:s:2"); !slices.Equal(got, []string{string(key(200))}) {
		t.Errorf("by step: got %q, want [%s]", got, key(200))
	}
	if got := relatedKeys(s, parent, "Dockerfile:s:2"); len(got) != indexKeep+1 {
		t.Errorf("by both: got %d keys, want %d, each once", len(got), indexKeep+1)
	}
	// A record that is gone is skipped.
	if err := os.Remove(filepath.Join(root, recordsDir, key(indexKeep+1).Hex()+".json")); err != nil {
		t.Fatal(err)
	}
	if got := relatedKeys(s, parent, ""); len(got) != indexKeep-1 || got[0] != string(key(indexKeep)) {
		t.Errorf("after removing the newest: got %d keys starting %s, want %d starting %s", len(got), got[0], indexKeep-1, key(indexKeep))
	}
	s.Close()

	if _, err := Prune(context.Background(), root, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, indexDir, indexName("parent", string(parent)))
	if keys := readIndex(p); len(keys) != indexKeep-1 {
		t.Errorf("index after Prune: %d keys, want %d (the removed record dropped)", len(keys), indexKeep-1)
	}
	if _, err := Prune(context.Background(), root, PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, indexDir)); len(ents) != 0 {
		t.Errorf("index after Prune --all: %d files, want none", len(ents))
	}
}
