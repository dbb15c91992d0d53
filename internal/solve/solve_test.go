package solve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/cache"
	"github.com/kiln-build/kiln/internal/imagetest"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/progress"
)

// twoCopies is a single-stage Dockerfile whose two context files are
// selected by two different COPY steps, each followed by a RUN.
const twoCopies = `FROM scratch
COPY busybox /bin/busybox
` + installBusybox + `
COPY a.txt /a.txt
RUN cat /a.txt > /a.out
COPY b.txt /b.txt
RUN cat /a.out /b.txt > /b.out
`

// multiStage has a builder stage whose output the final stage copies, and
// a RUN on top of that copy.
const multiStage = `FROM scratch AS tools
COPY busybox /bin/busybox
` + installBusybox + `

FROM tools AS builder
COPY app.txt /src/app.txt
RUN tr a-z A-Z < /src/app.txt > /out.txt

FROM tools
COPY --from=builder /out.txt /srv/out.txt
RUN cat /srv/out.txt /srv/out.txt > /srv/twice.txt
`

const (
	copyFromBuilder = "COPY --from=builder /out.txt /srv/out.txt"
	runAfterCopy    = "RUN cat /srv/out.txt /srv/out.txt > /srv/twice.txt"
)

// TestKeysMachineIndependent pins DESIGN.md §3: the same Dockerfile and
// context give the same keys in two fresh state dirs, even from context
// copies at other paths with other owners and mtimes; with SourceDateEpoch
// the layers are byte-identical too.
func TestKeysMachineIndependent(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	files := map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n"}
	ctx1 := writeContext(t, files)
	ctx2 := writeContext(t, files)
	// The second "machine" checked the context out as another user.
	for _, name := range []string{"busybox", "a.txt", "b.txt"} {
		if err := os.Lchown(filepath.Join(ctx2, name), 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	epoch := testEpoch
	res1, b1 := newEnv(t).solveOnce(ctx1, twoCopies, Options{SourceDateEpoch: &epoch})
	res2, b2 := newEnv(t).solveOnce(ctx2, twoCopies, Options{SourceDateEpoch: &epoch})
	for i, b := range []*build{b1, b2} {
		if got := b.stepsBy(progress.StepCached); len(got) != 0 {
			t.Errorf("build %d in a fresh state dir: cached %q, want nothing cached", i+1, got)
		}
	}
	if res1.Key != res2.Key {
		t.Errorf("Result.Key: got %s and %s, want equal", res1.Key, res2.Key)
	}
	if diff := cmp.Diff(layerDigests(t, res1.Layers), layerDigests(t, res2.Layers)); diff != "" {
		t.Errorf("layer digests differ between state dirs (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(keys(res1.Records(cache.ModeMax)), keys(res2.Records(cache.ModeMax))); diff != "" {
		t.Errorf("step keys differ between state dirs (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(res1.History, res2.History); diff != "" {
		t.Errorf("history differs between state dirs (-first +second):\n%s", diff)
	}
}

// TestSecondSolveCached: solving again on the same store hits every step
// locally and gives the same result.
func TestSecondSolveCached(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n", "app.txt": "hello\n"})
	for _, tc := range []struct {
		name string
		df   string
	}{
		{"single stage", twoCopies},
		{"multi-stage", multiStage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			cold, b1 := e.solveOnce(ctxDir, tc.df, Options{})
			want := fsSteps(b1.graph)
			if got := b1.stepsBy(progress.StepDone); !slices.Equal(got, want) {
				t.Errorf("cold build ran %q, want %q", got, want)
			}
			warm, b2 := e.solveOnce(ctxDir, tc.df, Options{})
			if warm.Stats.Cached != warm.Stats.Steps || warm.Stats.Ran != 0 || warm.Stats.Steps != len(want) {
				t.Errorf("warm Stats: got %+v, want all %d steps cached", warm.Stats, len(want))
			}
			if got := b2.stepsBy(progress.StepCached); !slices.Equal(got, want) {
				t.Errorf("warm build: CACHED events for %q, want %q", got, want)
			}
			for text, src := range b2.sources() {
				if src != "local state" {
					t.Errorf("%s: cached from %q, want \"local state\"", text, src)
				}
			}
			if warm.Key != cold.Key {
				t.Errorf("Result.Key: got %s, want %s", warm.Key, cold.Key)
			}
			if diff := cmp.Diff(layerDigests(t, cold.Layers), layerDigests(t, warm.Layers)); diff != "" {
				t.Errorf("layers (-cold +warm):\n%s", diff)
			}
			if diff := cmp.Diff(cold.History, warm.History); diff != "" {
				t.Errorf("history (-cold +warm):\n%s", diff)
			}
		})
	}
}

// TestContextChangeReruns: changing one context file reruns exactly the
// steps from the first COPY that selects it; a file no COPY selects
// reruns nothing. The cases run in order on one state dir, each starting
// from the state the previous one left.
func TestContextChangeReruns(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"})
	e := newEnv(t)
	first, b := e.solveOnce(ctxDir, twoCopies, Options{})
	all := fsSteps(b.graph)
	prevKey := first.Key
	for _, tc := range []struct {
		name, file, data string
		wantRan          []string
	}{
		{"second copy", "b.txt", "beta, longer\n", all[4:]},
		{"first copy", "a.txt", "alpha, longer\n", all[2:]},
		{"unselected file", "c.txt", "gamma, longer\n", nil},
		{"same content again", "a.txt", "alpha, longer\n", nil},
	} {
		writeFile(t, filepath.Join(ctxDir, tc.file), tc.data)
		res, b := e.solveOnce(ctxDir, twoCopies, Options{})
		if got := b.stepsBy(progress.StepDone); !slices.Equal(got, tc.wantRan) {
			t.Errorf("%s: ran %q, want %q", tc.name, got, tc.wantRan)
		}
		if got, want := b.stepsBy(progress.StepCached), all[:len(all)-len(tc.wantRan)]; !slices.Equal(got, want) {
			t.Errorf("%s: cached %q, want %q", tc.name, got, want)
		}
		if changed := res.Key != prevKey; changed != (len(tc.wantRan) > 0) {
			t.Errorf("%s: Result.Key changed = %v, want %v", tc.name, changed, len(tc.wantRan) > 0)
		}
		prevKey = res.Key
	}
}

// TestImport: a fresh state dir that imports another build's max-mode cache
// hits every step from it, lazily: no layer byte is read and none lands in
// the store.
func TestImport(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n", "app.txt": "hello\n"})
	for _, tc := range []struct {
		name string
		df   string
	}{
		{"single stage", twoCopies},
		{"multi-stage", multiStage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cold, _ := newEnv(t).solveOnce(ctxDir, tc.df, Options{})
			const name = "type=test,src=cold"
			imp := importOf(name, cold.Records(cache.ModeMax), cold.Fetcher())
			e2 := newEnv(t)
			warm, b := e2.solveOnce(ctxDir, tc.df, Options{Imports: []Import{imp}})
			want := fsSteps(b.graph)
			if warm.Stats.Cached != warm.Stats.Steps || warm.Stats.Steps != len(want) {
				t.Errorf("Stats: got %+v, want all %d steps cached", warm.Stats, len(want))
			}
			if got := b.stepsBy(progress.StepCached); !slices.Equal(got, want) {
				t.Errorf("CACHED events for %q, want %q", got, want)
			}
			for text, src := range b.sources() {
				if src != name {
					t.Errorf("%s: cached from %q, want %q", text, src, name)
				}
			}
			if warm.Key != cold.Key {
				t.Errorf("Result.Key: got %s, want %s", warm.Key, cold.Key)
			}
			if diff := cmp.Diff(layerDigests(t, cold.Layers), layerDigests(t, warm.Layers)); diff != "" {
				t.Errorf("layers (-cold +warm):\n%s", diff)
			}
			stats := b.s.ImportStats()
			if len(stats) != 1 {
				t.Fatalf("ImportStats: got %d entries, want 1", len(stats))
			}
			if s := stats[0]; s.Source != name || s.Hits != len(want) || s.BytesRead != 0 || s.Direction != progress.DirectionImport {
				t.Errorf("ImportStats: got %+v, want source %q, %d hits, 0 bytes read, import", s, name, len(want))
			}
			for _, d := range layerDigests(t, warm.Layers) {
				if e2.st.HasBlob(d) {
					t.Errorf("layer %s is in the importing store, want it left lazy", d)
				}
			}
			// The lazy layers still read, through the imported cache, and
			// the import remembered them locally: the next build in the
			// importing state dir hits locally without the import.
			for i, l := range warm.Layers {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatalf("layer %d: Compressed: %v", i, err)
				}
				if _, _, err := v1.SHA256(rc); err != nil {
					t.Fatalf("layer %d: reading: %v", i, err)
				}
				rc.Close()
			}
			// Only the target's layers were read; the other stages' blobs
			// were never needed, so their steps rerun.
			inTarget := map[string]bool{}
			for _, e := range warm.Records(cache.ModeMin) {
				inTarget[e.CreatedBy] = true
			}
			again, b3 := e2.solveOnce(ctxDir, tc.df, Options{})
			if again.Key != cold.Key {
				t.Errorf("build after import without it: Key %s, want %s", again.Key, cold.Key)
			}
			for _, step := range want {
				if got := b3.sources()[step]; inTarget[step] && got != "local state" {
					t.Errorf("build after import without it: %s cached from %q, want \"local state\"", step, got)
				}
			}
			for _, step := range b3.stepsBy(progress.StepDone) {
				if inTarget[step] {
					t.Errorf("build after import without it: ran %s, whose layer was fetched", step)
				}
			}
		})
	}
}

// TestEntriesModes: ModeMin holds the target's lineage (its own steps and
// its base stage's), ModeMax every stage's steps; importing only ModeMin
// reruns the builder stage and still hits the final COPY --from by its
// quick key, and everything after it.
func TestEntriesModes(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"app.txt": "hello\n"})
	cold, _ := newEnv(t).solveOnce(ctxDir, multiStage, Options{})

	type entry struct{ Stage, CreatedBy string }
	wantMin := []entry{
		{"tools", "COPY busybox /bin/busybox"},
		{"tools", installBusybox},
		{"stage-2", copyFromBuilder},
		{"stage-2", copyFromBuilder}, // the quick-key alias
		{"stage-2", runAfterCopy},
	}
	wantMax := []entry{
		{"tools", "COPY busybox /bin/busybox"},
		{"tools", installBusybox},
		{"builder", "COPY app.txt /src/app.txt"},
		{"builder", "RUN tr a-z A-Z < /src/app.txt > /out.txt"},
		{"stage-2", copyFromBuilder},
		{"stage-2", copyFromBuilder},
		{"stage-2", runAfterCopy},
	}
	for _, tc := range []struct {
		mode cache.Mode
		want []entry
	}{
		{cache.ModeMin, wantMin},
		{cache.ModeMax, wantMax},
	} {
		var got []entry
		for _, e := range cold.Records(tc.mode) {
			got = append(got, entry{e.Stage, e.CreatedBy})
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Entries(%s) (-want +got):\n%s", tc.mode, diff)
		}
	}
	minEntries := cold.Records(cache.ModeMin)
	checkAlias(t, minEntries)
	if got, want := minEntries[len(minEntries)-1].Layers, cold.Layers; len(got) != len(want) {
		t.Errorf("last ModeMin entry has %d layers, want the target's %d", len(got), len(want))
	}

	const name = "type=test,mode=min"
	warm, b := newEnv(t).solveOnce(ctxDir, multiStage, Options{Imports: []Import{importOf(name, minEntries, cold.Fetcher())}})
	wantRan := []string{"COPY app.txt /src/app.txt", "RUN tr a-z A-Z < /src/app.txt > /out.txt"}
	if got := b.stepsBy(progress.StepDone); !slices.Equal(got, wantRan) {
		t.Errorf("ModeMin import: ran %q, want the builder stage %q", got, wantRan)
	}
	wantCached := []string{"COPY busybox /bin/busybox", installBusybox, copyFromBuilder, runAfterCopy}
	if got := b.stepsBy(progress.StepCached); !slices.Equal(got, wantCached) {
		t.Errorf("ModeMin import: cached %q, want %q", got, wantCached)
	}
	if warm.Key != cold.Key {
		t.Errorf("Result.Key: got %s, want %s", warm.Key, cold.Key)
	}
	if diff := cmp.Diff(keys(minEntries), keys(warm.Records(cache.ModeMin))); diff != "" {
		t.Errorf("ModeMin entries after the import (-cold +warm):\n%s", diff)
	}
}

