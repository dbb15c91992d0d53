package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// bench runs the builds of every project in a work dir of its own.
type bench struct {
	kiln  string
	work  string
	runs  int
	edits int
	keep  bool // keep state dirs, caches and tarballs
	// latency is added to every registry round trip by the proxy.
	latency time.Duration
	log     io.Writer // kiln's own output
	say     io.Writer // the bench's progress lines
	// problems are things seen in kiln that are not targets (leaked
	// mounts, …); they are reported but do not fail the bench.
	problems []string
}

// A buildFact is what the targets need to know about one build.
type buildFact struct {
	kind   string
	group  int // the run (cold, warm, warm + oci) or the edit number
	ran    int
	cached int
	digest string
}

// build runs one kiln build, then checks that kiln left no mount behind
// and removes the state dir.
func (b *bench) build(ctx context.Context, s buildSpec) (buildResult, error) {
	res, err := runBuild(ctx, b.kiln, s, b.log)
	mps, merr := detachMounts(b.work)
	if len(mps) > 0 {
		b.problem("kiln left %d mount(s) behind after a build (detached by the bench): %s",
			len(mps), strings.Join(mps, ", "))
	}
	if err == nil {
		err = merr
	}
	if !b.keep {
		os.RemoveAll(s.state)
	}
	return res, err
}

func (b *bench) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(b.say, "bench: problem: %s\n", msg)
	b.problems = append(b.problems, msg)
}

// measure builds p runs times cold, warm and warm + oci, then runs the
// cache-size series.
func (b *bench) measure(ctx context.Context, p project) (*projectResult, []buildFact, error) {
	r := newProjectResult(p.name)
	dir := filepath.Join(b.work, p.name)
	ctxDir := filepath.Join(dir, "context")
	if err := writeContext(ctxDir, p); err != nil {
		return nil, nil, err
	}
	var facts []buildFact
	for run := 1; run <= b.runs; run++ {
		rf, err := b.measureRun(ctx, r, ctxDir, filepath.Join(dir, fmt.Sprintf("run-%d", run)), run)
		facts = append(facts, rf...)
		if err != nil {
			return nil, nil, err
		}
	}
	sf, err := b.sizeSeries(ctx, r, p, filepath.Join(dir, "series"))
	facts = append(facts, sf...)
	return r, facts, err
}

// measureRun is one cold build into an empty cache dir, then a warm
// rebuild and a warm rebuild with an OCI output, each in a new state dir.
// The warm + oci build imports a copy of the cache dir taken right after
// the cold build, so what the warm build exported cannot help it.
func (b *bench) measureRun(ctx context.Context, r *projectResult, ctxDir, dir string, run int) ([]buildFact, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	specs := []struct {
		kind string
		spec buildSpec
	}{
		{kindCold, buildSpec{state: "state-cold", cache: "cache", to: true, meta: "cold.json"}},
		{kindWarm, buildSpec{state: "state-warm", cache: "cache", from: true, to: true, meta: "warm.json"}},
		{kindWarmOCI, buildSpec{state: "state-oci", cache: "cache-oci", from: true, to: true, meta: "oci.json", ociDest: "image.tar"}},
	}
	var facts []buildFact
	var line []string
	for _, s := range specs {
		spec := s.spec
		spec.context = ctxDir
		for _, p := range []*string{&spec.state, &spec.cache, &spec.meta, &spec.ociDest} {
			if *p != "" {
				*p = filepath.Join(dir, *p)
			}
		}
		res, err := b.build(ctx, spec)
		if err != nil {
			return facts, fmt.Errorf("%s build of %s, run %d: %w", s.kind, r.name, run, err)
		}
		r.add(s.kind, spec.cache, res)
		facts = append(facts, factOf(s.kind, run, res))
		line = append(line, s.kind+" "+fmtDuration(res.wall))
		if s.kind == kindCold {
			if err := copyDir(spec.cache, filepath.Join(dir, "cache-oci")); err != nil {
				return facts, err
			}
		}
	}
	fmt.Fprintf(b.say, "bench: %s run %d/%d: %s\n", r.name, run, b.runs, strings.Join(line, ", "))
	if !b.keep {
		return facts, os.RemoveAll(dir)
	}
	return facts, nil
}

// copyDir copies the directories and regular files below src to dst (a
// local cache dir holds nothing else).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copying cache dir: %w", err)
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, target, 0o644)
		}
		return fmt.Errorf("copying cache dir: %s is not a regular file", path)
	})
}

