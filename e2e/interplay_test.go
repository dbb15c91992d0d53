package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-build/kiln/internal/imagetest"
)

// TestPlatformPushCacheSameRepo: a two-platform build that pushes its
// index and exports a registry cache (mode=max) to the same repository;
// a fresh state dir then rebuilds from that cache alone, pushes the same
// index again and exports the same cache, with no step run.
func TestPlatformPushCacheSameRepo(t *testing.T) {
	reg, base := platformSetup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": strings.ReplaceAll(platformDockerfile+"WORKDIR /srv/app\n", "{{BASE}}", base)})
	tag := reg + "/app/same:1"
	cacheRef := reg + "/app/same:cache"
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	args := []string{"--platform", "linux/amd64,linux/arm64", "--push", "-t", tag,
		"--cache-to", "type=registry,mode=max,ref=" + cacheRef}
	cold, s0 := cacheBuild(t, ctxDir, env, args...)
	if s0.Summary.Ran == 0 {
		t.Fatalf("the cold build ran nothing:\n%s", cold.stderr)
	}
	t.Logf("cold export: %d requests", cacheLineRequests(t, cold.stderr, "type=registry,mode=max,ref="+cacheRef))
	_, imgs := pulledIndex(t, tag)
	for arch, img := range imgs {
		if got := fileIn(t, img, "/srv/app"); got != "" {
			t.Errorf("%s: /srv/app is %q", arch, got)
		}
	}
	warm, s1 := cacheBuild(t, ctxDir, env, append(args, "--cache-from", "type=registry,ref="+cacheRef)...)
	if s1.Summary.Ran != 0 || s1.Summary.Cached != s0.Summary.Steps {
		t.Errorf("warm build ran %d, cached %d of %d:\n%s", s1.Summary.Ran, s1.Summary.Cached, s0.Summary.Steps, warm.stderr)
	}
	if s1.Digest != s0.Digest {
		t.Errorf("warm index %s, cold %s", s1.Digest, s0.Digest)
	}
	pulledIndex(t, tag)
}

// TestPlatformFailedSummary: a RUN that fails on one platform of two
// (arm64, under QEMU) fails the build; the line kiln ends with, the
// progress lines of the failed step and the job summary name linux/arm64,
// since both platforms' steps have the same stage and text.
func TestPlatformFailedSummary(t *testing.T) {
	_, base := platformSetup(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo one > /one\nRUN test \"$(uname -m)\" = x86_64 || { echo not on $(uname -m) >&2; exit 7; }\n"})
	state := filepath.Join(t.TempDir(), "state")
	sum := filepath.Join(t.TempDir(), "summary.md")
	r := kiln(t, state, []string{"GITHUB_STEP_SUMMARY=" + sum}, "build", "--progress", "plain", "--platform", "linux/amd64,linux/arm64", ctxDir)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", r.code, r.stderr)
	}
	const want = `kiln: Dockerfile:3: [linux/arm64] RUN test "$(uname -m)" = x86_64`
	if !strings.Contains(r.stderr, "\n"+want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
	if !strings.Contains(r.stderr, "#4 [linux/arm64 stage-0 4/4] RUN test") || !strings.Contains(r.stderr, "#2 [linux/amd64 stage-0 2/4] RUN test") {
		t.Errorf("progress lines do not name each step's platform:\n%s", r.stderr)
	}
	b, err := os.ReadFile(sum)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"| Result | **failed** at step #4 |", "Step #4 `[linux/arm64 stage-0] RUN test", "\n" + want, "not on aarch64"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("job summary lacks %q:\n%s", w, b)
		}
	}
}