// checkAlias checks that entries hold exactly one alias (the COPY --from's
// quick key) and that it names a canonical entry with the same layers.
func checkAlias(t *testing.T, entries []cache.Record) {
	t.Helper()
	byKey := map[cache.Key]cache.Record{}
	for _, e := range entries {
		byKey[e.Key] = e
	}
	var aliases int
	for _, e := range entries {
		if e.Canonical == "" {
			continue
		}
		aliases++
		if e.CreatedBy != copyFromBuilder {
			t.Errorf("alias entry for %q, want it for %q only", e.CreatedBy, copyFromBuilder)
		}
		c, ok := byKey[e.Canonical]
		if !ok || c.Canonical != "" || !cmp.Equal(c.Layers, e.Layers) {
			t.Errorf("alias %s names canonical %s, want an entry of that key with the same layers", e.Key, e.Canonical)
		}
	}
	if aliases != 1 {
		t.Errorf("got %d alias entries, want 1", aliases)
	}
}

// TestCopyFromQuickKey: a COPY --from hit found by the quick key (the source
// stage's key) carries the canonical content key, so the steps after it
// get the cold build's keys and hit too; and a source stage rebuilt from a
// changed input with the same output still hits downstream by content.
func TestCopyFromQuickKey(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")

	t.Run("import has the alias only", func(t *testing.T) {
		t.Parallel()
		ctxDir := writeContext(t, map[string]string{"app.txt": "hello\n"})
		cold, _ := newEnv(t).solveOnce(ctxDir, multiStage, Options{})
		// Leave out the COPY --from's canonical record: only its quick key
		// can find it.
		var entries []cache.Record
		for _, e := range cold.Records(cache.ModeMax) {
			if e.CreatedBy == copyFromBuilder && e.Canonical == "" {
				continue
			}
			entries = append(entries, e)
		}
		warm, b := newEnv(t).solveOnce(ctxDir, multiStage, Options{Imports: []Import{importOf("alias-only", entries, cold.Fetcher())}})
		if warm.Stats.Cached != warm.Stats.Steps {
			t.Errorf("Stats: got %+v (ran %q), want every step cached", warm.Stats, b.stepsBy(progress.StepDone))
		}
		if got := b.sources()[runAfterCopy]; got != "alias-only" {
			t.Errorf("%s: cached from %q, want alias-only", runAfterCopy, got)
		}
		if warm.Key != cold.Key {
			t.Errorf("Result.Key: got %s, want the cold build's %s", warm.Key, cold.Key)
		}
	})

	t.Run("rebuilt stage with the same output", func(t *testing.T) {
		t.Parallel()
		r := rebuildSameOutput(t)
		wantRan := []string{"COPY app.txt /src/app.txt", "RUN tr a-z A-Z < /src/app.txt > /out.txt"}
		if got := r.warmBuild.stepsBy(progress.StepDone); !slices.Equal(got, wantRan) {
			t.Errorf("ran %q, want the builder stage %q", got, wantRan)
		}
		for _, step := range []string{copyFromBuilder, runAfterCopy} {
			if got := r.warmBuild.sources()[step]; got != "local state" {
				t.Errorf("%s: cached from %q, want local state", step, got)
			}
		}
		if r.warm.Key != r.cold.Key {
			t.Errorf("Result.Key: got %s, want the cold build's %s", r.warm.Key, r.cold.Key)
		}
		third, _ := r.env.solveOnce(r.ctxDir, multiStage, Options{})
		if third.Stats.Cached != third.Stats.Steps || third.Key != r.cold.Key {
			t.Errorf("third build: Stats %+v, Key %s; want all cached, Key %s", third.Stats, third.Key, r.cold.Key)
		}
	})

	// After a hit by content key, the step is known by the new quick key
	// too (the store records it as an alias); the build's export must carry
	// that alias, or a build importing it has to fetch the builder stage's
	// layers to hash the copied files.
	t.Run("export after a content hit keeps the quick key", func(t *testing.T) {
		t.Parallel()
		r := rebuildSameOutput(t)
		if n := aliases(r.warm.Records(cache.ModeMax)); n != 1 {
			t.Errorf("warm build's ModeMax entries hold %d aliases, want 1 (the new quick key of %s)", n, copyFromBuilder)
		}
		imp := importOf("warm", r.warm.Records(cache.ModeMax), r.warm.Fetcher())
		next, b := newEnv(t).solveOnce(r.ctxDir, multiStage, Options{Imports: []Import{imp}})
		if next.Stats.Cached != next.Stats.Steps {
			t.Errorf("import of the warm build: Stats %+v (ran %q), want all cached", next.Stats, b.stepsBy(progress.StepDone))
		}
		if st := b.s.ImportStats()[0]; st.BytesRead != 0 {
			t.Errorf("import of the warm build read %d bytes, want 0 (COPY --from found by its quick key)", st.BytesRead)
		}
	})
}

