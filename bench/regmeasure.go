package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// A workflow is one of docker/build-push-action's cache examples, which
// kiln must support as they are written.
type workflow struct {
	name string
	// inline: --cache-to type=inline, the cache rides in the image; else
	// the cache is a separate manifest at REG/app:buildcache, mode=max.
	inline bool
}

var workflows = []workflow{{name: "inline", inline: true}, {name: "registry"}}

// cacheTag is the tag of the repository the workflow's cache is read from.
func (w workflow) cacheTag() string {
	if w.inline {
		return "latest"
	}
	return "buildcache"
}

// args returns the workflow's kiln flags for the repository repo
// (REG/name, without a tag).
func (w workflow) args(repo string) []string {
	image, cache := repo+":latest", repo+":"+w.cacheTag()
	args := []string{"--push", "-t", image, "--cache-from", "type=registry,ref=" + cache}
	if w.inline {
		return append(args, "--cache-to", "type=inline")
	}
	return append(args, "--cache-to", "type=registry,ref="+cache+",mode=max")
}

// regRun is one cold and one warm run of a workflow.
type regRun struct {
	cold, warm             time.Duration
	coldDigest, warmDigest string // from --metadata-file
	tagDigest              string // what REG/app:latest names after the warm run
	warmRan, warmCached    int
	coldTraffic            split
	warmTraffic            split
}

// regResult is every run of one project with one workflow.
type regResult struct {
	project  string
	workflow string
	// minOnly: an inline cache of a multi-stage build, which carries only
	// the final stage (mode=min), so a miss of its targets is a note.
	minOnly bool
	steps   int
	runs    []regRun
}

// registryReport is the registry section of the report.
type registryReport struct {
	skipped string // why the section did not run, if it did not
	version string // docker-registry --version
	latency time.Duration
	results []*regResult
}

// registrySection starts docker-registry and the counting proxy and
// measures both workflows on every project.
func (b *bench) registrySection(ctx context.Context) (*registryReport, []check, error) {
	bin, err := exec.LookPath(registryBinary)
	if err != nil {
		why := registryBinary + " is not installed (Debian: apt-get install docker-registry)"
		fmt.Fprintf(b.say, "bench: registry section skipped: %s\n", why)
		return &registryReport{skipped: why}, nil, nil
	}
	dir := filepath.Join(b.work, "registry")
	reg, err := startRegistry(ctx, bin, filepath.Join(dir, "server"))
	if err != nil {
		return nil, nil, err
	}
	defer reg.stop()
	proxy, err := newCountingProxy(reg.addr, b.latency, b.log)
	if err != nil {
		return nil, nil, err
	}
	defer proxy.close()
	// An empty docker config: no credentials of the host are used.
	dockerConfig := filepath.Join(dir, "docker-config")
	if err := os.MkdirAll(dockerConfig, 0o755); err != nil {
		return nil, nil, err
	}
	rb := &regBench{bench: b, proxy: proxy, env: []string{"DOCKER_CONFIG=" + dockerConfig},
		client: registryClient{addr: reg.addr, client: &http.Client{Timeout: time.Minute}}}
	report := &registryReport{version: reg.version, latency: b.latency}
	var checks []check
	for _, p := range projects() {
		pdir := filepath.Join(dir, p.name)
		ctxDir := filepath.Join(pdir, "context")
		if err := writeContext(ctxDir, p); err != nil {
			return nil, nil, err
		}
		var results []*regResult
		for _, w := range workflows {
			results = append(results, &regResult{project: p.name, workflow: w.name, minOnly: w.inline && isMultiStage(p)})
		}
		for run := 1; run <= b.runs; run++ {
			var line []string
			for i, w := range workflows {
				rr, err := rb.measureRun(ctx, p, w, ctxDir, filepath.Join(pdir, fmt.Sprintf("run-%d", run), w.name), run)
				if err != nil {
					return nil, nil, err
				}
				results[i].runs = append(results[i].runs, rr.run)
				results[i].steps = max(results[i].steps, rr.steps)
				line = append(line, fmt.Sprintf("%s cold %s, warm %s", w.name, fmtDuration(rr.run.cold), fmtDuration(rr.run.warm)))
			}
			fmt.Fprintf(b.say, "bench: registry %s run %d/%d: %s\n", p.name, run, b.runs, strings.Join(line, "; "))
			if !b.keep {
				os.RemoveAll(filepath.Join(pdir, fmt.Sprintf("run-%d", run)))
			}
		}
		for _, r := range results {
			checks = append(checks, evaluateRegistry(r)...)
		}
		report.results = append(report.results, results...)
	}
	return report, checks, nil
}