// TestPlatformFlagsInterplay: --add-host reaches the RUN of an ARG-named
// FROM --platform=$BUILDPLATFORM stage, which runs once for two platforms;
// --no-cache-filter of that stage reruns it once and the target stage
// (WORKDIRs that make directories, the last one a step of its own) still
// hits on top; inline cache gives a new state dir every step of the
// target stage (the tools stage is not in the image: min mode reruns it).
func TestPlatformFlagsInterplay(t *testing.T) {
	reg, base := platformSetup(t)
	ctxDir := t.TempDir()
	df := `ARG BASE=` + base + `
FROM --platform=$BUILDPLATFORM ${BASE} AS tools
WORKDIR /w
RUN grep myhost /etc/hosts > /w/hosts
FROM $BASE AS final
WORKDIR /app
COPY --from=tools /w/hosts ./
RUN uname -m > arch
USER 1000:1000
WORKDIR /home/x
`
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": df})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	tag := reg + "/app/flags:1"
	args := []string{"--platform", "linux/amd64,linux/arm64", "--add-host", "myhost:10.1.2.3", "--push", "-t", tag, "--cache-to", "type=inline"}
	state := filepath.Join(t.TempDir(), "state")
	md := filepath.Join(t.TempDir(), "md.json")
	build := func(extra ...string) (result, summary) {
		r := mustKiln(t, state, env, append(append(append([]string{"build", "--progress", "plain", "--metadata-file", md}, extra...), args...), ctxDir)...)
		return r, readSummary(t, md)
	}
	r, s0 := build()
	// Per platform: tools RUN, COPY, RUN, WORKDIR /home/x; the tools RUN
	// runs once.
	if s0.Summary.Steps != 8 || s0.Summary.Ran != 7 || s0.Summary.Cached != 1 {
		t.Errorf("cold: steps/ran/cached %d/%d/%d, want 8/7/1:\n%s", s0.Summary.Steps, s0.Summary.Ran, s0.Summary.Cached, r.stderr)
	}
	_, imgs := pulledIndex(t, tag)
	for arch, img := range imgs {
		if got := fileIn(t, img, "/app/hosts"); !strings.Contains(got, "10.1.2.3\tmyhost") && !strings.Contains(got, "10.1.2.3 myhost") {
			t.Errorf("%s: /app/hosts %q, want the --add-host entry", arch, got)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.WorkingDir != "/home/x" || cf.Config.User != "1000:1000" {
			t.Errorf("%s: workdir %q user %q", arch, cf.Config.WorkingDir, cf.Config.User)
		}
	}
	r, s1 := build("--no-cache-filter", "tools")
	if s1.Summary.Ran != 1 || s1.Summary.Cached != 7 || s1.Digest != s0.Digest {
		t.Errorf("--no-cache-filter tools: ran/cached %d/%d (want 1/7), digest %s (want %s):\n%s", s1.Summary.Ran, s1.Summary.Cached, s1.Digest, s0.Digest, r.stderr)
	}
	warm, s2 := cacheBuild(t, ctxDir, env, append(args, "--cache-from", "type=registry,ref="+tag)...)
	if s2.Summary.Ran != 1 || s2.Summary.Cached != 7 || s2.Digest != s0.Digest {
		t.Errorf("from inline cache: ran/cached %d/%d (want 1/7), digest %s (want %s):\n%s", s2.Summary.Ran, s2.Summary.Cached, s2.Digest, s0.Digest, warm.stderr)
	}
}

// TestPlatformPushTwoRepos: a two-platform build pushed to two
// repositories of one registry uploads each layer once: the second
// repository mounts the blobs from the first, as a one-platform push does.
func TestPlatformPushTwoRepos(t *testing.T) {
	reg, base := platformSetup(t)
	proxy := newCountingProxy(t, reg)
	ctxDir := t.TempDir()
	// 2 MB of incompressible bytes per platform.
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN head -c 2000000 /dev/urandom > /big\n"})
	state := filepath.Join(t.TempDir(), "state")
	proxy.reset()
	mustKiln(t, state, nil, "build", "--progress", "plain", "--platform", "linux/amd64,linux/arm64", "--push",
		"-t", proxy.addr+"/app/one:1", "-t", proxy.addr+"/app/two:1", ctxDir)
	proxy.mu.Lock()
	up := proxy.uploaded
	proxy.mu.Unlock()
	// Each RUN layer once (2 × 2 MB), not once per repository (8 MB).
	if up > 5<<20 {
		t.Errorf("the push uploaded %d bytes for two 2 MB layers to two repositories; want each uploaded once (the second repository mounts)", up)
	}
	t.Logf("uploaded %d bytes", up)
	for _, repo := range []string{"one", "two"} {
		_, imgs := pulledIndex(t, reg+"/app/"+repo+":1")
		if len(imgs) != 2 {
			t.Errorf("app/%s has %d images, want 2", repo, len(imgs))
		}
	}
}

// TestPlatformImageWithoutArch: an image whose config names no platform
// (empty.Image-based tools such as crane append make them) is the same
// manifest for every platform; a two-platform build FROM it still runs
// each platform's RUN for that platform, instead of reusing the first
// platform's result for the other.
func TestPlatformImageWithoutArch(t *testing.T) {
	imagetest.Require(t, "root", "runc", "qemu-arm64")
	reg := startRegistry(t, "")
	img := imagetest.Busybox(t)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "", ""
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	base := reg + "/base/noarch:1"
	imagetest.Push(t, img, base)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN uname -m > /arch\n"})
	_, s := cacheBuild(t, ctxDir, nil, "--platform", "linux/amd64,linux/arm64")
	if s.Summary.Ran != 2 || s.Summary.Cached != 0 {
		t.Errorf("ran/cached %d/%d, want 2/0: the arm64 RUN reused the amd64 one's result", s.Summary.Ran, s.Summary.Cached)
	}
}
