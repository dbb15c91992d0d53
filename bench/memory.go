package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// memoryCase is one metadata-heavy Dockerfile: FROM scratch and n
// instructions of one kind, each adding one key.
type memoryCase struct {
	kind string // ENV, LABEL, EXPOSE or VOLUME
	n    int
}

func (c memoryCase) dockerfile() []byte {
	var b bytes.Buffer
	b.WriteString("FROM scratch\n")
	for i := range c.n {
		switch c.kind {
		case "EXPOSE":
			fmt.Fprintf(&b, "EXPOSE %d\n", i+1)
		case "VOLUME":
			fmt.Fprintf(&b, "VOLUME /v%d\n", i)
		default:
			fmt.Fprintf(&b, "%s K%d=value-%d\n", c.kind, i, i)
		}
	}
	return b.Bytes()
}

// memoryCases are the sizes -memory measures, up to max instructions.
func memoryCases(max int) []memoryCase {
	var out []memoryCase
	for _, kind := range []string{"ENV", "LABEL", "EXPOSE", "VOLUME"} {
		for _, n := range []int{1000, 2500, 5000, 10000} {
			if n <= max {
				out = append(out, memoryCase{kind, n})
			}
		}
	}
	return out
}

// memoryMode builds each metadata-heavy Dockerfile once in a fresh state
// dir and prints kiln's peak RSS (wait4's ru_maxrss) and wall time as a
// markdown table. It needs neither root nor runc: the builds run no step.
func memoryMode(ctx context.Context, o options) (int, error) {
	work, err := os.MkdirTemp(o.dir, "kiln-bench-memory-")
	if err != nil {
		return 2, fmt.Errorf("making the work dir: %w", err)
	}
	defer os.RemoveAll(work)
	kiln, err := findKiln(ctx, o.kiln, work)
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(os.Stdout, "### Peak memory of metadata-heavy Dockerfiles\n\n")
	fmt.Fprintf(os.Stdout, "FROM scratch and N instructions, each adding one key; one build each, fresh state dir.\n\n")
	fmt.Fprintf(os.Stdout, "| instructions | peak RSS | time |\n|---|---|---|\n")
	for _, c := range memoryCases(o.memoryMax) {
		rss, took, err := peakRSS(ctx, kiln, work, c, o.v)
		if err != nil {
			return 1, fmt.Errorf("%d %s lines: %w", c.n, c.kind, err)
		}
		fmt.Fprintf(os.Stdout, "| %d %s | %s | %s |\n", c.n, c.kind, formatBytes(rss), took.Round(10*time.Millisecond))
	}
	return 0, nil
}

// peakRSS runs one build of c and returns kiln's peak resident set size.
func peakRSS(ctx context.Context, kiln, work string, c memoryCase, verbose bool) (int64, time.Duration, error) {
	dir := filepath.Join(work, fmt.Sprintf("%s-%d", strings.ToLower(c.kind), c.n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), c.dockerfile(), 0o644); err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, kiln, "build", "--progress", "plain", dir)
	cmd.Env = append(os.Environ(), "KILN_STATE="+filepath.Join(dir, "state"))
	var errb bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &errb
	if verbose {
		cmd.Stderr = io.MultiWriter(&errb, os.Stderr)
	}
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return 0, took, fmt.Errorf("%v\n%s", err, tail(errb.String(), 5))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, took, fmt.Errorf("no rusage on this platform")
	}
	return ru.Maxrss << 10, took, nil // Linux reports KiB
}

// formatBytes prints n in MiB with one decimal.
func formatBytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