// rebuilt is a multi-stage build solved twice on one state dir, the second
// time with a changed builder input that gives the same builder output.
type rebuilt struct {
	env        *env
	ctxDir     string
	cold, warm *Result
	warmBuild  *build
}

func rebuildSameOutput(t *testing.T) *rebuilt {
	t.Helper()
	r := &rebuilt{env: newEnv(t), ctxDir: writeContext(t, map[string]string{"app.txt": "hello\n"})}
	r.cold, _ = r.env.solveOnce(r.ctxDir, multiStage, Options{})
	// tr a-z A-Z makes HELLO of both.
	writeFile(t, filepath.Join(r.ctxDir, "app.txt"), "HELLO\n")
	r.warm, r.warmBuild = r.env.solveOnce(r.ctxDir, multiStage, Options{})
	return r
}

// TestBadBlob: an imported layer whose bytes are needed and cannot be had
// fails the solve with a *BadBlobError; after MarkBad the same solver
// rebuilds that step and succeeds.
func TestBadBlob(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n"})
	epoch := testEpoch
	cold, coldBuild := newEnv(t).solveOnce(ctxDir, twoCopies, Options{SourceDateEpoch: &epoch})
	all := fsSteps(coldBuild.graph)
	// The layer of COPY a.txt; the changed RUN after it needs its bytes.
	top := layerDigests(t, cold.Layers)[2]
	changed := strings.Replace(twoCopies, "RUN cat /a.txt > /a.out", "RUN cat /a.txt /a.txt > /a.out", 1)
	for _, tc := range []struct {
		name      string
		fetcher   cache.Fetcher
		wantIsErr error
	}{
		{"corrupt", corruptFetcher(cold.Fetcher(), top, v1.Hash{}), cache.ErrDigestMismatch},
		{"missing", corruptFetcher(cold.Fetcher(), v1.Hash{}, top), cache.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			imp := Import{Name: tc.name, Manifest: cache.NewManifest(cold.Records(cache.ModeMax)), Fetcher: tc.fetcher}
			e := newEnv(t)
			b := e.newBuild(ctxDir, changed, Options{SourceDateEpoch: &epoch, Imports: []Import{imp}})
			_, err := b.s.Solve(context.Background(), b.graph)
			var bad *BadBlobError
			if !errors.As(err, &bad) {
				t.Fatalf("Solve: got error %v, want a *BadBlobError", err)
			}
			if bad.Digest != top || bad.Source != tc.name {
				t.Errorf("BadBlobError: got digest %s from %q, want %s from %q", bad.Digest, bad.Source, top, tc.name)
			}
			if !errors.Is(err, tc.wantIsErr) {
				t.Errorf("Solve: got %v, want it to wrap %v", err, tc.wantIsErr)
			}
			if e.st.HasBlob(top) {
				t.Errorf("the bad blob %s landed in the store", top)
			}

			b.s.MarkBad(bad.Digest)
			b.events = resetRecorder(b)
			res, err := b.s.Solve(context.Background(), b.graph)
			if err != nil {
				t.Fatalf("Solve after MarkBad: %v", err)
			}
			wantRan := []string{all[2], "RUN cat /a.txt /a.txt > /a.out", all[4], "RUN cat /a.out /b.txt > /b.out"}
			if got := b.stepsBy(progress.StepDone); !slices.Equal(got, wantRan) {
				t.Errorf("after MarkBad: ran %q, want %q", got, wantRan)
			}
			if got := b.stepsBy(progress.StepCached); !slices.Equal(got, all[:2]) {
				t.Errorf("after MarkBad: cached %q, want %q", got, all[:2])
			}
			// The rebuilt layer is byte-identical (SourceDateEpoch), now read
			// from the local store.
			if got := layerDigests(t, res.Layers)[2]; got != top {
				t.Errorf("rebuilt layer: got %s, want %s", got, top)
			}
			rc, err := res.Layers[2].Compressed()
			if err != nil {
				t.Fatalf("rebuilt layer: Compressed: %v", err)
			}
			defer rc.Close()
			if h, _, err := v1.SHA256(rc); err != nil || h != top {
				t.Errorf("rebuilt layer reads as %s, %v; want %s", h, err, top)
			}
		})
	}
}

