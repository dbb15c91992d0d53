package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const modulePath = "github.com/kiln-build/kiln"

// buildKiln builds cmd/kiln of the module around the working directory
// into dst, the way `make kiln` does.
func buildKiln(ctx context.Context, dst string) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("finding the kiln module (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	mod, err := os.ReadFile(gomod)
	if gomod == "" || err != nil || !bytes.HasPrefix(mod, []byte("module "+modulePath+"\n")) {
		return fmt.Errorf("finding the kiln module: run from inside %s or pass -kiln PATH", modulePath)
	}
	root := filepath.Dir(gomod)
	version := gitOutput(ctx, root, "describe", "--tags", "--always", "--dirty")
	commit := gitOutput(ctx, root, "rev-parse", "--short", "HEAD")
	ldflags := fmt.Sprintf("-s -w -X %[1]s/internal/cli.Version=%[2]s -X %[1]s/internal/cli.Commit=%[3]s", modulePath, version, commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", dst, "./cmd/kiln")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building kiln: %w\n%s", err, out)
	}
	return nil
}

// gitOutput runs git in dir and returns its trimmed output, or "unknown".
func gitOutput(ctx context.Context, dir string, args ...string) string {
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
	if s := strings.TrimSpace(string(out)); err == nil && s != "" {
		return s
	}
	return "unknown"
}

// firstLine runs a command and returns the first line of its output, or
// "unknown".
func firstLine(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil || line == "" {
		return "unknown"
	}
	return line
}

// A buildSpec is one `kiln build` the bench times.
type buildSpec struct {
	context string   // the build context directory
	state   string   // KILN_STATE, a dir that must not exist yet
	cache   string   // the local cache dir
	from    bool     // --cache-from type=local,src=cache
	to      bool     // --cache-to type=local,dest=cache,mode=max
	ociDest string   // -o type=oci,dest=ociDest if set
	meta    string   // --metadata-file
	extra   []string // more flags, before the context (--push, registry caches)
	env     []string // more environment for kiln
}

// args returns the kiln command line for s.
func (s buildSpec) args() []string {
	args := []string{"build", "--progress", "plain", "--metadata-file", s.meta}
	if s.from {
		args = append(args, "--cache-from", "type=local,src="+s.cache)
	}
	if s.to {
		args = append(args, "--cache-to", "type=local,dest="+s.cache+",mode=max")
	}
	if s.ociDest != "" {
		args = append(args, "--output", "type=oci,dest="+s.ociDest)
	}
	args = append(args, s.extra...)
	return append(args, s.context)
}

// A buildResult is what one build took and what kiln said about it.
type buildResult struct {
	wall time.Duration
	md   metadata
	out  string // what kiln printed (stdout and stderr)
}

// metadata is the part of kiln's --metadata-file the bench reads.
type metadata struct {
	Digest  string   `json:"containerimage.digest"`
	Summary *summary `json:"kiln.summary"`
}

// summary mirrors kiln's progress.Summary (the bench only runs the binary).
type summary struct {
	Steps  int         `json:"steps"`
	Cached int         `json:"cached"`
	Ran    int         `json:"ran"`
	Caches []cacheStat `json:"caches"`
}

// cacheStat mirrors kiln's progress.CacheStat.
type cacheStat struct {
	Source       string `json:"source"`
	Hits         int    `json:"hits"`
	BytesRead    int64  `json:"bytesRead"`
	BytesWritten int64  `json:"bytesWritten"`
}

// buildTimeout bounds one build, so a hung runc cannot hang the bench.
const buildTimeout = 5 * time.Minute

// runBuild runs kiln build for s and times it, from the start of the
// process to its exit. Dirty pages of earlier builds are synced first, so
// their write-back is not charged to this one. kiln's output goes to log
// (and is returned in the error if the build fails).
func runBuild(ctx context.Context, kiln string, s buildSpec, log io.Writer) (buildResult, error) {
	return runBuildWith(ctx, kiln, s, log, nil)
}

// runBuildWith is runBuild that hands the exited process's state to after
// (when set), for its resource usage.
func runBuildWith(ctx context.Context, kiln string, s buildSpec, log io.Writer, after func(*os.ProcessState)) (buildResult, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, kiln, s.args()...)
	cmd.Env = append(append(os.Environ(), "KILN_STATE="+s.state), s.env...)
	cmd.Stdout = io.MultiWriter(&out, log)
	cmd.Stderr = cmd.Stdout
	// Let kiln clean up (runc delete, unmounts) when the bench is stopped.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	syscall.Sync()
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if after != nil && cmd.ProcessState != nil {
		after(cmd.ProcessState)
	}
	if err != nil {
		return buildResult{}, fmt.Errorf("kiln %s: %w\n%s", strings.Join(s.args(), " "), err, tail(out.String(), 20))
	}
	md, err := readMetadata(s.meta)
	if err != nil {
		return buildResult{}, err
	}
	return buildResult{wall: wall, md: md, out: out.String()}, nil
}

func readMetadata(path string) (metadata, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return metadata{}, fmt.Errorf("reading metadata file: %w", err)
	}
	var md metadata
	if err := json.Unmarshal(b, &md); err != nil {
		return metadata{}, fmt.Errorf("reading metadata file %s: %w", path, err)
	}
	if md.Summary == nil {
		return metadata{}, fmt.Errorf("reading metadata file %s: no kiln.summary", path)
	}
	return md, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	// Deeper mounts come later in mountinfo; undo them first.
	for i, j := 0, len(found)-1; i < j; i, j = i+1, j-1 {
		found[i], found[j] = found[j], found[i]
	}
	return found, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, …).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// detachMounts lazily unmounts every mount below dir, so the bench can
// remove it; it returns the mount points it found.
func detachMounts(dir string) ([]string, error) {
	mps, err := mountsUnder(dir)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err))
		}
	}
	return mps, errors.Join(errs...)
}
