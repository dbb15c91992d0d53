package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// startDockerd starts Debian's dockerd on a private socket with its own
// data, exec root and pidfile, no iptables and no bridge, and returns the
// DOCKER_HOST for it. It is stopped when the test ends.
func startDockerd(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kd") // short: the socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	host := "unix://" + sock
	cmd := exec.Command("dockerd", "--iptables=false", "--bridge=none", "--host", host,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"))
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
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
			return host
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
// into a real daemon, which then runs the image.
func TestActionLoad(t *testing.T) {
	imagetest.Require(t, "root", "runc", "node", "dockerd", "docker")
	_, base := setup(t)
	host := startDockerd(t)
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "ctx"), map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo loaded by kiln > /msg\nCMD [\"cat\", \"/msg\"]\n",
	})
	commit := "1111111111111111111111111111111111111111"
	kilnDir := stampedKiln(t, commit)
	cmd := exec.Command("node", filepath.Join(repoRoot(), "action", "main.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+kilnDir+string(os.PathListSeparator)+os.Getenv("PATH"),
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
		t.Fatalf("docker run of the loaded image: %v\n%s", err, got)
	}
	if string(got) != "loaded by kiln\n" {
		t.Errorf("docker run printed %q, want %q", got, "loaded by kiln\n")
	}
}