// isMultiStage reports whether p's Dockerfile has more than one FROM.
func isMultiStage(p project) bool {
	n := 0
	for _, line := range strings.Split(p.files["Dockerfile"], "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "FROM") {
			n++
		}
	}
	return n > 1
}

// regBench runs the builds of the registry section.
type regBench struct {
	*bench
	proxy  *countingProxy
	client registryClient
	env    []string
}

type regRunResult struct {
	run   regRun
	steps int
}

// measureRun runs workflow w on p twice, each in a new empty state dir,
// pushing to a repository no earlier run used: cold (the repository is
// empty) and warm (its --cache-from finds what the cold run pushed).
func (rb *regBench) measureRun(ctx context.Context, p project, w workflow, ctxDir, dir string, run int) (regRunResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return regRunResult{}, err
	}
	repo := fmt.Sprintf("%s-%s-%d/app", p.name, w.name, run)
	spec := func(kind string) buildSpec {
		return buildSpec{
			context: ctxDir, env: rb.env,
			state: filepath.Join(dir, "state-"+kind),
			meta:  filepath.Join(dir, kind+".json"),
			extra: w.args(rb.proxy.addr + "/" + repo),
		}
	}
	// layers is every layer digest of the image and cache manifests the
	// runs pushed; the traffic to other blobs is configs.
	layers := map[string]bool{}
	pushed := func() (string, error) {
		tag, err := rb.client.layers(ctx, repo, "latest", layers)
		if err == nil && !w.inline {
			_, err = rb.client.layers(ctx, repo, w.cacheTag(), layers)
		}
		return tag, err
	}
	var out regRunResult
	for _, kind := range []string{kindCold, kindWarm} {
		rb.proxy.reset()
		res, err := rb.build(ctx, spec(kind))
		if err != nil {
			return out, fmt.Errorf("registry %s, %s %s build, run %d: %w", w.name, p.name, kind, run, err)
		}
		t := rb.proxy.snapshot()
		tag, err := pushed()
		if err != nil {
			return out, fmt.Errorf("registry %s, %s %s build, run %d: %w", w.name, p.name, kind, run, err)
		}
		out.steps = max(out.steps, res.md.Summary.Steps)
		if kind == kindCold {
			out.run.cold, out.run.coldDigest, out.run.coldTraffic = res.wall, res.md.Digest, t.splitBy(layers)
			continue
		}
		out.run.warm, out.run.warmDigest, out.run.tagDigest = res.wall, res.md.Digest, tag
		out.run.warmRan, out.run.warmCached = res.md.Summary.Ran, res.md.Summary.Cached
		out.run.warmTraffic = t.splitBy(layers)
	}
	return out, nil
}

// evaluateRegistry holds one project and workflow to the targets:
//   - the warm run ran no step and pushed the cold run's digest (which the
//     tag names);
//   - the warm run downloaded no layer blob (a hit costs no bytes until
//     something needs its contents, DESIGN §2).
//
// For an inline cache of a multi-stage build (minOnly) a miss is a note:
// inline cache is mode=min and holds only the final stage.
func evaluateRegistry(r *regResult) []check {
	name := r.project + " " + r.workflow
	var bad, layerBad []string
	var most int64
	same := 0 // runs whose warm push gave the cold digest
	for i, run := range r.runs {
		if run.warmRan != 0 || run.warmDigest != run.coldDigest || run.tagDigest != run.warmDigest {
			bad = append(bad, fmt.Sprintf("run %d ran %d step(s), pushed %s (cold %s, tag %s)",
				i+1, run.warmRan, short(run.warmDigest), short(run.coldDigest), short(run.tagDigest)))
		}
		if run.warmDigest == run.coldDigest && run.tagDigest == run.warmDigest {
			same++
		}
		if n := run.warmTraffic.downLayers; n != 0 {
			layerBad = append(layerBad, fmt.Sprintf("run %d: %s", i+1, fmtBytes(n)))
			most = max(most, n)
		}
	}
	n := len(r.runs)
	steps := check{project: name, ok: n > 0 && len(bad) == 0, note: r.minOnly,
		text: fmt.Sprintf("warm run ran no step and pushed the cold digest (%d/%d runs)%s", n-len(bad), n, detail(bad))}
	if r.minOnly && !steps.ok && n > 0 {
		steps.text = fmt.Sprintf("warm run ran %d of %d steps (median) and pushed the cold digest in %d/%d runs: "+
			"inline cache is mode=min, so only the final stage is cached and the earlier stages are built again "+
			"(type=registry,mode=max caches them); a COPY --from of their output hits only if they rebuild to the same bytes, "+
			"which random data never does (not a target)",
			regMedian(r.runs, func(x regRun) int { return x.warmRan }), r.steps, same, n)
	}
	return []check{steps, {project: name, ok: n > 0 && len(layerBad) == 0, note: r.minOnly,
		text: fmt.Sprintf("warm run downloaded 0 layer-blob bytes (most: %s)%s", fmtBytes(most), detail(layerBad))}}
}

