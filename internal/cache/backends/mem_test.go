package backends

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/cache/cachetest"
)

// memBackend is a whole backend defined in a test file: type=mem keeps
// caches in memory by name. Registering it is the one line in
// TestTestBackend, and it passes the conformance suite, which is the proof
// that adding a backend needs nothing outside its own code.
func memBackend(stores *sync.Map) cache.Backend {
	parse := func(a *cache.Attrs) memConfig {
		return memConfig{name: a.Required("name"), stores: stores}
	}
	return cache.Backend{
		Type:        "mem",
		ParseImport: func(a *cache.Attrs) (cache.ImportConfig, error) { return parse(a), nil },
		ParseExport: func(a *cache.Attrs) (cache.ExportConfig, error) { return parse(a), nil },
	}
}

type memConfig struct {
	name   string
	stores *sync.Map
}

func (c memConfig) store() *memStore {
	s, _ := c.stores.LoadOrStore(c.name, &memStore{blobs: map[v1.Hash][]byte{}})
	return s.(*memStore)
}

func (c memConfig) NewImporter(cache.Deps) (cache.Importer, error) {
	return cache.NewImporter(c.store()), nil
}

func (c memConfig) NewExporter(cache.Deps) (cache.Exporter, error) {
	return cache.NewExporter(c.store()), nil
}

// memStore is the blob core of type=mem.
type memStore struct {
	mu    sync.Mutex
	blobs map[v1.Hash][]byte
	root  []byte
}

var _ cache.BlobStore = (*memStore)(nil)

func (s *memStore) Fetch(_ context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, cache.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memStore) Has(_ context.Context, desc v1.Descriptor) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blobs[desc.Digest]
	return ok, nil
}

func (s *memStore) Put(_ context.Context, desc v1.Descriptor, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[desc.Digest] = b
	return nil
}

func (s *memStore) Root(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil, cache.ErrNotFound
	}
	return s.root, nil
}

func (s *memStore) SetRoot(_ context.Context, m []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.root = append([]byte(nil), m...)
	return nil
}

func (s *memStore) corrupt(h v1.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := append([]byte(nil), s.blobs[h]...)
	b[len(b)/2] ^= 0xff
	s.blobs[h] = b
}

func TestTestBackend(t *testing.T) {
	stores := &sync.Map{}
	table := cache.NewTable(cache.Deps{}, append(All(), memBackend(stores))...)
	var n atomic.Int64
	cachetest.Run(t, func(t *testing.T) cachetest.Location {
		name := fmt.Sprintf("c%d", n.Add(1))
		return cachetest.Location{
			Table:  table,
			Import: "type=mem,name=" + name,
			Export: "type=mem,name=" + name,
			Corrupt: func(t *testing.T, h v1.Hash) {
				memConfig{name: name, stores: stores}.store().corrupt(h)
			},
		}
	})
	if _, err := table.ParseExports([]string{"type=mem"}); err == nil {
		t.Error("type=mem without name= parsed")
	}
}
