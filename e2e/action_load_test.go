package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// startDockerd starts Debian's dockerd on a private socket with its own
// data, exec root and pidfile, no iptables and no bridge, and returns the
// DOCKER_HOST for it and the path of its log. It is stopped when the test
// ends.
//
// It runs in a mount namespace of its own with every mount private (Go
// makes / MS_REC|MS_PRIVATE after unsharing). dockerd makes its data root
// a shared mount and mounts each container's rootfs below it; in the
// host's namespace any other process on the machine that copies the
// namespace and unmounts there (slirp4netns --enable-sandbox started
// from the host's namespace did: kiln before its fix, other test runs)
// unmounted that rootfs on the host between dockerd's mount and runc's
// start, and docker run failed with exec: "cat": executable file not
// found. Private, dockerd's mounts have no peers outside.
func startDockerd(t *testing.T) (host, logPath string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "kd") // short: the socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	host = "unix://" + sock
	logPath = filepath.Join(dir, "dockerd.log")
	cmd := exec.Command("dockerd", "--iptables=false", "--bridge=none", "--host", host,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command("docker", "--host", host, "version", "--format", "{{.Server.Version}}").CombinedOutput()
		if err == nil {
			return host, logPath
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Fatalf("dockerd exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Fatalf("dockerd did not answer within a minute: %s\n%s", out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestActionLoad: load: true builds a docker archive and docker loads it
// into a real daemon, which then runs the image. The archive the action
// loads is kept (a docker wrapper first on PATH copies it) so that a
// failure can show what was in it.
func TestActionLoad(t *testing.T) {
	imagetest.Require(t, "root", "runc", "node", "dockerd", "docker")
	_, base := setup(t)
	host, dockerdLog := startDockerd(t)
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "ctx"), map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo loaded by kiln > /msg\nCMD [\"cat\", \"/msg\"]\n",
	})
	commit := "1111111111111111111111111111111111111111"
	kilnDir := stampedKiln(t, commit)
	kept := filepath.Join(dir, "loaded.tar")
	wrapDir := keepLoadedArchive(t, kept)
	cmd := exec.Command("node", filepath.Join(repoRoot(), "action", "main.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+wrapDir+string(os.PathListSeparator)+kilnDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GITHUB_ACTION_REF="+commit, "DOCKER_HOST="+host,
		"GITHUB_OUTPUT="+filepath.Join(dir, "output"), "RUNNER_TEMP="+dir, "KILN_STATE="+filepath.Join(dir, "state"),
		"INPUT_CONTEXT="+filepath.Join(dir, "ctx"), "INPUT_LOAD=true", "INPUT_TAGS=kiln-load-test:1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("action with load: true: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Loaded image: kiln-load-test:1") {
		t.Errorf("docker load did not report the tag:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := exec.CommandContext(ctx, "docker", "--host", host, "run", "--rm", "--network", "none", "kiln-load-test:1").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run of the loaded image: %v\n%s\n%s", err, got, loadDiagnosis(host, "kiln-load-test:1", kept, dockerdLog, out))
	}
	if string(got) != "loaded by kiln\n" {
		t.Errorf("docker run printed %q, want %q\n%s", got, "loaded by kiln\n", loadDiagnosis(host, "kiln-load-test:1", kept, dockerdLog, out))
	}
}

// keepLoadedArchive returns a directory holding a docker wrapper that
// copies the archive of `docker load -i FILE` to kept before running the
// real docker, for a failure to inspect (the action removes its own).
func keepLoadedArchive(t *testing.T, kept string) string {
	t.Helper()
	real, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nif [ \"$1\" = load ] && [ \"$2\" = -i ]; then cp \"$3\" " + shellQuote(kept) + " || exit 1; fi\nexec " + shellQuote(real) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// loadDiagnosis describes, for a failed run of a loaded image, what the
// action printed, what docker has for ref (inspect, the rootfs of a
// container made from it as docker mounts it), what the loaded archive
// held (manifest.json, config diff IDs, every layer's size and entries)
// and the end of the daemon's log.
func loadDiagnosis(host, ref, archive, dockerdLog string, actionOut []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- action output:\n%s\n", actionOut)
	inspect, err := exec.Command("docker", "--host", host, "image", "inspect", "--format",
		"Id={{.Id}} RootFS={{json .RootFS}} Config={{json .Config}} Os={{.Os}} Arch={{.Architecture}}", ref).CombinedOutput()
	fmt.Fprintf(&b, "--- docker image inspect (%v):\n%s\n", err, inspect)
	// The rootfs as dockerd's graph driver assembles it, outside any
	// runtime: tells a wrong image from a wrong mount.
	if id, err := exec.Command("docker", "--host", host, "create", "--network", "none", ref).Output(); err != nil {
		fmt.Fprintf(&b, "--- docker create: %v\n", err)
	} else {
		c := strings.TrimSpace(string(id))
		exp, err := exec.Command("sh", "-c", `f=$(mktemp) && docker --host "$1" export "$2" > "$f"; echo "export exit $?, $(wc -c < "$f") bytes"; tar -tvf "$f" | head -n 80; rm -f "$f"`, "sh", host, c).CombinedOutput()
		fmt.Fprintf(&b, "--- docker export of a container of it (%v):\n%s\n", err, exp)
		exec.Command("docker", "--host", host, "rm", "-f", c).Run()
	}
	fmt.Fprintf(&b, "--- archive loaded:\n%s\n", describeDockerArchive(archive))
	if log, err := os.ReadFile(dockerdLog); err == nil {
		lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
		fmt.Fprintf(&b, "--- dockerd log (last 40 lines):\n%s\n", strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	// dockerd's mounts are in its own namespace (startDockerd).
	pid, _ := os.ReadFile(filepath.Join(filepath.Dir(dockerdLog), "docker.pid"))
	if mi, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "mountinfo")); err == nil {
		var ov []string
		for _, l := range strings.Split(string(mi), "\n") {
			if strings.Contains(l, filepath.Dir(dockerdLog)) {
				ov = append(ov, l)
			}
		}
		fmt.Fprintf(&b, "--- mounts under the daemon's directory:\n%s\n", strings.Join(ov, "\n"))
	}
	return b.String()
}

// describeDockerArchive lists a docker archive: its manifest.json, the
// config's rootfs, and every file with its size; a layer's entries are
// listed (the first ones, and every whiteout).
func describeDockerArchive(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var b strings.Builder
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(&b, "reading archive: %v\n", err)
			break
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			fmt.Fprintf(&b, "reading %s: %v\n", h.Name, err)
			break
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s: %d bytes, sha256:%x\n", h.Name, len(data), sum)
		switch {
		case h.Name == "manifest.json":
			fmt.Fprintf(&b, "  %s\n", data)
		case strings.HasSuffix(h.Name, ".tar.gz") || strings.HasSuffix(h.Name, ".tar"):
			b.WriteString(describeLayer(data))
		case strings.HasPrefix(h.Name, "sha256:") || strings.HasSuffix(h.Name, ".json"):
			var cf struct {
				RootFS json.RawMessage `json:"rootfs"`
				Config json.RawMessage `json:"config"`
			}
			if json.Unmarshal(data, &cf) == nil && cf.RootFS != nil {
				fmt.Fprintf(&b, "  rootfs %s\n  config %s\n", cf.RootFS, cf.Config)
			}
		}
	}
	return b.String()
}

// describeLayer lists a layer tar (gzip or not): its diff ID, its number
// of entries, the first 20 and every whiteout.
func describeLayer(data []byte) string {
	var r io.Reader = bytes.NewReader(data)
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Sprintf("  gzip: %v\n", err)
		}
		r = zr
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(r, h))
	var b strings.Builder
	n := 0
	for {
		e, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(&b, "  reading layer: %v\n", err)
			return b.String()
		}
		if n < 20 || strings.Contains(e.Name, ".wh.") {
			fmt.Fprintf(&b, "  %c %o %d %s %s\n", e.Typeflag, e.Mode, e.Size, e.Name, e.Linkname)
		}
		n++
	}
	io.Copy(io.Discard, r)
	fmt.Fprintf(&b, "  %d entries, diff ID sha256:%x\n", n, h.Sum(nil))
	return b.String()
}
