package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// kilnBin is the kiln binary built once for the whole package.
var kilnBin string

func TestMain(m *testing.M) {
	if dir := os.Getenv(actServerEnv); dir != "" {
		serveAct(dir) // a helper process of TestGHAAct: never returns
	}
	dir, err := os.MkdirTemp("", "kiln-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kilnBin = filepath.Join(dir, "kiln")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	cmd := exec.Command("go", "build", "-o", kilnBin, "./cmd/kiln")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kiln: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one kiln run.
type result struct {
	code   int
	stdout string
	stderr string
}

// kiln runs the kiln binary with the given state dir and extra env.
func kiln(t *testing.T, state string, env []string, args ...string) result {
	t.Helper()
	return kilnStdin(t, state, "", env, args...)
}

// kilnStdin is kiln with stdin.
func kilnStdin(t *testing.T, state, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kilnBin, args...)
	cmd.Env = append(os.Environ(), "KILN_STATE="+state, "DOCKER_CONFIG="+filepath.Join(state, "..", "docker-config"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running kiln %s: %v", strings.Join(args, " "), err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// mustKiln runs kiln and fails the test unless it exits 0.
func mustKiln(t *testing.T, state string, env []string, args ...string) result {
	t.Helper()
	r := kiln(t, state, env, args...)
	if r.code != 0 {
		t.Fatalf("kiln %s: exit %d\nstderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// writeFiles creates files (path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry starts the real docker-registry server on 127.0.0.1 with
// storage in a temp dir and returns host:port. extraConfig is appended to
// the YAML (auth, tls).
func startRegistry(t *testing.T, extraConfig string) string {
	t.Helper()
	addr, _ := startRegistryData(t, extraConfig)
	return addr
}

// startRegistryData is startRegistry that also returns the storage
// directory (for tests that damage blobs on disk).
func startRegistryData(t *testing.T, extraConfig string) (string, string) {
	t.Helper()
	return imagetest.DockerRegistry(t, extraConfig)
}
