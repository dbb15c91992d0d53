package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/plan"
	"github.com/kiln-build/kiln/internal/source"
	"github.com/kiln-build/kiln/internal/transport"
)

func run(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	code := Run(context.Background(), Env{Args: args, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv})
	return code, out.String(), errb.String()
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"build"}, "exactly one CONTEXT"},
		{[]string{"build", "--progress", "fancy", dir}, `--progress "fancy"`},
		{[]string{"build", "--network", "bridge", dir}, `--network "bridge"`},
		{[]string{"build", "--build-arg", "=x", dir}, "KEY=VALUE"},
		{[]string{"build", "--label", "novalue", dir}, "KEY=VALUE"},
		{[]string{"build", "--cache-to", "type=local", dir}, "dest: required"},
		{[]string{"build", "--cache-from", "type=s4,src=x", dir}, `unknown cache type "s4"`},
		{[]string{"build", "--output", "type=tarball", dir}, "--output"},
		{[]string{"build", "--secret", "id=a", dir}, "src=PATH or env=VAR"},
		{[]string{"build", "--secret", "id=a,env=NOPE_NOT_SET", dir}, "NOPE_NOT_SET is not set"},
		{[]string{"build", "--bogus", dir}, "unknown flag"},
		{[]string{"build", "--add-host", "gw:host-gateway", dir}, `--add-host "gw:host-gateway": host-gateway is not supported: RUN steps have their own network namespace`},
		{[]string{"build", "--add-host", "db", dir}, `--add-host "db": want HOST:IP`},
		{[]string{"build", "--add-host", "db:10.0.0.300", dir}, `--add-host "db:10.0.0.300": "10.0.0.300" is not an IP address`},
		{[]string{"build", "--shm-size", "lots", dir}, `--shm-size "lots": want a size above 0`},
		{[]string{"build", "--shm-size", "0", dir}, `--shm-size "0": want a size above 0`},
		{[]string{"build", "--ulimit", "nofile=2048:1024", dir}, `--ulimit "nofile=2048:1024": soft limit 2048 is above the hard limit 1024`},
		{[]string{"build", "--ulimit", "files=1", dir}, `--ulimit "files=1": unknown limit "files"`},
		{[]string{"build", "--platform", "linux/amd64,linux//x", dir}, `--platform: invalid platform "linux//x"`},
		{[]string{"build", "--platform", "windows/amd64", dir}, "--platform windows/amd64: kiln builds linux images only"},
		{[]string{"prune"}, "--all or --keep-storage"},
		{[]string{"prune", "--keep-storage", "lots"}, "--keep-storage"},
		{[]string{"login", "reg.example"}, "--username"},
		{[]string{"login", "reg.example", "-u", "me"}, "--password-stdin"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, nil, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.want)
			}
			if n := strings.Count(strings.TrimRight(stderr, "\n"), "\n"); n != 0 {
				t.Errorf("error is %d lines, want one:\n%s", n+1, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestDockerfileMissingIsUsage(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	code, _, stderr := run(t, func(k string) string {
		if k == "KILN_STATE" {
			return state
		}
		return ""
	}, "build", dir)
	if code != 2 || !strings.Contains(stderr, "Dockerfile not found") {
		t.Errorf("exit %d, stderr %q; want 2 and 'Dockerfile not found'", code, stderr)
	}
}

func TestParsePlatforms(t *testing.T) {
	got, err := parsePlatforms([]string{"linux/amd64, linux/aarch64", "linux/arm/v6", "", "linux/arm64/v8,"})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, plan.FormatPlatform(p))
	}
	if want := "linux/amd64 linux/arm64 linux/arm/v6 linux/arm64"; strings.Join(s, " ") != want {
		t.Errorf("got %v, want %s (normalized, in order; build dedupes)", s, want)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "kiln dev (commit unknown)") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"1024", 1024, false},
		{"10GB", 10 << 30, false},
		{"512mb", 512 << 20, false},
		{"1.5G", 3 << 29, false},
		{"1KB", 1024, false},
		{"-1", 0, true},
		{"many", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestReadSecrets(t *testing.T) {
	f := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(f, []byte("file-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "TOKEN" {
			return "env-value"
		}
		return ""
	}
	got, err := readSecrets([]string{"id=a,src=" + f, "id=b,env=TOKEN", "type=env,id=c,src=TOKEN"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if string(got["a"]) != "file-value" || string(got["b"]) != "env-value" || string(got["c"]) != "env-value" {
		t.Errorf("secrets = %q", got)
	}
}

func TestStateDir(t *testing.T) {
	env := map[string]string{"KILN_STATE": "/s"}
	if got := stateDir(func(k string) string { return env[k] }); got != "/s" {
		t.Errorf("stateDir with KILN_STATE = %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{usagef("bad"), 2},
		{&dockerfile.Error{Pos: plan.Pos{File: "Dockerfile", Line: 3}, Err: errors.New("unknown instruction")}, 2},
		{&dockerfile.Error{Pos: plan.Pos{File: "Dockerfile", Line: 1}, Err: fmt.Errorf("resolving image: %w", &transport.Error{Service: "registry r", Status: 503})}, 1},
		{&dockerfile.Error{Pos: plan.Pos{File: "Dockerfile", Line: 1}, Err: fmt.Errorf("resolving image: %w", &url.Error{Op: "Get", URL: "https://r/v2/", Err: transport.ErrTooManyRedirects})}, 1},
		{&dockerfile.Error{Pos: plan.Pos{File: "Dockerfile", Line: 1}, Err: fmt.Errorf("resolving image: %w", silentRegistryError(t))}, 1},
		{fmt.Errorf("importing cache: %w", &transport.Error{Method: "POST", URL: "https://cache/twirp", Status: 429, Code: "resource_exhausted"}), 1},
		{&source.InputError{Err: errors.New("outside")}, 2},
		{errors.New("exit code 1"), 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// silentRegistryError is the error the transport gives for a server that
// accepts and never answers: a real bound, not a made-up value.
func silentRegistryError(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 1)
			c.Read(buf) // until the client gives up
		}
	}()
	client := &http.Client{Transport: transport.New(transport.Options{ResponseHeaderTimeout: 50 * time.Millisecond})}
	resp, err := client.Get("http://" + l.Addr().String() + "/v2/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("a silent server answered")
	}
	if !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("silent server: %v, want transport.ErrTimeout", err)
	}
	return err
}

// TestFailedBuildLogGroup: under GitHub Actions a failed build writes its
// summary as a log group too, and kiln's error line stays the last line.
func TestFailedBuildLogGroup(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\nCOPY missing.txt /m\n", "a.txt": "a\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"GITHUB_ACTIONS": "true", "KILN_STATE": t.TempDir()}
	code, _, stderr := run(t, func(k string) string { return env[k] }, "build", "--progress", "plain", dir)
	if code != 2 { // a COPY source missing from the context is an input error
		t.Fatalf("exit %d, want 2:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "kiln: Dockerfile:3: COPY missing.txt /m: ") {
		t.Errorf("last line %q, want kiln's error", last)
	}
	group := strings.Index(stderr, "::group::kiln build summary")
	if group < 0 || !strings.Contains(stderr[group:], "   failed #2 "+last+"\n::endgroup::\n") {
		t.Errorf("no log group naming the failure before the last line:\n%s", stderr)
	}
}
