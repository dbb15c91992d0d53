package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The -compare mode: kiln against BuildKit (buildkitd + buildctl, built
// from the Go module proxy, see the Makefile's conformance target) on the
// same machine, registry and projects, the two run alternately, medians of
// -runs. Every build pushes its image; a warm build is a brand-new state
// dir (for BuildKit: a daemon pruned of everything) importing the cache.

// A cproject is a build context of the -compare mode.
type cproject struct {
	name string
	// files maps a context-relative path to its contents (busybox is
	// always added).
	files map[string]string
	// gen writes the generated part of the context (big files), if any.
	gen func(dir string) error
	// note says what the project is, for the report.
	note string
}

const bigContextDockerfile = `# kiln bench "bigcontext": a context of 5,000 files, 200 MB.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
WORKDIR /app
COPY data/ ./data/
RUN find data -type f | wc -l > COUNT
`

// compareProjects returns the -compare projects; scale adds the 50-step,
// 20,000-file and 1 GB cases.
func compareProjects(scale bool) []cproject {
	small, multi := smallProject(), multiStageProject()
	out := []cproject{
		{name: "small", files: small.files, note: "3 RUN, 3 COPY (one stage)"},
		{name: "multistage", files: multi.files, note: "deps -> build -> final, ~30 MB of deps"},
		{name: "bigcontext", files: map[string]string{"Dockerfile": bigContextDockerfile},
			gen:  func(dir string) error { return randomFiles(filepath.Join(dir, "data"), 5000, 40<<10) },
			note: "COPY of 5,000 files, 200 MB"},
		{name: "bigcontext-empty", files: map[string]string{"Dockerfile": bigContextDockerfile, "data/.keep": ""},
			note: "bigcontext's Dockerfile, empty data/"},
	}
	if scale {
		var b strings.Builder
		b.WriteString("# kiln bench \"steps50\": 50 steps.\nFROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n")
		for i := 3; i <= 50; i++ {
			fmt.Fprintf(&b, "RUN echo step %d > /step-%02d\n", i, i)
		}
		out = append(out,
			cproject{name: "steps50", files: map[string]string{"Dockerfile": b.String()}, note: "COPY, then 49 RUN"},
			cproject{name: "files20k", files: map[string]string{"Dockerfile": strings.ReplaceAll(bigContextDockerfile, "5,000 files, 200 MB", "20,000 files, 80 MB")},
				gen:  func(dir string) error { return randomFiles(filepath.Join(dir, "data"), 20000, 4<<10) },
				note: "COPY of 20,000 files, 80 MB"},
			cproject{name: "layer1g", files: map[string]string{"Dockerfile": "# kiln bench \"layer1g\": one 1 GB layer.\nFROM scratch\nCOPY busybox /bin/busybox\n" +
				"RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN dd if=/dev/urandom of=/big bs=1M count=1024 2>/dev/null\n"},
				note: "a RUN that writes 1 GB of random bytes"},
		)
	}
	return out
}

// randomFiles writes n files of size random bytes under dir, 100 to a
// directory.
func randomFiles(dir string, n, size int) error {
	buf := make([]byte, size)
	for i := range n {
		rand.Read(buf)
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeCProject(dir string, p cproject) error {
	if err := writeContext(dir, project{name: p.name, files: p.files}); err != nil {
		return err
	}
	if p.gen != nil {
		return p.gen(dir)
	}
	return nil
}

// A cflow is one column of the comparison.
type cflow struct {
	name     string
	registry bool // the cache is in the registry (else a local dir)
	warm     bool
}

var cflows = []cflow{
	{"cold + registry export", true, false}, {"warm from registry", true, true},
	{"cold + local export", false, false}, {"warm from local", false, true},
}

// A cbuild is one timed build.
type cbuild struct {
	wall     time.Duration
	rss      int64 // peak RSS in bytes (kiln only)
	requests int
	depth    int
	ran      int // steps executed (kiln only; -1 unknown)
	retried  bool
	// runExec is the time kiln's executed RUN steps spent in their exec
	// phase (cold kiln builds only, from --debug), or BuildKit's RUN
	// vertices took (cold BuildKit builds only, from rawjson progress);
	// -1 unknown.
	runExec time.Duration
}

// cresult is every run of one project: [flow][tool] builds.
type cresult struct {
	project cproject
	builds  [4][2][]cbuild
	// floor and floorBytes are hashFloor of a generated context (0 for
	// the others).
	floor      time.Duration
	floorBytes int64
	floorRuns  int
}

// buildkitd is a running buildkitd on a private socket.
type buildkitd struct {
	bin, ctl string
	addr     string
	cmd      *exec.Cmd
	version  string
}

func startBuildkitd(ctx context.Context, dir, binDir, registry string) (*buildkitd, error) {
	bk := &buildkitd{bin: filepath.Join(binDir, "buildkitd"), ctl: filepath.Join(binDir, "buildctl")}
	for _, p := range []string{bk.bin, bk.ctl} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, fmt.Errorf("-buildkit %s: %w (make conformance builds buildkitd and buildctl there)", binDir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("[worker.oci]\n  enabled = true\n  gc = false\n[worker.containerd]\n  enabled = false\n[registry.%q]\n  http = true\n  insecure = true\n", registry)
	cfgPath := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "buildkitd.sock")
	bk.addr = "unix://" + sock
	logf, err := os.Create(filepath.Join(dir, "buildkitd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	bk.cmd = exec.Command(bk.bin, "--config", cfgPath, "--root", filepath.Join(dir, "root"), "--addr", bk.addr, "--oci-worker-net", "host")
	bk.cmd.Stdout, bk.cmd.Stderr = logf, logf
	if err := bk.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	bk.version = firstLine(ctx, bk.bin, "--version")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			if exec.CommandContext(ctx, bk.ctl, "--addr", bk.addr, "debug", "workers").Run() == nil {
				return bk, nil
			}
		}
		if time.Now().After(deadline) {
			bk.stop()
			b, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("buildkitd did not start:\n%s", tail(string(b), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (bk *buildkitd) stop() { stopProcess(bk.cmd, 15*time.Second) }

// stopProcess interrupts a started cmd and waits for it, killing it after
// grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// run runs buildctl with args and returns its wall time and its output
// (stdout and stderr).
func (bk *buildkitd) run(ctx context.Context, log io.Writer, args ...string) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bk.ctl, append([]string{"--addr", bk.addr}, args...)...)
	cmd.Stdout = io.MultiWriter(&out, log)
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return 0, "", fmt.Errorf("buildctl %s: %w\n%s", strings.Join(args, " "), err, buildctlTail(out.String(), 20))
	}
	return wall, out.String(), nil
}

// compareBench runs the -compare mode.
type compareBench struct {
	*bench
	proxy *countingProxy
	bk    *buildkitd // nil: kiln only
	env   []string
}

// compareMode measures every project in every flow with kiln and (with
// -buildkit) BuildKit, alternately, and prints the tables.
func compareMode(ctx context.Context, o options) (int, error) {
	if err := checkMachine(); err != nil {
		return 2, err
	}
	bin, err := exec.LookPath(registryBinary)
	if err != nil {
		return 2, errors.New("-compare needs docker-registry (Debian: apt-get install docker-registry)")
	}
	work, err := os.MkdirTemp(o.dir, "kiln-bench-compare-")
	if err != nil {
		return 2, err
	}
	if work, err = filepath.Abs(work); err != nil {
		return 2, err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(os.Stderr, "bench: kept %s\n", work)
			return
		}
		detachMounts(work)
		os.RemoveAll(work)
	}()
	kiln, err := findKiln(ctx, o.kiln, work)
	if err != nil {
		return 2, err
	}
	b := &bench{kiln: kiln, work: work, runs: o.runs, keep: o.keep, log: io.Discard, say: os.Stderr, latency: o.latency}
	if o.v {
		b.log = os.Stderr
	}
	reg, err := startRegistry(ctx, bin, filepath.Join(work, "registry"))
	if err != nil {
		return 1, err
	}
	defer reg.stop()
	proxy, err := newCountingProxy(reg.addr, o.latency, b.log)
	if err != nil {
		return 1, err
	}
	defer proxy.close()
	dockerConfig := filepath.Join(work, "docker-config")
	if err := os.MkdirAll(dockerConfig, 0o755); err != nil {
		return 1, err
	}
	cb := &compareBench{bench: b, proxy: proxy, env: []string{"DOCKER_CONFIG=" + dockerConfig}}
	if o.buildkit != "" {
		if cb.bk, err = startBuildkitd(ctx, filepath.Join(work, "buildkitd"), o.buildkit, proxy.addr); err != nil {
			return 2, err
		}
		defer cb.bk.stop()
	}
	m := describeMachine(ctx, kiln, work)
	m.runs = o.runs
	start := time.Now()
	loadBefore := readTrimmed("/proc/loadavg")
	var results []*cresult
	for _, p := range compareProjects(o.scale) {
		if o.projects != "" && !slices.Contains(strings.Split(o.projects, ","), p.name) {
			continue
		}
		r, err := cb.measure(ctx, p)
		if err != nil {
			return 1, err
		}
		results = append(results, r)
	}
	m.elapsed = time.Since(start)
	bkVersion := ""
	if cb.bk != nil {
		bkVersion = cb.bk.version
	}
	writeCompare(os.Stdout, m, o.latency, bkVersion, results)
	// Other work on the machine slows both tools, not always alike.
	fmt.Fprintf(os.Stdout, "- /proc/loadavg before: %s; after: %s\n", loadBefore, readTrimmed("/proc/loadavg"))
	return 0, nil
}

// measure runs p's flows -runs times, kiln and BuildKit alternately (which
// goes first alternates from run to run).
func (cb *compareBench) measure(ctx context.Context, p cproject) (*cresult, error) {
	dir := filepath.Join(cb.work, "p-"+p.name)
	ctxDir := filepath.Join(dir, "context")
	if err := writeCProject(ctxDir, p); err != nil {
		return nil, err
	}
	r := &cresult{project: p}
	for run := 1; run <= cb.runs; run++ {
		tools := []int{0, 1}
		if run%2 == 0 {
			tools = []int{1, 0}
		}
		var line []string
		for _, tool := range tools {
			if tool == 1 && cb.bk == nil {
				continue
			}
			// A workflow's cold build leaves what its warm build imports.
			for _, reg := range []bool{true, false} {
				base := fmt.Sprintf("%s-%d-%s", p.name, run, map[bool]string{true: "r", false: "l"}[reg])
				for _, warm := range []bool{false, true} {
					fi := flowIndex(reg, warm)
					cbld, err := cb.one(ctx, tool, p, ctxDir, filepath.Join(dir, fmt.Sprintf("run-%d", run), toolName(tool)), base, reg, warm)
					if err != nil {
						return nil, fmt.Errorf("%s, %s, %s, run %d: %w", p.name, toolName(tool), cflows[fi].name, run, err)
					}
					r.builds[fi][tool] = append(r.builds[fi][tool], cbld)
					line = append(line, fmt.Sprintf("%s %s %s", toolName(tool), cflows[fi].name, fmtDuration(cbld.wall)))
				}
			}
		}
		fmt.Fprintf(cb.say, "bench: compare %s run %d/%d: %s\n", p.name, run, cb.runs, strings.Join(line, "; "))
		if !cb.keep {
			detachMounts(filepath.Join(dir, fmt.Sprintf("run-%d", run)))
			os.RemoveAll(filepath.Join(dir, fmt.Sprintf("run-%d", run)))
		}
	}
	if p.gen != nil {
		var err error
		r.floorRuns = max(cb.runs, 5)
		if r.floor, r.floorBytes, err = hashFloor(ctxDir, r.floorRuns); err != nil {
			return nil, fmt.Errorf("%s: hashing floor: %w", p.name, err)
		}
	}
	return r, nil
}

func flowIndex(reg, warm bool) int {
	i := 0
	if !reg {
		i = 2
	}
	if warm {
		i++
	}
	return i
}

func toolName(tool int) string {
	if tool == 0 {
		return "kiln"
	}
	return "buildkit"
}

// one runs one build of p: tool 0 is kiln, 1 BuildKit. The image goes to
// REG/<base>-<tool>/app:latest, the registry cache beside it at
// :buildcache, the local cache to dir/cache-<base>.
func (cb *compareBench) one(ctx context.Context, tool int, p cproject, ctxDir, dir, base string, reg, warm bool) (cbuild, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cbuild{}, err
	}
	repo := cb.proxy.addr + "/" + base + "-" + toolName(tool) + "/app"
	cacheDir := filepath.Join(dir, "cache-"+base)
	kind := "cold"
	if warm {
		kind = "warm"
	}
	cb.proxy.reset()
	var out cbuild
	if tool == 0 {
		var extra []string
		if !warm {
			// The step phases say how long the RUN commands ran.
			extra = append(extra, "--debug")
		}
		extra = append(extra, "--push", "-t", repo+":latest")
		if reg {
			if warm {
				extra = append(extra, "--cache-from", "type=registry,ref="+repo+":buildcache")
			}
			extra = append(extra, "--cache-to", "type=registry,ref="+repo+":buildcache,mode=max")
		}
		s := buildSpec{context: ctxDir, env: cb.env, state: filepath.Join(dir, "state-"+base+"-"+kind),
			meta: filepath.Join(dir, base+"-"+kind+".json"), cache: cacheDir, from: !reg && warm, to: !reg, extra: extra}
		res, rss, err := runBuildRSS(ctx, cb.kiln, s, cb.log)
		detachMounts(s.state)
		if !cb.keep {
			os.RemoveAll(s.state)
		}
		if err != nil {
			return cbuild{}, err
		}
		out = cbuild{wall: res.wall, rss: rss, ran: res.md.Summary.Ran, runExec: -1}
		if !warm {
			out.runExec = runExecTime(res.out)
		}
	} else {
		// A warm BuildKit build starts from a daemon that holds nothing.
		if _, _, err := cb.bk.run(ctx, cb.log, "prune", "--all"); err != nil {
			return cbuild{}, err
		}
		cb.proxy.reset()
		progress := "plain"
		if !warm {
			// rawjson progress says when each RUN vertex started and
			// completed (as --debug does for kiln's cold builds).
			progress = "rawjson"
		}
		args := []string{"build", "--progress", progress, "--frontend", "dockerfile.v0",
			"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir,
			"--output", "type=image,name=" + repo + ":latest,push=true"}
		if reg {
			if warm {
				args = append(args, "--import-cache", "type=registry,ref="+repo+":buildcache")
			}
			args = append(args, "--export-cache", "type=registry,ref="+repo+":buildcache,mode=max")
		} else {
			if warm {
				args = append(args, "--import-cache", "type=local,src="+cacheDir)
			}
			args = append(args, "--export-cache", "type=local,dest="+cacheDir+",mode=max")
		}
		syscall.Sync()
		wall, bkOut, err := cb.bk.run(ctx, cb.log, args...)
		retried := false
		if err != nil && ctx.Err() == nil {
			// BuildKit pushes a blob for the image and for the cache to the
			// same repository at once, and docker-registry sometimes
			// rejects one of the two uploads ("provided digest did not
			// match uploaded content"): the build is run once more, and
			// the report says so.
			fmt.Fprintf(cb.say, "bench: BuildKit failed, running it again: %s\n", firstErrorLine(err))
			cb.proxy.reset()
			wall, bkOut, err = cb.bk.run(ctx, cb.log, args...)
			retried = true
		}
		if err != nil {
			return cbuild{}, err
		}
		out = cbuild{wall: wall, ran: -1, retried: retried, runExec: -1}
		if !warm {
			out.runExec = buildkitRunTime(bkOut)
		}
	}
	t := cb.proxy.snapshot()
	out.requests, out.depth = t.requests, depth(t.spans)
	return out, nil
}

// runBuildRSS is runBuild that also returns kiln's peak RSS.
func runBuildRSS(ctx context.Context, kiln string, s buildSpec, log io.Writer) (buildResult, int64, error) {
	var rss int64
	res, err := runBuildWith(ctx, kiln, s, log, func(ps *os.ProcessState) {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10
		}
	})
	return res, rss, err
}

// writeCompare prints the -compare report.
func writeCompare(w io.Writer, m machine, latency time.Duration, bkVersion string, results []*cresult) {
	fmt.Fprintf(w, "## kiln against BuildKit\n\n")
	fmt.Fprintf(w, "- date: %s; machine: nproc %d, %s, kernel %s, work dir on %s\n", m.date.UTC().Format("2006-01-02 15:04 UTC"), m.nproc, m.cpu, m.kernel, m.fs)
	fmt.Fprintf(w, "- %s; %s\n", m.kiln, m.runc)
	if bkVersion != "" {
		fmt.Fprintf(w, "- %s (OCI worker, runc), pruned (`buildctl prune --all`) before each of its builds\n", bkVersion)
	} else {
		fmt.Fprintf(w, "- BuildKit: not measured (no -buildkit DIR)\n")
	}
	fmt.Fprintf(w, "- runs: %d, kiln and BuildKit alternately (who goes first alternates); medians; every build pushes its image to docker-registry on 127.0.0.1 through the bench's proxy", m.runs)
	if latency > 0 {
		fmt.Fprintf(w, ", which adds %s to every request", latency)
	}
	fmt.Fprintf(w, "\n- warm: a brand-new state dir (BuildKit: an empty daemon) importing the cache the cold build exported; took %s in all\n\n", m.elapsed.Round(time.Second))
	header := []string{"project"}
	for _, f := range cflows {
		header = append(header, f.name)
	}
	right := []bool{false, true, true, true, true}
	var rows, reqRows, memRows [][]string
	for _, r := range results {
		row := []string{r.project.name}
		for fi := range cflows {
			k := medianDur(r.builds[fi][0])
			if len(r.builds[fi][1]) == 0 {
				row = append(row, fmtSecs(k))
				continue
			}
			b := medianDur(r.builds[fi][1])
			row = append(row, fmt.Sprintf("%s / %s = %.2f", fmtSecs(k), fmtSecs(b), float64(k)/float64(b)))
		}
		rows = append(rows, row)
		wr := r.builds[1]
		req := []string{r.project.name, fmt.Sprintf("%d in depth %d", medianInt(wr[0], func(b cbuild) int { return b.requests }), medianInt(wr[0], func(b cbuild) int { return b.depth }))}
		if len(wr[1]) > 0 {
			req = append(req, fmt.Sprintf("%d in depth %d", medianInt(wr[1], func(b cbuild) int { return b.requests }), medianInt(wr[1], func(b cbuild) int { return b.depth })))
		} else {
			req = append(req, "—")
		}
		reqRows = append(reqRows, req)
		mem := []string{r.project.name, r.project.note}
		for fi := range cflows {
			var most int64
			for _, b := range r.builds[fi][0] {
				most = max(most, b.rss)
			}
			mem = append(mem, formatBytes(most))
		}
		memRows = append(memRows, mem)
	}
	fmt.Fprintf(w, "### Wall time, kiln / BuildKit = ratio (median)\n\n%s\n", markdownTable(header, right, rows))
	fmt.Fprintf(w, "### Warm from registry: round trips (requests in sequential depth, median)\n\n%s\n",
		markdownTable([]string{"project", "kiln", "BuildKit"}, []bool{false, true, true}, reqRows))
	fmt.Fprintf(w, "requests: HTTP requests and HTTPS attempts through the proxy; depth: the longest chain of them each sent after the one before it was answered.\n\n")
	if work := workRows(results); len(work) > 0 {
		fmt.Fprintf(w, "### Cold builds: the RUN commands' own time\n\n%s\n", markdownTable(
			[]string{"project", "flow", "kiln", "kiln's RUN", "BuildKit", "BuildKit's RUN", "floor: BuildKit's RUN / BuildKit",
				"RUN: kiln / BuildKit", "the rest: (kiln − RUN) / (BuildKit − RUN)"},
			[]bool{false, false, true, true, true, true, true, true, true}, work))
		fmt.Fprintf(w, "kiln's RUN: the exec phases of kiln's executed RUN steps (`kiln --debug`), from the OCI runtime's start to the command's exit. "+
			"BuildKit's RUN: completed − started of BuildKit's executed RUN vertices (`buildctl --progress rawjson`), "+
			"which also holds the step's mount setup and the commit of its snapshot. "+
			"Each is measured in that tool's own builds; medians over the runs; n/a: some build's output did not give the figure. "+
			"The floor is the kiln / BuildKit wall-time ratio of a tool that ran the RUN steps exactly as fast as BuildKit does and spent no time outside them; "+
			"the last two columns compare the time each tool spends inside its RUN steps and outside them.\n\n")
	}
	fmt.Fprintf(w, "### kiln's peak RSS (most over the runs)\n\n%s\n",
		markdownTable(append([]string{"project", "what"}, header[1:]...), []bool{false, false, true, true, true, true}, memRows))
	for _, r := range results {
		n := 0
		for fi := range cflows {
			for _, b := range r.builds[fi][1] {
				if b.retried {
					n++
				}
			}
		}
		if n > 0 {
			fmt.Fprintf(w, "- %s: %d BuildKit build(s) failed to push (docker-registry refused one of two concurrent uploads of a blob) and were run again; the time is the second run's\n", r.project.name, n)
		}
	}
	for _, r := range results {
		if r.project.name != "bigcontext" {
			continue
		}
		for _, e := range results {
			if e.project.name == "bigcontext-empty" {
				for _, fi := range []int{1, 3} {
					d := medianDur(r.builds[fi][0]) - medianDur(e.builds[fi][0])
					fmt.Fprintf(w, "- bigcontext %s: %s more than the same Dockerfile with an empty context (%s vs %s)\n",
						cflows[fi].name, fmtSecs(d), fmtSecs(medianDur(r.builds[fi][0])), fmtSecs(medianDur(e.builds[fi][0])))
				}
			}
		}
	}
	for _, r := range results {
		if r.floor > 0 {
			fmt.Fprintf(w, "- %s hashing floor: %s to read and hash its context's %s with SHA-256 on %d cores, from the page cache, the file list made beforehand: "+
				"what any build of it spends on the bytes alone (median of %d passes after one)\n",
				r.project.name, fmtSecs(r.floor), fmtBytes(r.floorBytes), runtime.GOMAXPROCS(0), r.floorRuns)
		}
	}
}

// workRows are the rows of the RUN-time table: one per project and cold
// flow that both tools built. A figure that some build of the flow lacks
// (its output did not parse) is "n/a", and so is every ratio that needs
// it; a ratio over nothing is "—".
func workRows(results []*cresult) [][]string {
	var rows [][]string
	for _, r := range results {
		for _, fi := range []int{0, 2} {
			k, b := r.builds[fi][0], r.builds[fi][1]
			if len(k) == 0 || len(b) == 0 {
				continue
			}
			kw, bw := medianDur(k), medianDur(b)
			kr, kok := medianRun(k)
			br, bok := medianRun(b)
			floor, runs, rest := "n/a", "n/a", "n/a"
			if bok {
				floor = fmtQuotient(br, bw)
			}
			if kok && bok {
				runs, rest = fmtQuotient(kr, br), fmtQuotient(kw-kr, bw-br)
			}
			rows = append(rows, []string{r.project.name, cflows[fi].name, fmtSecs(kw), fmtRun(kr, kok),
				fmtSecs(bw), fmtRun(br, bok), floor, runs, rest})
		}
	}
	return rows
}

// medianRun is the median of bs's RUN times; ok is false when a build
// lacks one.
func medianRun(bs []cbuild) (d time.Duration, ok bool) {
	xs := make([]int64, 0, len(bs))
	for _, b := range bs {
		if b.runExec < 0 {
			return 0, false
		}
		xs = append(xs, int64(b.runExec))
	}
	if len(xs) == 0 {
		return 0, false
	}
	return time.Duration(median(xs)), true
}

func fmtRun(d time.Duration, ok bool) string {
	if !ok {
		return "n/a"
	}
	return fmtSecs(d)
}

// fmtQuotient is a / b to two places, "—" when b is not positive.
func fmtQuotient(a, b time.Duration) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// stepMissRE and stepPhasesRE match kiln's --debug lines for a step that
// runs and for its phases (log/slog's text format).
var (
	stepMissRE   = regexp.MustCompile(`msg="step miss" step=(\d+) text=("(?:[^"\\]|\\.)*")`)
	stepPhasesRE = regexp.MustCompile(`msg="step phases" step=(\d+) .*\bexec=(\S+)`)
)

// runExecTime adds up the exec phases of the RUN steps in kiln's --debug
// output; -1 when there are RUN steps that ran without a phases line, or
// a line does not parse (the log format changed: better no figure than a
// wrong one).
func runExecTime(out string) time.Duration {
	runs := map[string]bool{}
	for _, m := range stepMissRE.FindAllStringSubmatch(out, -1) {
		text, err := strconv.Unquote(m[2])
		if err != nil {
			return -1
		}
		if strings.HasPrefix(text, "RUN ") {
			runs[m[1]] = true
		}
	}
	var total time.Duration
	seen := 0
	for _, m := range stepPhasesRE.FindAllStringSubmatch(out, -1) {
		if !runs[m[1]] {
			continue
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			return -1
		}
		total += d
		seen++
	}
	if seen != len(runs) {
		return -1
	}
	return total
}

// firstErrorLine is the line of a buildctl failure that names the error.
func firstErrorLine(err error) string {
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(l, "error: ") || strings.HasPrefix(l, "unknown: ") {
			return l
		}
	}
	l, _, _ := strings.Cut(err.Error(), "\n")
	return l
}

func medianDur(bs []cbuild) time.Duration {
	xs := make([]int64, 0, len(bs))
	for _, b := range bs {
		xs = append(xs, int64(b.wall))
	}
	if len(xs) == 0 {
		return 0
	}
	return time.Duration(median(xs))
}

func medianInt(bs []cbuild, f func(cbuild) int) int {
	xs := make([]int, 0, len(bs))
	for _, b := range bs {
		xs = append(xs, f(b))
	}
	if len(xs) == 0 {
		return 0
	}
	return median(xs)
}

func fmtSecs(d time.Duration) string {
	if d < time.Second && d > -time.Second {
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