// median of one field over the runs.
func regMedian[T ~int | ~int64](runs []regRun, f func(regRun) T) T {
	xs := make([]T, 0, len(runs))
	for _, r := range runs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

// writeRegistrySection prints the registry section of the report.
func writeRegistrySection(w io.Writer, rr *registryReport) {
	fmt.Fprintf(w, "\n### Registry cache (build-push-action workflows)\n\n")
	if rr == nil {
		return
	}
	if rr.skipped != "" {
		fmt.Fprintf(w, "Skipped: %s.\n", rr.skipped)
		return
	}
	fmt.Fprintf(w, "- registry: %s on 127.0.0.1, filesystem storage in the work dir, behind a counting reverse proxy; "+
		"a new repository REG/app for every project, workflow and run\n", rr.version)
	if rr.latency > 0 {
		fmt.Fprintf(w, "- latency: the proxy waits %s before it forwards each request (and answers each HTTPS attempt), as a registry far away would\n", rr.latency)
	}
	for _, wf := range workflows {
		fmt.Fprintf(w, "- %s: `%s`\n", wf.name, strings.Join(wf.args("REG/app"), " "))
	}
	fmt.Fprintf(w, "\n%s", registryTimeTable(rr.results))
	fmt.Fprintf(w, "\ncold: empty state dir, empty repository. warm: a new empty state dir, same context, "+
		"the same workflow again (its --cache-from finds what the cold run pushed). "+
		"hits / ran: the warm run's cached and executed steps.\n")
	fmt.Fprintf(w, "\n#### Registry traffic (counted by the proxy, median)\n\n%s", registryTrafficTable(rr.results))
	fmt.Fprintf(w, "\nwarm requests: round trips to the registry (HTTP requests, and HTTPS attempts before the fallback to HTTP); "+
		"warm depth: the longest chain of them each sent after the one before it was answered (the build waits at least depth × latency). ")
	fmt.Fprintf(w, "down: GET response bodies of blobs and manifests; up: POST, PATCH and PUT request bodies. "+
		"layers: blobs listed as layers in the pushed image or cache manifest; the rest is manifests and configs.\n")
}

func registryTimeTable(results []*regResult) string {
	var rows [][]string
	for _, r := range results {
		cold := regMedian(r.runs, func(x regRun) int64 { return int64(x.cold) })
		warm := regMedian(r.runs, func(x regRun) int64 { return int64(x.warm) })
		rows = append(rows, []string{
			r.project, r.workflow, fmt.Sprint(r.steps),
			fmtDuration(time.Duration(cold)), fmtDuration(time.Duration(warm)),
			fmtRatio(ratio(float64(cold), float64(warm))),
			fmt.Sprintf("%d / %d", regMedian(r.runs, func(x regRun) int { return x.warmCached }),
				regMedian(r.runs, func(x regRun) int { return x.warmRan })),
		})
	}
	return markdownTable(
		[]string{"project", "workflow", "steps", "cold", "warm", "cold/warm", "warm hits / ran"},
		[]bool{false, false, true, true, true, true, true}, rows)
}

func registryTrafficTable(results []*regResult) string {
	var rows [][]string
	for _, r := range results {
		med := func(f func(split) int64) string {
			return fmtBytes(regMedian(r.runs, func(x regRun) int64 { return f(x.warmTraffic) }))
		}
		rows = append(rows, []string{
			r.project, r.workflow,
			fmtBytes(regMedian(r.runs, func(x regRun) int64 { return x.coldTraffic.up() })),
			fmt.Sprint(regMedian(r.runs, func(x regRun) int { return x.warmTraffic.requests })),
			fmt.Sprint(regMedian(r.runs, func(x regRun) int { return x.warmTraffic.depth })),
			med(func(s split) int64 { return s.downLayers }),
			med(func(s split) int64 { return s.downOther }),
			med(func(s split) int64 { return s.upLayers }),
			med(func(s split) int64 { return s.upOther }),
		})
	}
	return markdownTable(
		[]string{"project", "workflow", "cold up", "warm requests", "warm depth", "warm down: layers", "warm down: manifests + configs",
			"warm up: layers", "warm up: manifests + configs"},
		[]bool{false, false, true, true, true, true, true, true, true}, rows)
}
