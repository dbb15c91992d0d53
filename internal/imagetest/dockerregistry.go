package imagetest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DockerRegistry starts the real docker-registry server (Debian's
// docker-registry package) on a free 127.0.0.1 port, with filesystem
// storage in a temp dir, and returns HOST:PORT and the storage directory.
// extraConfig is appended to the YAML config (indented under http: for
// tls, or top-level auth:). It is stopped when the test ends. It requires
// the part "docker-registry" (see Require).
func DockerRegistry(t testing.TB, extraConfig string) (addr, data string) {
	t.Helper()
	Require(t, "docker-registry")
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	dir := t.TempDir()
	data = filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, data, addr, extraConfig)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	tls := strings.Contains(extraConfig, "tls:")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			if tls {
				return addr, data // the caller knows the CA to check /v2/
			}
			if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
				resp.Body.Close()
				return addr, data
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not start on %s:\n%s", addr, logs.String())
	return "", ""
}
