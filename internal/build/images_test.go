package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/remote"
)

// TestPrefetchResolvesFromsConcurrently: the images of a Dockerfile's
// FROM lines are asked for together: the registry holds every manifest
// request until both have arrived, which a resolution one after the other
// never gets past.
func TestPrefetchResolvesFromsConcurrently(t *testing.T) {
	var mu sync.Mutex
	arrived := map[string]bool{}
	both := make(chan struct{})
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") && r.Header.Get("X-Test-Setup") == "" {
			mu.Lock()
			arrived[r.URL.Path] = true
			if len(arrived) == 2 {
				close(both)
			}
			mu.Unlock()
			select {
			case <-both:
			case <-time.After(5 * time.Second):
				http.Error(w, "the other FROM never came", http.StatusServiceUnavailable)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, repo := range []string{"one", "two"} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		imagetest.Push(t, img, host+"/"+repo+":1")
	}
	mu.Lock()
	arrived = map[string]bool{} // the pushes do not count
	mu.Unlock()

	client, err := remote.New(remote.Options{RetryMaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	df := []byte("FROM " + host + "/one:1 AS a\nRUN true\nFROM " + host + "/two:1\nCOPY --from=a /x /x\n")
	im := newImages(client)
	ctx := context.Background()
	hp := plan.HostPlatform()
	im.prefetch(ctx, Options{ContextDir: t.TempDir()}, df, "Dockerfile", []v1.Platform{hp})
	for _, ref := range []string{host + "/one:1", host + "/two:1"} {
		pi, err := im.resolve(ctx, ref, hp)
		if err != nil {
			t.Fatalf("resolving %s: %v", ref, err)
		}
		if pi.Digest.Hex == "" || pi.Config == nil {
			t.Fatalf("resolving %s: no digest or config", ref)
		}
	}
	select {
	case <-both:
	default:
		t.Fatal("the two FROM images were not asked for together")
	}
}

// barrierImporter's Import waits until every importer of its group has
// started, then fails (a miss) or answers an empty manifest.
type barrierImporter struct {
	wg   *sync.WaitGroup
	miss bool
}

func (b barrierImporter) Import(ctx context.Context) (*cache.Manifest, cache.Fetcher, error) {
	b.wg.Done()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return nil, nil, errors.New("the other import never started")
	}
	if b.miss {
		return nil, nil, fmt.Errorf("nothing there: %w", cache.ErrNotFound)
	}
	return &cache.Manifest{}, nil, nil
}

// TestImportsRunConcurrently: every --cache-from is imported at once, and
// the results and warnings come in the order given.
func TestImportsRunConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(3)
	opts := Options{CacheFrom: []cache.Import{
		{Name: "first", Importer: barrierImporter{wg: &wg}},
		{Name: "second", Importer: barrierImporter{wg: &wg, miss: true}},
		{Name: "third", Importer: barrierImporter{wg: &wg}},
	}}
	sink := &eventList{}
	imports, skipped := startImports(context.Background(), opts)(sink)
	events := sink.events
	if len(imports) != 2 || imports[0].Name != "first" || imports[1].Name != "third" {
		t.Fatalf("imports %+v, want first and third in order", imports)
	}
	if len(skipped) != 1 || skipped[0].Source != "second" || skipped[0].Reason != "nothing to import yet" {
		t.Fatalf("skipped %+v, want second as nothing to import yet", skipped)
	}
	if len(events) != 1 || !strings.Contains(events[0].Message, "cache second: nothing to import yet") {
		t.Fatalf("events %+v", events)
	}
}

type eventList struct{ events []progress.Event }

func (l *eventList) Emit(e progress.Event) { l.events = append(l.events, e) }
