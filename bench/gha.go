package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"time"
)

// ghaToken is the bearer token of the bench's own cache server (a local,
// throwaway secret that never leaves the machine).
const ghaToken = "kiln-bench-gha"

// ghaRun is one cold export and one warm import through the cache server.
type ghaRun struct {
	cold, warm             time.Duration
	coldDigest, warmDigest string
	warmRan                int
	coldRequests           int
	warmRequests           int
}

// ghaResult is every run of one project over one API version.
type ghaResult struct {
	project string
	version int
	runs    []ghaRun
}

// ghaReport is the gha section of the report.
type ghaReport struct {
	skipped string
	results []*ghaResult
}

// ghaSection starts `kiln cache-server` (of the kiln under test) behind
// the counting proxy and, for every project and both APIs, times a cold
// build that exports type=gha,mode=max and a warm build in a fresh state
// dir that imports it, counting the HTTP requests of each.
func (b *bench) ghaSection(ctx context.Context) (*ghaReport, []check, error) {
	dir := filepath.Join(b.work, "gha")
	report := &ghaReport{}
	var checks []check
	for _, version := range []int{1, 2} {
		srv, err := startCacheServer(ctx, b.kiln, filepath.Join(dir, fmt.Sprintf("server-v%d", version)), b.log)
		if err != nil {
			return nil, nil, err
		}
		proxy, err := newCountingProxy(srv.addr, 0, b.log)
		if err != nil {
			srv.stop()
			return nil, nil, err
		}
		base := "http://" + proxy.addr + "/"
		env := []string{"ACTIONS_RUNTIME_TOKEN=" + ghaToken, "ACTIONS_CACHE_URL=" + base, "ACTIONS_RESULTS_URL=", "ACTIONS_CACHE_SERVICE_V2="}
		if version == 2 {
			env = []string{"ACTIONS_RUNTIME_TOKEN=" + ghaToken, "ACTIONS_CACHE_URL=", "ACTIONS_RESULTS_URL=" + base, "ACTIONS_CACHE_SERVICE_V2=true"}
		}
		for _, p := range projects() {
			r, err := b.ghaProject(ctx, p, version, proxy, env, filepath.Join(dir, fmt.Sprintf("%s-v%d", p.name, version)))
			if err != nil {
				proxy.close()
				srv.stop()
				return nil, nil, err
			}
			report.results = append(report.results, r)
			checks = append(checks, evaluateGHA(r)...)
		}
		proxy.close()
		srv.stop()
	}
	return report, checks, nil
}

func (b *bench) ghaProject(ctx context.Context, p project, version int, proxy *countingProxy, env []string, dir string) (*ghaResult, error) {
	ctxDir := filepath.Join(dir, "context")
	if err := writeContext(ctxDir, p); err != nil {
		return nil, err
	}
	r := &ghaResult{project: p.name, version: version}
	for run := 1; run <= b.runs; run++ {
		scope := fmt.Sprintf("bench-%s-%d", p.name, run)
		spec := func(kind, flag, value string) buildSpec {
			return buildSpec{context: ctxDir, env: append(env, "SOURCE_DATE_EPOCH=1700000000"),
				state: filepath.Join(dir, fmt.Sprintf("state-%s-%d", kind, run)),
				meta:  filepath.Join(dir, fmt.Sprintf("%s-%d.json", kind, run)),
				extra: []string{flag, value}}
		}
		var g ghaRun
		proxy.reset()
		cold, err := b.build(ctx, spec(kindCold, "--cache-to", "type=gha,mode=max,scope="+scope))
		if err != nil {
			return nil, fmt.Errorf("gha v%d, %s cold build, run %d: %w", version, p.name, run, err)
		}
		g.cold, g.coldDigest, g.coldRequests = cold.wall, cold.md.Digest, proxy.snapshot().requests
		proxy.reset()
		warm, err := b.build(ctx, spec(kindWarm, "--cache-from", "type=gha,scope="+scope))
		if err != nil {
			return nil, fmt.Errorf("gha v%d, %s warm build, run %d: %w", version, p.name, run, err)
		}
		g.warm, g.warmDigest, g.warmRequests = warm.wall, warm.md.Digest, proxy.snapshot().requests
		g.warmRan = warm.md.Summary.Ran
		r.runs = append(r.runs, g)
		fmt.Fprintf(b.say, "bench: gha v%d %s run %d/%d: cold %s (%d requests), warm %s (%d requests)\n",
			version, p.name, run, b.runs, fmtDuration(g.cold), g.coldRequests, fmtDuration(g.warm), g.warmRequests)
	}
	return r, nil
}