// resetRecorder gives b's solver a fresh event recorder and returns it.
func resetRecorder(b *build) *progress.Recorder {
	rec := &progress.Recorder{}
	b.s.sink = rec
	return rec
}

// TestConfig: the result's config is the plan's target config, whatever
// mix of config and filesystem steps made it and whether the steps ran or
// hit, and the history has one entry per instruction.
func TestConfig(t *testing.T) {
	t.Parallel()
	imagetest.Require(t, "root", "runc", "busybox")
	ctxDir := writeContext(t, map[string]string{"a.txt": "alpha\n"})
	busybox := imagetest.Busybox(t)
	digest, err := busybox.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := busybox.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(_ context.Context, ref string) (*plan.Image, error) {
		return &plan.Image{Ref: ref, Digest: digest, Config: cf}, nil
	}
	image := func(_ context.Context, pi *plan.Image) (v1.Image, error) {
		if pi.Digest != digest {
			t.Errorf("Image called for %s, want %s", pi.Digest, digest)
		}
		return busybox, nil
	}
	const steps = `ENV A=1 B="two words"
LABEL org.example.first=1
WORKDIR /work
COPY a.txt .
USER 0:0
RUN echo "$A" > a.env
ENV C=3
EXPOSE 8080/tcp
LABEL org.example.second=2
RUN cat a.env a.txt > both
ENTRYPOINT ["/bin/cat"]
CMD ["both"]
STOPSIGNAL SIGTERM
`
	for _, tc := range []struct {
		name      string
		df        string
		resolve   func(context.Context, string) (*plan.Image, error)
		baseLayer int // layers and history entries the base brings
	}{
		{"scratch", "FROM scratch\nCOPY busybox /bin/busybox\n" + installBusybox + "\n" + steps, nil, 0},
		{"image", "FROM example.invalid/busybox:1\n" + steps, resolve, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := planDockerfile(t, tc.df, tc.resolve)
			e := newEnv(t)
			for _, run := range []string{"cold", "cached"} {
				b := e.newBuildPlan(ctxDir, g, Options{Image: image})
				res := b.solve(t)
				if run == "cached" && res.Stats.Cached != res.Stats.Steps {
					t.Errorf("%s: Stats %+v, want every step cached", run, res.Stats)
				}
				if diff := cmp.Diff(g.Target.Config, res.Config); diff != "" {
					t.Errorf("%s: Config (-plan +result):\n%s", run, diff)
				}
				var want []bool // EmptyLayer per history entry
				for range tc.baseLayer {
					want = append(want, false)
				}
				for _, s := range g.Target.Steps {
					want = append(want, s.Kind == plan.KindConfig)
				}
				var got []bool
				for _, h := range res.History {
					got = append(got, h.EmptyLayer)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: history EmptyLayer flags (-want +got):\n%s", run, diff)
				}
				if n := len(res.Layers); n != tc.baseLayer+len(fsSteps(g)) {
					t.Errorf("%s: got %d layers, want %d", run, n, tc.baseLayer+len(fsSteps(g)))
				}
				if tc.baseLayer > 0 {
					bl, _ := imagetest.BusyboxLayer(t).Digest()
					if got := layerDigests(t, res.Layers)[0]; got != bl {
						t.Errorf("%s: base layer %s, want the image's %s", run, got, bl)
					}
				}
			}
		})
	}
}

// aliases counts the alias entries (Canonical set) in entries.
func aliases(entries []cache.Record) int {
	n := 0
	for _, e := range entries {
		if e.Canonical != "" {
			n++
		}
	}
	return n
}

// keys returns the keys of entries.
func keys(entries []cache.Record) []cache.Key {
	out := make([]cache.Key, len(entries))
	for i, e := range entries {
		out[i] = e.Key
	}
	return out
}