// sizeSeries builds p once into an empty cache dir, then b.edits times
// after editing one source file, each time in a new state dir importing
// and exporting the same cache dir, and records the dir's size after each.
func (b *bench) sizeSeries(ctx context.Context, r *projectResult, p project, dir string) ([]buildFact, error) {
	ctxDir, cache := filepath.Join(dir, "context"), filepath.Join(dir, "cache")
	if err := writeContext(ctxDir, p); err != nil {
		return nil, err
	}
	var facts []buildFact
	for n := 0; n <= b.edits; n++ {
		spec := buildSpec{
			context: ctxDir, cache: cache, to: true, from: n > 0,
			state: filepath.Join(dir, fmt.Sprintf("state-%d", n)),
			meta:  filepath.Join(dir, fmt.Sprintf("edit-%d.json", n)),
		}
		edited := "nothing"
		if n > 0 {
			var err error
			if edited, err = editSource(ctxDir, p, n); err != nil {
				return facts, err
			}
		}
		res, err := b.build(ctx, spec)
		if err != nil {
			return facts, fmt.Errorf("cache-size series of %s, build %d: %w", p.name, n, err)
		}
		size, err := dirSize(cache)
		if err != nil {
			return facts, err
		}
		r.sizes = append(r.sizes, size)
		if n > 0 {
			r.add(kindEdit, cache, res)
			facts = append(facts, factOf(kindEdit, n, res))
		}
		fmt.Fprintf(b.say, "bench: %s series %d/%d (edited %s): %s, %d ran, %d cached, cache dir %s\n",
			p.name, n, b.edits, edited, fmtDuration(res.wall), res.md.Summary.Ran, res.md.Summary.Cached, fmtBytes(size))
	}
	if !b.keep {
		return facts, os.RemoveAll(dir)
	}
	return facts, nil
}

func factOf(kind string, group int, res buildResult) buildFact {
	return buildFact{kind: kind, group: group, ran: res.md.Summary.Ran, cached: res.md.Summary.Cached, digest: res.md.Digest}
}

// dirSize is the sum of the apparent sizes of the regular files below dir.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring cache dir: %w", err)
	}
	return total, nil
}

// evaluate holds one project's measurements to the targets:
//   - a warm rebuild (with or without an output) runs no step and gives the
//     cold build's image digest;
//   - a warm rebuild without an output reads no layer bytes (a hit costs no
//     bytes until something needs them, DESIGN §2);
//   - a rebuild after an edit re-runs some steps and reuses others;
//   - the cache dir grows by at most maxGrowth over the series.
func evaluate(r *projectResult, facts []buildFact) []check {
	coldDigest := map[int]string{}
	for _, f := range facts {
		if f.kind == kindCold {
			coldDigest[f.group] = f.digest
		}
	}
	var warm, warmBad, edits, editBad []string
	for _, f := range facts {
		switch f.kind {
		case kindWarm, kindWarmOCI:
			warm = append(warm, f.kind)
			if f.ran != 0 || f.digest != coldDigest[f.group] {
				warmBad = append(warmBad, fmt.Sprintf("%s run %d ran %d step(s), digest %s (cold %s)",
					f.kind, f.group, f.ran, short(f.digest), short(coldDigest[f.group])))
			}
		case kindEdit:
			edits = append(edits, f.kind)
			if f.ran == 0 || f.cached == 0 {
				editBad = append(editBad, fmt.Sprintf("edit %d ran %d and reused %d step(s)", f.group, f.ran, f.cached))
			}
		}
	}
	var read int64
	for _, stats := range r.traffic[kindWarm] {
		for _, s := range stats {
			read = max(read, s.BytesRead)
		}
	}
	g := r.growth()
	return []check{
		{project: r.name, ok: len(warm) > 0 && len(warmBad) == 0, text: fmt.Sprintf("warm rebuilds ran no step and gave the cold digest (%d/%d builds)%s",
			len(warm)-len(warmBad), len(warm), detail(warmBad))},
		{project: r.name, ok: read == 0, text: fmt.Sprintf("a warm rebuild without output read no layer bytes (most read: %s)", fmtBytes(read))},
		{project: r.name, ok: len(edits) > 0 && len(editBad) == 0, text: fmt.Sprintf("each rebuild after an edit re-ran the steps after it and reused the ones before (%d/%d)%s",
			len(edits)-len(editBad), len(edits), detail(editBad))},
		{project: r.name, ok: len(r.sizes) > 1 && g <= maxGrowth, text: fmt.Sprintf("cache dir after %d edited rebuilds / after 1 build = %.2f (target ≤ %.2f)",
			max(len(r.sizes)-1, 0), g, maxGrowth)},
	}
}

// detail lists the first few failures for a check's message.
func detail(bad []string) string {
	const shown = 2
	switch {
	case len(bad) == 0:
		return ""
	case len(bad) > shown:
		return fmt.Sprintf(": %s; and %d more", strings.Join(bad[:shown], "; "), len(bad)-shown)
	}
	return ": " + strings.Join(bad, "; ")
}

// short abbreviates a digest for a message.
func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	if d == "" {
		return "none"
	}
	return d
}