// ghaWarmRequests is what a warm full-hit import may cost: the lookup of
// the scope's newest manifest, the lookup that no newer one exists, and
// its download. No request per blob.
const ghaWarmRequests = 3

// evaluateGHA holds one project and API to the targets: the warm build
// ran nothing, gave the cold build's digest, and made at most
// ghaWarmRequests requests.
func evaluateGHA(r *ghaResult) []check {
	name := fmt.Sprintf("%s gha v%d", r.project, r.version)
	var ran, digest, reqs []string
	for i, g := range r.runs {
		if g.warmRan != 0 {
			ran = append(ran, fmt.Sprintf("run %d ran %d", i+1, g.warmRan))
		}
		if g.warmDigest != g.coldDigest {
			digest = append(digest, fmt.Sprintf("run %d: %s vs %s", i+1, short(g.warmDigest), short(g.coldDigest)))
		}
		if g.warmRequests > ghaWarmRequests {
			reqs = append(reqs, fmt.Sprintf("run %d: %d", i+1, g.warmRequests))
		}
	}
	return []check{
		{project: name, ok: len(ran) == 0, text: "warm build from the gha cache runs no step" + detail(ran)},
		{project: name, ok: len(digest) == 0, text: "warm build gives the cold build's digest" + detail(digest)},
		{project: name, ok: len(reqs) == 0, text: fmt.Sprintf("warm full-hit import makes at most %d requests", ghaWarmRequests) + detail(reqs)},
	}
}

// writeGHASection prints the gha section: median times and request counts.
func writeGHASection(w io.Writer, gr *ghaReport) {
	fmt.Fprintf(w, "\n## GitHub Actions cache (kiln cache-server on loopback)\n\n")
	if gr.skipped != "" {
		fmt.Fprintf(w, "Skipped: %s.\n", gr.skipped)
		return
	}
	fmt.Fprintf(w, "Cold: a fresh state dir builds and exports `type=gha,mode=max`; warm: another fresh state dir imports it (`--cache-from type=gha`). Medians of %d runs; requests are counted at a proxy in front of the server.\n\n", len(gr.results[0].runs))
	var rows [][]string
	for _, r := range gr.results {
		med := func(f func(ghaRun) time.Duration) time.Duration {
			var xs []int64
			for _, g := range r.runs {
				xs = append(xs, int64(f(g)))
			}
			return time.Duration(median(xs))
		}
		medInt := func(f func(ghaRun) int) int {
			var xs []int
			for _, g := range r.runs {
				xs = append(xs, f(g))
			}
			return median(xs)
		}
		rows = append(rows, []string{r.project, fmt.Sprintf("v%d", r.version),
			fmtDuration(med(func(g ghaRun) time.Duration { return g.cold })),
			fmt.Sprint(medInt(func(g ghaRun) int { return g.coldRequests })),
			fmtDuration(med(func(g ghaRun) time.Duration { return g.warm })),
			fmt.Sprint(medInt(func(g ghaRun) int { return g.warmRequests })),
		})
	}
	fmt.Fprint(w, markdownTable([]string{"project", "API", "cold + export", "cold requests", "warm from gha", "warm requests"},
		[]bool{false, false, true, true, true, true}, rows))
}

// cacheServer is a running `kiln cache-server`.
type cacheServer struct {
	addr string
	cmd  *exec.Cmd
}

// startCacheServer starts kiln's cache server over dir on a free loopback
// port and waits until it listens.
func startCacheServer(ctx context.Context, kiln, dir string, log io.Writer) (*cacheServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &cacheServer{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.cmd = exec.CommandContext(ctx, kiln, "cache-server", "--listen", s.addr, "--dir", dir, "--token", ghaToken)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting kiln cache-server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("kiln cache-server did not listen on %s: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *cacheServer) stop() {
	if s.cmd.Process != nil {
		stopProcess(s.cmd, 10*time.Second)
	}
}
