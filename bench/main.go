// Command bench measures kiln's build cache and prints the figures as
// markdown: cold build against warm rebuild from a local cache into an
// empty state dir, the same with an OCI output, rebuilds after a one-file
// edit, the local cache dir's size over a series of edits, and the cache
// traffic kiln reports in --metadata-file; then build-push-action's two
// registry cache workflows (inline, registry with mode=max) against a
// local docker-registry behind a counting proxy.
//
// It needs root, runc on PATH and /bin/busybox (busybox-static), and
// nothing from the network: its two projects are written into a temp dir
// from busybox alone. The registry section also needs docker-registry
// (Debian package docker-registry) and is skipped without it. Run it from
// the module root:
//
//	go run ./bench            # 5 runs, about four minutes
//	go run ./bench -quick     # 1 run, a smoke test
//	go run ./bench -registry=false   # without the registry section
//	go run ./bench -gha=false        # without the gha cache section
//	go run ./bench -memory           # only: peak RSS of metadata-heavy Dockerfiles
//	go run ./bench -platforms        # only: two-platform build (QEMU), cold and warm
//
// The exit status is 0 when every target is met, 1 when one is missed or a
// build fails (the report says which), and 2 for bad flags or a machine
// that cannot run kiln. See README.md beside this file.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	kiln  string
	runs  int
	edits int
	quick bool
	dir   string
	keep  bool
	v     bool
	// registry: measure the registry workflows.
	registry bool
	// gha: measure the gha cache through kiln cache-server.
	gha bool
	// memory: only measure the peak memory of metadata-heavy Dockerfiles,
	// up to memoryMax instructions.
	memory    bool
	memoryMax int
	// platforms: only time the two-platform build, cold and warm.
	platforms bool
	// latency: added to every registry round trip (the registry section).
	latency time.Duration
	// compare: only measure kiln against BuildKit (binaries in buildkit).
	compare  bool
	buildkit string
	scale    bool
	projects string // with -compare: comma-separated names; "" all
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.kiln, "kiln", "", "kiln binary to measure (default: build ./cmd/kiln into the work dir)")
	fs.IntVar(&o.runs, "runs", 5, "repetitions of the cold / warm / warm + oci builds; medians are reported")
	fs.IntVar(&o.edits, "edits", 5, "edited rebuilds in the cache-size series")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: one run (same as -runs 1)")
	fs.StringVar(&o.dir, "dir", "", "where to make the work dir (default $TMPDIR); state and cache dirs live there")
	fs.BoolVar(&o.keep, "keep", false, "keep the work dir (state dirs, caches, tarballs) and print its path")
	fs.BoolVar(&o.v, "v", false, "show kiln's output")
	fs.BoolVar(&o.registry, "registry", true, "measure the build-push-action registry workflows against a local docker-registry")
	fs.BoolVar(&o.gha, "gha", true, "measure type=gha through kiln cache-server (v1 and v2)")
	fs.BoolVar(&o.memory, "memory", false, "only measure kiln's peak RSS on Dockerfiles of many ENV, LABEL, EXPOSE and VOLUME lines")
	fs.DurationVar(&o.latency, "latency", 0, "registry section: the proxy waits this long before forwarding each request, as a registry far away would (e.g. 25ms)")
	fs.BoolVar(&o.compare, "compare", false, "only: kiln against BuildKit (with -buildkit) on small, multistage and bigcontext, alternately, every build pushing")
	fs.StringVar(&o.buildkit, "buildkit", "", "with -compare: the dir holding buildkitd and buildctl (make conformance builds them in /tmp/kiln-buildkit-v0.34.2)")
	fs.StringVar(&o.projects, "projects", "", "with -compare: only these projects (comma-separated names)")
	fs.BoolVar(&o.scale, "scale", false, "with -compare: add the 50-step, 20,000-file and 1 GB projects")
	fs.IntVar(&o.memoryMax, "memory-max", 10000, "with -memory: the most instructions in one Dockerfile")
	fs.BoolVar(&o.platforms, "platforms", false, "only time a linux/amd64 + linux/arm64 build (arm64 RUN under QEMU), cold and warm")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if o.quick {
		o.runs = 1
	}
	if fs.NArg() > 0 || o.runs < 1 || o.edits < 1 {
		fmt.Fprintln(os.Stderr, "bench: usage: go run ./bench [-runs N] [-edits N] [-quick] [-kiln PATH] [-dir DIR] [-keep] [-v] [-registry=false] [-gha=false]")
		return 2
	}
	if o.compare {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		code, err := compareMode(ctx, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
		return code
	}
	if o.memory {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		code, err := memoryMode(ctx, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
		return code
	}
	if o.platforms {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		code, err := platformMode(ctx, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
		return code
	}
	if err := checkMachine(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := runBench(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
	return code
}

// checkMachine fails early, with the fix, where kiln cannot build.
func checkMachine() error {
	if os.Geteuid() != 0 {
		return errors.New("kiln's RUN steps need root: run as root (sudo -E go run ./bench)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return errors.New("runc is not on PATH (Debian: apt-get install runc)")
	}
	if fi, err := os.Stat(busyboxPath); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is missing (Debian: apt-get install busybox-static)", busyboxPath)
	}
	return nil
}

// runBench does the work and returns the exit status.
func runBench(ctx context.Context, o options) (int, error) {
	start := time.Now()
	work, err := os.MkdirTemp(o.dir, "kiln-bench-")
	if err != nil {
		return 2, fmt.Errorf("making the work dir: %w", err)
	}
	if work, err = filepath.Abs(work); err != nil {
		return 2, err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(os.Stderr, "bench: kept %s\n", work)
			return
		}
		if _, err := detachMounts(work); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
		os.RemoveAll(work)
	}()
	kiln, err := findKiln(ctx, o.kiln, work)
	if err != nil {
		return 2, err
	}
	b := &bench{kiln: kiln, work: work, runs: o.runs, edits: o.edits, keep: o.keep, log: io.Discard, say: os.Stderr, latency: o.latency}
	if o.v {
		b.log = os.Stderr
	}
	m := describeMachine(ctx, kiln, work)
	m.runs, m.edits = o.runs, o.edits
	var results []*projectResult
	var checks []check
	for _, p := range projects() {
		r, facts, err := b.measure(ctx, p)
		if err != nil {
			return 1, err
		}
		results = append(results, r)
		checks = append(checks, evaluate(r, facts)...)
	}
	reg := &registryReport{skipped: "-registry=false"}
	if o.registry {
		rr, rc, err := b.registrySection(ctx)
		if err != nil {
			return 1, err
		}
		reg = rr
		checks = append(checks, rc...)
	}
	gha := &ghaReport{skipped: "-gha=false"}
	if o.gha {
		gr, gc, err := b.ghaSection(ctx)
		if err != nil {
			return 1, err
		}
		gha = gr
		checks = append(checks, gc...)
	}
	m.elapsed = time.Since(start)
	writeReport(os.Stdout, m, results, reg, checks)
	writeGHASection(os.Stdout, gha)
	if len(b.problems) > 0 {
		fmt.Fprintf(os.Stdout, "\n### Problems seen (not targets)\n\n")
		for _, p := range b.problems {
			fmt.Fprintf(os.Stdout, "- %s\n", p)
		}
	}
	var missed []string
	for _, c := range checks {
		if c.missed() {
			missed = append(missed, c.project+": "+c.text)
		}
	}
	if len(missed) > 0 {
		return 1, fmt.Errorf("%d target(s) missed:\n  %s", len(missed), strings.Join(missed, "\n  "))
	}
	return 0, nil
}

// findKiln returns the binary to measure: path if given, else a fresh
// build of ./cmd/kiln in work.
func findKiln(ctx context.Context, path, work string) (string, error) {
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		if _, err := exec.LookPath(abs); err != nil {
			return "", fmt.Errorf("using -kiln %s: %w", path, err)
		}
		return abs, nil
	}
	dst := filepath.Join(work, "kiln")
	fmt.Fprintln(os.Stderr, "bench: building kiln")
	return dst, buildKiln(ctx, dst)
}

// describeMachine gathers what the report's header says about the machine.
func describeMachine(ctx context.Context, kiln, work string) machine {
	return machine{
		date:   time.Now(),
		nproc:  runtime.NumCPU(),
		cpu:    cpuModel(),
		kernel: readTrimmed("/proc/sys/kernel/osrelease"),
		fs:     fsType(work),
		kiln:   firstLine(ctx, kiln, "version"),
		runc:   firstLine(ctx, "runc", "--version"),
	}
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if s := strings.TrimSpace(string(b)); err == nil && s != "" {
		return s
	}
	return "unknown"
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range bytes.Lines(b) {
		k, v, ok := strings.Cut(string(line), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "unknown CPU"
}

// fsType names the file system holding dir, by statfs magic.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown fs"
	}
	names := map[int64]string{
		0xEF53: "ext4", 0x01021994: "tmpfs", 0x58465342: "xfs", 0x9123683E: "btrfs",
		0x794c7630: "overlayfs", 0x2FC12FC1: "zfs", 0x6969: "nfs",
	}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("fs 0x%x", st.Type)
}
