package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/progress"
)

// fakeCache is a cache outside the process (STYLE habit 23): its Import
// and Export do what the test says.
type fakeCache struct {
	importErr, exportErr error
	requests             int64
}

func (f *fakeCache) Import(context.Context) (*cache.Manifest, cache.Fetcher, error) {
	return nil, nil, f.importErr
}

func (f *fakeCache) Export(context.Context, *cache.Manifest, cache.Fetcher) error { return f.exportErr }

// countedCache is a fakeCache that counts its requests.
type countedCache struct{ fakeCache }

func (c *countedCache) Requests() int64 { return c.requests }

// TestSummarySkipsAndJobSummary: every import and export that did not
// happen is in the summary with its reason (a backend's *cache.SkipError,
// ignore-error, an unreadable cache, and what the program noted before the
// build); a backend's request count reaches its row; the job summary is
// appended to, never replaced.
func TestSummarySkipsAndJobSummary(t *testing.T) {
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY a.txt /a.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stepSummary := filepath.Join(t.TempDir(), "summary.md")
	if err := os.WriteFile(stepSummary, []byte("an earlier step's summary\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{
		ContextDir: ctxDir,
		StateDir:   t.TempDir(),
		CacheFrom: []cache.Import{
			{Name: "type=fake,mode=write-only", Importer: &fakeCache{importErr: &cache.SkipError{Reason: "ACTIONS_CACHE_MODE=write"}}},
			{Name: "type=fake,down", Importer: &fakeCache{importErr: errors.New("503 Service Unavailable")}},
		},
		CacheTo: []cache.Export{
			{Name: "type=fake,read-only", Exporter: &fakeCache{exportErr: &cache.SkipError{Reason: "the token cannot write the cache"}}},
			{Name: "type=fake,flaky", Options: cache.ExportOptions{IgnoreError: true}, Exporter: &fakeCache{exportErr: errors.New("quota exceeded")}},
			{Name: "type=fake,counted", Exporter: &countedCache{fakeCache{requests: 5}}},
		},
		Skipped:     []progress.Notice{{Source: "type=gha", Direction: progress.DirectionExport, Reason: "noted by the program"}},
		StepSummary: stepSummary,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []progress.Notice{
		{Source: "type=gha", Direction: "export", Reason: "noted by the program"},
		{Source: "type=fake,mode=write-only", Direction: "import", Reason: "ACTIONS_CACHE_MODE=write"},
		{Source: "type=fake,down", Direction: "import", Reason: "could not be read: 503 Service Unavailable"},
		{Source: "type=fake,read-only", Direction: "export", Reason: "the token cannot write the cache"},
		{Source: "type=fake,flaky", Direction: "export", Reason: "failed, ignored (ignore-error=true): quota exceeded"},
	}
	if diff := cmp.Diff(want, res.Summary.Skipped); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}
	var counted *progress.CacheStat
	for i, c := range res.Summary.Caches {
		if c.Source == "type=fake,counted" {
			counted = &res.Summary.Caches[i]
		}
		if c.Source != "type=fake,counted" && c.Requests != nil {
			t.Errorf("%s: Requests %d, want nil (not counted)", c.Source, *c.Requests)
		}
	}
	if counted == nil || counted.Requests == nil || *counted.Requests != 5 {
		t.Errorf("counted cache stat: got %+v, want 5 requests", counted)
	}
	b, err := os.ReadFile(stepSummary)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	if !strings.HasPrefix(md, "an earlier step's summary\n## kiln build summary\n") {
		t.Errorf("job summary was not appended to:\n%s", md)
	}
	for _, s := range []string{"### Skipped", "the token cannot write the cache", "| `type=fake,counted` | export | – | – | 0 B | 5 |",
		"| #1 | COPY a.txt /a.txt: no earlier record of this step |"} {
		if !strings.Contains(md, s) {
			t.Errorf("job summary lacks %q:\n%s", s, md)
		}
	}
}
